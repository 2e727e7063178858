#!/usr/bin/env bash
# The release bundle: starflow-<version>-x86_64-linux.tar.gz, which runs on a Linux x86_64 machine with no Rust and no
# Python: the starflow binary and, beside it, its models and ONNX Runtime (scripts/copy-runtime.sh; found there by the
# "beside the executable" rule), the bundled example catalogue (examples/), the SQL of queries/, README.md and LICENSE.
# Usage: scripts/package.sh [--binary FILE] [OUT_DIR]   (OUT_DIR default: the current directory)
#   default: builds the release binary (cargo build --release: ~35 min for a cold build on 2 cores, see README).
#   --binary FILE: packages that binary instead (the tests package the debug build they already have).
# Prints the path of the tarball.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/starflow-target}
binary=
if [ "${1:-}" = --binary ]; then
  binary=$(realpath "${2:?--binary needs a file}")
  shift 2
fi
out=$(realpath "${1:-.}")
if [ -z "$binary" ]; then
  cargo build --release --locked --quiet --manifest-path "$here/Cargo.toml" --bin starflow >&2
  binary=$CARGO_TARGET_DIR/release/starflow
fi
version=$("$binary" --version | awk '{print $2}')
name=starflow-$version-x86_64-linux
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dir=$stage/$name
"$here/scripts/copy-runtime.sh" "$dir"
# a stripped copy: most of the unstripped binary is symbols
strip -o "$dir/starflow" "$binary"
mkdir "$dir/examples"
cp "$here/examples/data/astraAllStarASPCAP_apokasc3.parquet" "$dir/examples/"
cp -r "$here/queries" "$here/README.md" "$here/LICENSE" "$dir/"
mkdir -p "$out"
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner -czf "$out/$name.tar.gz" "$name"
echo "$out/$name.tar.gz"
