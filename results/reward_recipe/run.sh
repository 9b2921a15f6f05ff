#!/usr/bin/env bash
# Every model and table of results/reward_recipe, from the shipped demonstrators of results/level_generalisation.
# Each step resumes on rerun; outputs in runs/labels (demos) and runs/recipe (models). One core per command: run
# two of the model lines side by side on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
py=.venv/bin/python
export PYTHONPATH=.
for game in starpilot fruitbot; do
  suffix=""
  if [ "$game" = fruitbot ]; then suffix=_fruitbot; fi
  levels=""  # FruitBot's 512-level folder is built below, with 400 demos
  if [ "$game" = starpilot ]; then levels=32,128,512; fi
  $py trex/reward_model.py demos -c "results/level_generalisation/trex_$game.yaml" \
    --checkpoint_dir "results/level_generalisation/demonstrators$suffix/checkpoints" \
    --demo_dir "runs/labels/demos_$game" --sweep_demo_levels "$levels" --torch_threads 1
done
run() { $py results/reward_recipe/run.py "$@" --torch_threads 1; }
# StarPilot, 512 levels (100 demos, each on its own level): the levers one at a time
for recipe in today clock_free_validation aligned pooled; do run starpilot "$recipe" 512 3; done
run starpilot aligned_strong 512 1
# StarPilot, 8 and 32 levels: pairs within one level
for recipe in today same_level_aligned same_level_aligned_dynamics; do run starpilot "$recipe" 8 3; done
for recipe in same_level_aligned_pooled same_level_aligned_augment same_level_aligned_400; do run starpilot "$recipe" 8 1; done
run starpilot same_level_aligned 32 3
run starpilot same_level_aligned_400 32 1
run starpilot same_level_aligned_400 128 1
# FruitBot, 8 levels
for recipe in today same_level_aligned; do run fruitbot "$recipe" 8 3; done
# Each frame's reward reading the frame before too (frame_stack 2), on today's pairs and the clock-free ones
for recipe in stacked aligned_stacked; do run starpilot "$recipe" 512 3; done
run starpilot aligned_strong_stacked 512 1
run starpilot stacked 8 3
run starpilot same_level_aligned_stacked 8 1
run fruitbot stacked 8 3
# Lighter regularisation on today's pairs (the 2020 study's L1, 0.01, weight decay) and on clock-free pairs
for recipe in l1_study2020 l1_mid weight_decay; do run starpilot "$recipe" 512 3; done
run starpilot l1_study2020 8 3
run starpilot aligned_strong_l1 512 1
run fruitbot l1_study2020 8 3
# Inverse dynamics on 400 unlabelled demos of 512 training levels beside the 8 levels' labelled ones
for recipe in same_level_aligned_dynamics_many today_dynamics today_dynamics_many; do run starpilot "$recipe" 8 3; done
# The oracle (supervision true_returns) beside the rank labels, on 100, 400 and 3,200 demos: results/reward_recipe/oracle
for recipe in oracle_strong oracle_strong_pooled oracle_strong_400 today_400 strong_400 aligned_strong_400; do
  run starpilot "$recipe" 512 1
done
for recipe in oracle_strong_400 strong_400 aligned_strong_400; do run starpilot "$recipe" 512 1-1; done  # seed 1
$py trex/reward_model.py demos -c results/level_generalisation/trex_starpilot.yaml \
  --checkpoint_dir results/level_generalisation/demonstrators/checkpoints \
  --demo_dir runs/labels/demos_starpilot/levels_4096 --demo_num_levels 4096 --sweep_demo_levels "" \
  --num_demos 3200 --num_val_demos 2 --torch_threads 1
for recipe in oracle_strong_pooled_3200 today_3200; do run starpilot "$recipe" 4096 1; done
# Third seeds at 400 demos on StarPilot; FruitBot's oracle beside its rank labels, on 400 training demos of 512
# levels in a folder of their own (the main folder's validation and held-out demos judge them)
for recipe in oracle_strong_400 strong_400 aligned_strong_400; do run starpilot "$recipe" 512 2-2; done  # seed 2
$py trex/reward_model.py demos -c results/level_generalisation/trex_fruitbot.yaml \
  --checkpoint_dir results/level_generalisation/demonstrators_fruitbot/checkpoints \
  --demo_dir runs/labels/demos_fruitbot/levels_512 --demo_num_levels 512 --sweep_demo_levels "" \
  --num_demos 400 --num_val_demos 1 --num_held_out_demos 1 --torch_threads 1
for recipe in oracle_strong_400 strong_400; do run fruitbot "$recipe" 512 3; done
for recipe in oracle_strong_pooled_400 aligned_strong_400; do run fruitbot "$recipe" 512 1; done
# The recipe chosen on validation levels (strong_400) at 8x the demos, one seed per process
for seed in 0-0 1-1 2-2 3-4; do run starpilot strong_3200 4096 "$seed"; done  # seeds 3-4 after the choice
run starpilot strong_400_long 512 3  # its budget on 400 demos: what the steps buy apart from the demos
# FruitBot at 3,200 demos of 4,096 levels (a folder of their own, as its 400): strong_3200
$py trex/reward_model.py demos -c results/level_generalisation/trex_fruitbot.yaml \
  --checkpoint_dir results/level_generalisation/demonstrators_fruitbot/checkpoints \
  --demo_dir runs/labels/demos_fruitbot/levels_4096 --demo_num_levels 4096 --sweep_demo_levels "" \
  --num_demos 3200 --num_val_demos 1 --num_held_out_demos 1 --torch_threads 1
for seed in 0-0 1-1 2-2; do run fruitbot strong_3200 4096 "$seed"; done
$py results/reward_recipe/table.py results/reward_recipe runs/recipe --held_out today,same_level_aligned
$py results/reward_recipe/transfer.py results/reward_recipe runs/recipe starpilot today:8 same_level_aligned:8 \
  same_level_aligned_dynamics:8 same_level_aligned_400:8 same_level_aligned_400:32 same_level_aligned_400:128 \
  same_level_aligned:32 today:512
$py results/reward_recipe/transfer.py results/reward_recipe/stacked runs/recipe starpilot same_level_aligned_stacked:8 stacked:8
