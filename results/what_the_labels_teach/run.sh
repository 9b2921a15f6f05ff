#!/usr/bin/env bash
# Rebuild the 8- and 512-level demo folders of results/level_generalisation from its shipped demonstrators, train its
# recipe's reward models there (100 training demos, 3 seeds; StarPilot and FruitBot), and make the tables. Each step
# resumes on rerun; outputs in runs/labels/.
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
py=.venv/bin/python
for game in starpilot fruitbot; do
  suffix=""
  if [ "$game" = fruitbot ]; then suffix=_fruitbot; fi
  common=(-c "results/level_generalisation/trex_$game.yaml" --checkpoint_dir "results/level_generalisation/demonstrators$suffix/checkpoints"
    --demo_dir "runs/labels/demos_$game" --sweep_demo_levels 512 --torch_threads 1)
  $py trex/reward_model.py demos "${common[@]}"
  $py trex/reward_model.py sweep "${common[@]}" --sweep_num_demos 100 --sweep_seeds 3 --run_dir "runs/labels/sweep_$game"
done
$py results/what_the_labels_teach/table.py results/what_the_labels_teach \
  starpilot=runs/labels/sweep_starpilot fruitbot=runs/labels/sweep_fruitbot
