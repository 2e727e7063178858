#!/usr/bin/env bash
# Copy what the starflow binary loads at run time into DEST: the models (DEST/models/<name>/: each manifest and its ONNX
# file; fixtures/ are test data) and ONNX Runtime (DEST/libonnxruntime.so -> libonnxruntime.so.1.31.1, and the
# providers_shared library). DEST is then a place starflow searches (udfs/src/locate.rs): the release bundle (beside the
# binary) or the user data directory. Replaces DEST's models/. Usage: scripts/copy-runtime.sh DEST
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:?usage: scripts/copy-runtime.sh DEST}
ort=$("$here/scripts/fetch-onnxruntime.sh")
mkdir -p "$dest"
rm -rf "$dest/models"
for manifest in "$here"/models/*/manifest.json; do
  model=$(dirname "$manifest")
  mkdir -p "$dest/models/$(basename "$model")"
  find "$model" -maxdepth 1 -type f -exec cp {} "$dest/models/$(basename "$model")/" \;
done
cp "$ort" "$(dirname "$ort")/libonnxruntime_providers_shared.so" "$dest/"
ln -sfn "$(basename "$ort")" "$dest/libonnxruntime.so"
