#!/usr/bin/env bash
# Learning benchmarks of docs/BENCHMARKS.md: trains, then evaluates greedily over 100 episodes.
#   bash bench/learning.sh [RUNS_DIR]            CartPole (DQN, A2C, A3C, recurrent A2C; seeds 1-3), MinAtar Breakout A2C (1M frames, seeds 0-2)
#   XRL_LONG=1 bash bench/learning.sh [RUNS_DIR] also MinAtar Breakout DQN, 1M frames (about 20 minutes on 2 cores)
#   XRL_LONG=5m bash bench/learning.sh [RUNS_DIR] and the 5M-frame DQN run compared with the MinAtar paper
#   XRL_ONLY='cartpole-a2c-*' bash bench/learning.sh   only the rows whose name matches the pattern
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/bench}
cargo build --release -q -p xrl-cli
xrl=${CARGO_TARGET_DIR:-target}/release/xrl
mkdir -p "$runs"
row() { # name env agent steps seed [more train options]
  [[ "$1" == ${XRL_ONLY:-*} ]] || return 0
  local dir="$runs/$1"
  rm -rf "$dir"
  local t0=$SECONDS
  "$xrl" train --env "$2" --agent "$3" --steps "$4" --seed "$5" "${@:6}" --out "$dir" --quiet 2>/dev/null >/dev/null
  local secs=$((SECONDS - t0))
  local eval; eval=$("$xrl" play --run "$dir" --episodes 100 --seed 7 --json)
  local mean; mean=$(python3 -c "import json,sys; r=json.loads(sys.argv[1])['returns']; print(f'{sum(r)/len(r):.2f}')" "$eval")
  local last; last=$(python3 - "$dir/metrics.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
r = [float(x["return"]) for x in rows[-100:]]
print(f"{sum(r)/len(r):.2f}")
PY
)
  echo "| $2 | $3 ${*:6} | $5 | $4 | $last | $mean | ${secs} s |"
}
echo "| environment | agent | seed | frames | mean return, last 100 training episodes | greedy mean return, 100 episodes | wall time |"
echo "|---|---|---:|---:|---:|---:|---:|"
for s in 1 2 3; do row "cartpole-dqn-s$s" CartPole-v1 dqn 500000 "$s"; done
for s in 1 2 3; do row "cartpole-a2c-s$s" CartPole-v1 a2c 500000 "$s"; done
for s in 1 2 3; do row "cartpole-a3c-s$s" CartPole-v1 a3c 500000 "$s"; done
for s in 1 2 3; do row "cartpole-a2c-lstm-s$s" CartPole-v1 a2c 1000000 "$s" --core lstm --core-size 64; done
for s in 1 2 3; do row "cartpole-a2c-gru-s$s" CartPole-v1 a2c 1000000 "$s" --core gru --core-size 64; done
for s in 0 1 2; do row "breakout-a2c-s$s" MinAtar/Breakout-v0 a2c 1000000 "$s"; done
if [ -n "${XRL_LONG:-}" ]; then row breakout-dqn-s0 MinAtar/Breakout-v0 dqn 1000000 0; fi
# The MinAtar paper's 5M-frame DQN run (about 1.7 hours on two quiet cores).
if [ "${XRL_LONG:-}" = 5m ]; then row breakout-dqn-5m MinAtar/Breakout-v0 dqn 5000000 0; fi
