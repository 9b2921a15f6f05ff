#!/usr/bin/env bash
# The augmentation probe: N=8 levels, 100 training demos, 2 seeds; judged on the validation levels only.
cd "$(dirname "$0")/../.."  # the repository root
for aug in none shift colour conv shift,colour; do  # shift+colour: both, one draw each
  for seed in 0 1; do
    flag=(); [ "$aug" != none ] && flag=(--augment "$aug")
    .venv/bin/python trex/reward_model.py train -c results/level_generalisation/trex_starpilot.yaml \
      --num_demos 100 --seed $seed "${flag[@]}" --run_dir "runs/lg/probe/${aug/,/+}_s$seed" || exit 1
  done
done
