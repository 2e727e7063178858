#!/usr/bin/env bash
# The test suite, as CI runs it: installs the test tools (ONNX Runtime library, s3s-fs, the scripts' Python venv), then
# every test of the workspace (unit, integration, CLI, S3, catalogue, sqllogictest, model parity), then the Python tests
# (the reference posterior math, the reference data, the catalogue figures), then the Python package's tests (its wheel
# built from the same target directory, pytest in its own venv, examples/python_pipeline.py among them), then the
# standalone tests (a fresh clone with nothing beside it; the release bundle unpacked and run with a clean environment).
# Build products go to $CARGO_TARGET_DIR (default ~/.cache/starflow-target) so they survive between runs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/starflow-target}
"$here/scripts/install-test-tools.sh"
python=$("$here/scripts/python-env.sh")
cd "$here"
cargo test --workspace "$@"
"$python" models/train/test_reference.py
"$python" scripts/reference_data.py check
"$python" scripts/test_catalog_figures.py
# After `cargo test`: the wheel reuses its build (scripts/python-package.sh).
pyvenv=$("$here/scripts/python-package.sh")
STARFLOW_BIN="$CARGO_TARGET_DIR/debug/starflow" "$pyvenv" -m pytest -q -p no:cacheprovider python/tests
"$python" scripts/test_standalone.py
