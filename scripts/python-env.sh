#!/usr/bin/env bash
# The Python environment of the repository's scripts: a venv at ${STARFLOW_VENV:-~/.cache/starflow-venv} holding
# scripts/requirements.txt (or the venv VENV holding the file REQUIREMENTS, when given: python-env.sh VENV REQUIREMENTS).
# Prints the venv's python on stdout (everything else goes to stderr), so callers can write
#   py=$(scripts/python-env.sh) && "$py" scripts/catalog_figures.py ...
# pip runs only when the requirements file changed since the last successful install (its sha256 is stamped in the venv).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-${STARFLOW_VENV:-$HOME/.cache/starflow-venv}}
req=${2:-$here/requirements.txt}
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
  echo "$want" >"$stamp"
fi
echo "$venv/bin/python"
