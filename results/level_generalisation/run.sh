#!/usr/bin/env bash
# The whole result, each step resumable (rerun the script after a stop): demonstrators, demos, the augmentation probe,
# the grid without and with the probe's augmentation, the figure. Run from anywhere; outputs in runs/lg/.
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
here=results/level_generalisation
py=.venv/bin/python
$py baseline_agent/train.py -c $here/ppo_starpilot.yaml
$py trex/reward_model.py demos -c $here/trex_starpilot.yaml
$here/probe.sh
aug=$($py $here/pick.py runs/lg/probe $here/probe.csv)
echo "augmentation chosen on the validation levels: $aug"
demos=${DEMOS:-100}   # numbers of training demos of the grid, e.g. DEMOS=100,400
$py trex/reward_model.py sweep -c $here/trex_starpilot.yaml --sweep_num_demos "$demos" --run_dir runs/lg/sweep_none
$py trex/reward_model.py sweep -c $here/trex_starpilot.yaml --sweep_num_demos "$demos" --augment "$aug" \
  --run_dir "runs/lg/sweep_${aug/,/+}"
$py $here/figure.py $here runs/lg/demos none=runs/lg/sweep_none "$aug=runs/lg/sweep_${aug/,/+}"
# Validation from a share of the training demos (the 2020 study's way) instead of levels of its own, at 8 levels.
$py trex/reward_model.py sweep -c $here/trex_starpilot.yaml --sweep_num_demos "$demos" --val_num_levels 0 \
  --demo_num_levels 8 --sweep_demo_levels "" --run_dir runs/lg/sweep_none_trainval
