#!/usr/bin/env bash
# The main job: StarFlow ages and masses for a DR19 astraAllStarASPCAP catalogue (default: the bundled one).
# Usage: scripts/run-main-job.sh [INPUT] [OUTPUT_DIR]     INPUT and OUTPUT_DIR may be local or s3:// (then set
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, and STARFLOW_S3_ENDPOINT for an S3-compatible server).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/starflow-target}
input=${1:-$here/examples/data/astraAllStarASPCAP_apokasc3.parquet}
out=${2:-$here/out}
"$here/scripts/fetch-onnxruntime.sh" >/dev/null
# The same build as the tests' (dev-dependencies change feature unification): one DataFusion build serves both.
cargo build --quiet --manifest-path "$here/Cargo.toml" --workspace --tests
endpoint=()
if [ -n "${STARFLOW_S3_ENDPOINT:-}" ]; then endpoint=(--s3-endpoint "$STARFLOW_S3_ENDPOINT"); fi
case "$out" in *://*) ;; *) mkdir -p "$out" ;; esac
cd "$here"
"$CARGO_TARGET_DIR/debug/starflow" "${endpoint[@]}" run queries/dr19_inputs.sql queries/ages_masses.sql \
  --define input="$input" -o "$out/starflow_ages_masses.parquet"
