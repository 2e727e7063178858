#!/usr/bin/env bash
# The main job: the StarFlow catalogue (StarFlow_summary / _age_posterior / _mass_posterior.parquet, row-matched to the
# input) of a DR19 astraAllStarASPCAP catalogue (default: the bundled one), and its figures (docs/VALIDATION.md).
# Usage: scripts/run-main-job.sh [INPUT] [OUTPUT_DIR]     INPUT and OUTPUT_DIR may be local or s3:// (then set
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, and STARFLOW_S3_ENDPOINT for an S3-compatible server). Figures are drawn
# for local outputs, into OUTPUT_DIR/figures.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/starflow-target}
input=${1:-$here/examples/data/astraAllStarASPCAP_apokasc3.parquet}
out=${2:-$here/out}
# the repository's models and ONNX Runtime, whatever the working directory (unless the caller chose others)
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$("$here/scripts/fetch-onnxruntime.sh")}
export STARFLOW_MODELS=${STARFLOW_MODELS:-$here/models}
# The same build as the tests' (dev-dependencies change feature unification): one DataFusion build serves both.
cargo build --quiet --manifest-path "$here/Cargo.toml" --workspace --tests
endpoint=()
if [ -n "${STARFLOW_S3_ENDPOINT:-}" ]; then endpoint=(--s3-endpoint "$STARFLOW_S3_ENDPOINT"); fi
"$CARGO_TARGET_DIR/debug/starflow" "${endpoint[@]}" catalog "$input" "$out"
case "$out" in
  *://*) echo "figures are drawn for local outputs only: run scripts/catalog_figures.py on a local copy" ;;
  *) case "$input" in
       *://*) echo "figures need a local input file (they read its labels): skipped" ;;
       *) python=$("$here/scripts/python-env.sh")
          "$python" "$here/scripts/catalog_figures.py" "$out" --input "$input" ;;
     esac ;;
esac
