#!/usr/bin/env bash
# Rainbow's MinAtar benchmark of docs/BENCHMARKS.md: the Revisiting Rainbow preset on the five MinAtar games (-v0,
# all six actions, sticky actions 0.1), 5M frames each, one after the other, then 100 greedy episodes each.
#   nohup bash bench/rainbow-minatar.sh [RUNS_DIR] [SEED] &
# Rerun it after a session ends under it: a run that exists is resumed from its last checkpoint (never restarted),
# a finished one is only evaluated again. About 1 h 45 min per game at the 800 steps/s the first run began at on 2 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs}
seed=${2:-0}
cargo build --release -q -p xrl-cli || exit 1
xrl=${CARGO_TARGET_DIR:-target}/release/xrl
mkdir -p "$runs"
for game in Breakout Asterix Freeway Seaquest SpaceInvaders; do
  dir="$runs/rainbow-${game,,}-s$seed"
  if [ -f "$dir/run.toml" ]; then
    "$xrl" train --resume "$dir" --quiet >> "$dir.log" 2>&1
  else
    "$xrl" train --env "MinAtar/$game-v0" --agent rainbow --steps 5000000 --seed "$seed" --out "$dir" --quiet \
      >> "$dir.log" 2>&1
  fi
  "$xrl" play --run "$dir" --episodes 100 --seed 7 --json > "$dir.play.json" 2>> "$dir.log"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['returns']; print(f'| MinAtar/$game-v0 | rainbow | $seed | 5000000 | {sum(r)/len(r):.2f} |')" \
    "$dir.play.json"
done
