#!/usr/bin/env bash
# The CI as a fresh machine runs it, timed: a clean clone of this checkout's HEAD, an empty Cargo target directory, an
# empty Cargo home (every crate downloaded again), fresh Python venvs and no pip cache, then .ci/run (the README's test
# command). What it reuses: the Rust toolchain, s3s-fs when it is on PATH (install-test-tools.sh installs it
# otherwise, ~3 minutes). Everything goes under DIR (default: a new temporary folder), kept for inspection.
# Usage: scripts/cold-ci.sh [DIR]        Prints "cold CI: <status> in <seconds> s" last; the log is DIR/ci.log.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$(mktemp -d)}
mkdir -p "$dir"
git clone --quiet --no-local "$here" "$dir/repo" && git -C "$dir/repo" checkout --quiet "$(git -C "$here" rev-parse HEAD)" || exit 1
start=$(date +%s)
(
  cd "$dir/repo"
  export CARGO_TARGET_DIR=$dir/target CARGO_HOME=$dir/cargo-home PIP_NO_CACHE_DIR=1
  export STARFLOW_VENV=$dir/venv STARFLOW_PYVENV=$dir/pyvenv
  .ci/run
) >"$dir/ci.log" 2>&1
status=$?
echo "cold CI: $([ $status = 0 ] && echo passed || echo "failed ($status)") in $(( $(date +%s) - start )) s (log: $dir/ci.log)"
exit $status
