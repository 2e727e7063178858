#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library that starflow loads at run time (ort `load-dynamic`).
# ort 2.0.0-rc.15 speaks the ONNX Runtime 1.31 C API, so the version is pinned; the library comes from the PyPI wheel
# because ort's own binary download needs internet access these machines do not have.
# Usage: scripts/fetch-onnxruntime.sh [DEST_DIR]   (default: .ort/ in the repository). Idempotent.
set -euo pipefail
ORT_VERSION=1.31.1
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$here/.ort}
lib="$dest/libonnxruntime.so.$ORT_VERSION"
if [ -f "$lib" ]; then
  echo "$lib"
  exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
  --implementation cp -d "$tmp" "onnxruntime==$ORT_VERSION" >&2
wheel=$(ls "$tmp"/onnxruntime-*.whl)
python3 - "$wheel" "$dest" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime"):
            with z.open(name) as src, open(os.path.join(dest, base), "wb") as out:
                out.write(src.read())
PY
ln -sf "libonnxruntime.so.$ORT_VERSION" "$dest/libonnxruntime.so"
echo "$lib"
