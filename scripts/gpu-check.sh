#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: builds xrl with `--features cuda` and runs the network, gradient and explanation
# tests on the GPU (`XRL_TEST_DEVICE=cuda`, or `cuda:N` given as the first argument), then a short training run on
# it, and prints one closing summary. Needs the NVIDIA driver (nvidia-smi) and, for the first build, network access:
# cubecl-cuda's build downloads an LLVM bundle (tracel-llvm-bundler; cached in ~/.local/share/tracel afterwards).
# Run from anywhere: `bash scripts/gpu-check.sh [cuda:N]`.
set -euo pipefail
cd "$(dirname "$0")/.."

device=${1:-cuda}
case "$device" in
  cuda | cuda:[0-9]*) ;;
  *) echo "gpu-check: the device must be cuda or cuda:N, got '$device'" >&2; exit 2 ;;
esac
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu-check: nvidia-smi not found; this needs a machine with an NVIDIA GPU and its driver" >&2
  exit 2
fi

# A target directory of its own: the CUDA build's features differ from the CPU build's.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/xrl/target-cuda}"
export CARGO_TERM_COLOR=never

echo "== GPU"
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)

echo "== cargo build --release -p xrl-cli --features cuda"
cargo build --release -p xrl-cli --features cuda

log=$(mktemp)
out=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$out"' EXIT

# Keep going after a failure so that the summary says what failed.
echo "== tests on $device (XRL_TEST_DEVICE=$device)"
set +e
XRL_TEST_DEVICE=$device cargo test --release -p xrl-nn -p xrl-explain -p xrl-fsm --features xrl-nn/cuda --no-fail-fast 2>&1 |
  tee "$log"
tests_rc=${PIPESTATUS[0]}

echo "== xrl train --device $device (A2C on MinAtar Breakout, 2,000 steps)"
"$CARGO_TARGET_DIR/release/xrl" train --env MinAtar/Breakout-v0 --agent a2c --steps 2000 --checkpoint-every 1000 \
  --quiet --device "$device" --out "$out/run"
train_rc=$?
set -e

awk -v gpu="$gpu" -v device="$device" -v tests_rc="$tests_rc" -v train_rc="$train_rc" '
  /^test result:/ { p += $4; f += $6 }
  END {
    printf "gpu-check on %s (%s): tests %d passed, %d failed%s; training %s\n", gpu, device, p, f,
      (tests_rc != 0 && f == 0) ? " (cargo test failed before running every test)" : "",
      (train_rc == 0) ? "ok" : "failed"
    exit (f > 0 || tests_rc != 0 || train_rc != 0)
  }' "$log"
