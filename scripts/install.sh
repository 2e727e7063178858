#!/usr/bin/env bash
# Install starflow for this user: `cargo install --path .` puts the binary in ~/.cargo/bin (or $CARGO_INSTALL_ROOT/bin),
# and its models and ONNX Runtime go to the user data directory, ${XDG_DATA_HOME:-~/.local/share}/starflow, where the
# binary finds them from any working directory (`starflow models` says so). A release build: ~35 min cold on 2 cores.
# Usage: scripts/install.sh            (re-run after pulling new models; STARFLOW_MODELS/ORT_DYLIB_PATH still override)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/starflow-target}
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
case "$data_home" in /*) ;; *) data_home=$HOME/.local/share ;; esac  # a relative XDG_DATA_HOME is ignored (XDG spec)
cargo install --locked --path "$here" >&2
"$here/scripts/copy-runtime.sh" "$data_home/starflow"
echo "installed: $(command -v starflow || echo "starflow (add ${CARGO_INSTALL_ROOT:-$HOME/.cargo}/bin to PATH)"); models and ONNX Runtime in $data_home/starflow"
