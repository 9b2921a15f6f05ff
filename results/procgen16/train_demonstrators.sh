#!/usr/bin/env bash
# Step 1 for every Procgen game not already shipped (StarPilot and FruitBot come from results/level_generalisation):
# PPO on every level, one game after the other, each resumable (a rerun continues where a run stopped; a larger
# STEPS extends finished runs). Usage: results/procgen16/train_demonstrators.sh [STEPS] [GAME ...]
# PRECISION=bf16 in the environment trains (or resumes) with bf16 autocast: 1.48x fp32 end to end on a 2-core Intel
# Xeon with AMX (benchmarks/ppo_throughput.py at these sizes, README); slower on CPUs without AMX (docs/speed.md).
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
steps=${1:-409600}
shift || true
games=("$@")
if [ ${#games[@]} -eq 0 ]; then
  games=(bigfish bossfight chaser climber dodgeball miner plunder caveflyer jumper ninja leaper coinrun heist maze)
fi
for game in "${games[@]}"; do
  .venv/bin/python baseline_agent/train.py -c results/procgen16/ppo.yaml --env_name "$game" \
    --total_timesteps "$steps" --run_dir "runs/p16/ppo_$game" --precision "${PRECISION:-fp32}"
done
