#!/usr/bin/env bash
# A probe: N=8 levels, 100 training demos, 2 seeds per variant; judged on the validation levels only (pick.py).
#   probe.sh                                   the augmentation probe, in runs/lg/probe/
#   probe.sh OUT_DIR "NAME FLAGS..." [...]     the variants given (e.g. probe_training.sh), in OUT_DIR/NAME_s<seed>
cd "$(dirname "$0")/../.."  # the repository root
out=${1:-runs/lg/probe}
variants=("${@:2}")
if [ ${#variants[@]} -eq 0 ]; then  # shift+colour: both, one draw each
  variants=("none" "shift --augment shift" "colour --augment colour" "conv --augment conv"
    "shift+colour --augment shift,colour")
fi
for variant in "${variants[@]}"; do
  read -r name flags <<< "$variant"
  for seed in 0 1; do
    # shellcheck disable=SC2086
    .venv/bin/python trex/reward_model.py train -c results/level_generalisation/trex_starpilot.yaml \
      --num_demos 100 --seed $seed $flags --run_dir "$out/${name}_s$seed" || exit 1
  done
done
