#!/usr/bin/env bash
# Install what the test suite needs besides Rust: the S3-compatible server s3s-fs (a real S3 protocol implementation
# over a local directory, with signature checks) and the ONNX Runtime library. Idempotent; ~3 minutes on a fresh machine.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/fetch-onnxruntime.sh" >/dev/null
# 0.14.1: later versions need a newer Rust than this project's toolchain.
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  cargo install s3s-fs@0.14.1 --features binary --locked --quiet
fi
echo "test tools ready: $("$HOME/.cargo/bin/s3s-fs" --version 2>/dev/null || command -v s3s-fs), onnxruntime in $here/.ort"
