#!/usr/bin/env bash
# The starflow Python package built from this checkout and installed into a test venv at
# ${STARFLOW_PYVENV:-~/.cache/starflow-pyvenv} (with python/requirements-test.txt); prints the venv's python on stdout
# (everything else goes to stderr):  py=$(scripts/python-package.sh) && "$py" -m pytest python/tests
#
# The wheel is built in the dev profile into $CARGO_TARGET_DIR (python/pyproject.toml), after `cargo test --workspace`
# has built the engine there: it then compiles only the Python glue. That holds while a build of the package alone
# unifies the features of every shared crate as the workspace build does; this script checks it first, since a
# difference would compile DataFusion a second time (~50 min on 2 cores) without any other sign.
# --release: build a release wheel into python/dist/ instead (for distribution; its own full build).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/starflow-target}
venv=${STARFLOW_PYVENV:-$HOME/.cache/starflow-pyvenv}
python=$("$here/scripts/python-env.sh" "$venv" "$here/python/requirements-test.txt")

if [ "${1:-}" = --release ]; then
  "$venv/bin/maturin" build --release --manifest-path "$here/python/Cargo.toml" --out "$here/python/dist" >&2
  exit
fi

# Every crate of the package's build with the features it has in the workspace build (name, version, features).
features() { cargo tree "$@" -e features -f '{p} {f}' --prefix none | sed 's/ (\*)$//; s/ (\/[^)]*)//' | grep ' v[0-9]' | sort -u; }
cd "$here"
differ=$(comm -13 <(features --workspace) <(features -p starflow-python -e normal,build))
if [ -n "$differ" ]; then
  echo "python-package: a build of starflow-python alone would compile these crates with other features than" \
       "'cargo test --workspace' (and so DataFusion twice); pin them in python/Cargo.toml:" >&2
  echo "$differ" >&2
  exit 1
fi
# The documented install (`pip install ./python`), with the venv's maturin rather than a fresh isolated one.
PATH="$venv/bin:$PATH" "$python" -m pip install --quiet --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps "$here/python" >&2
echo "$python"
