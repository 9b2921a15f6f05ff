#!/usr/bin/env bash
# The second game: FruitBot (easy), the StarPilot grid made smaller (100 training demos, 3 seeds), none vs shift
# (StarPilot's probe pick, not probed again here). Each step resumable; outputs in runs/lg/ (see README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
here=results/level_generalisation
py=.venv/bin/python
$py baseline_agent/train.py -c $here/ppo_fruitbot.yaml
$py trex/reward_model.py demos -c $here/trex_fruitbot.yaml
$py trex/reward_model.py sweep -c $here/trex_fruitbot.yaml --run_dir runs/lg/fruitbot_sweep_none
$py trex/reward_model.py sweep -c $here/trex_fruitbot.yaml --augment shift --run_dir runs/lg/fruitbot_sweep_shift
$py trex/reward_model.py sweep -c $here/trex_fruitbot.yaml --patience 10 --run_dir runs/lg/fruitbot_sweep_none_patience10
$py $here/figure.py $here/fruitbot runs/lg/demos_fruitbot none=runs/lg/fruitbot_sweep_none shift=runs/lg/fruitbot_sweep_shift \
  "none, patience 10=runs/lg/fruitbot_sweep_none_patience10"
