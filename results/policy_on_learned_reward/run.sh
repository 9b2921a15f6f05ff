#!/usr/bin/env bash
# The whole result, each run resumable (rerun the script after a stop): 3 seeds of PPO on the true reward, on
# survival (+1 per step), and on the learned reward under each transform, then the evaluation of every final
# policy and a random one (200 episodes per level set), the table and the figure. Outputs in runs/pol/.
# The reward models are results/level_generalisation's (shift, 32 levels, 100 demos, seeds 0-2): run its run.sh first.
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
here=results/policy_on_learned_reward
py=.venv/bin/python
cfg=$here/ppo_starpilot_32.yaml
models=${MODELS:-runs/lg/sweep_shift/sweep/L32_n100_s0/reward_model.pt,runs/lg/sweep_shift/sweep/L32_n100_s1/reward_model.pt,runs/lg/sweep_shift/sweep/L32_n100_s2/reward_model.pt}
for seed in ${SEEDS:-0 1 2}; do
  $py baseline_agent/train.py -c $cfg --seed "$seed" --run_dir "runs/pol/true_s$seed"
  $py trex/train_policy.py -c $cfg --seed "$seed" --reward survival --run_dir "runs/pol/survival_s$seed"
  for transform in ${TRANSFORMS:-none sigmoid standardise}; do
    $py trex/train_policy.py -c $cfg --seed "$seed" --reward_model "$models" --reward_transform "$transform" \
      --run_dir "runs/pol/${transform}_s$seed"
  done
done
# The raw reward of results/reward_recipe's recipes strong_400 and strong_3200 (run that folder's run.sh first):
# the ensemble of their seeds 0-2, the same policy, levels and budget (conditions strong400, strong3200)
for recipe in strong_400:512 strong_3200:4096; do
  name=${recipe%%:*} levels=${recipe##*:}
  m=runs/recipe/starpilot/$name/L$levels
  for seed in ${SEEDS:-0 1 2}; do
    $py trex/train_policy.py -c $cfg --seed "$seed" --reward_model "${m}_s0/reward_model.pt,${m}_s1/reward_model.pt,${m}_s2/reward_model.pt" \
      --reward_transform none --run_dir "runs/pol/${name/_/}_s$seed"
  done
done
$py $here/evaluate.py runs/pol $here
