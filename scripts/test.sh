#!/usr/bin/env bash
# The test suite, as CI runs it: installs the test tools (ONNX Runtime library, s3s-fs), then every test of the
# workspace (unit, integration, CLI, S3, sqllogictest, model parity). Build products go to $CARGO_TARGET_DIR
# (default ~/.cache/starflow-target) so they survive between runs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/starflow-target}
"$here/scripts/install-test-tools.sh"
cd "$here"
cargo test --workspace "$@"
