#!/usr/bin/env bash
# A probe of how hard the reward net is trained (N=8 levels, 100 training demos, seeds 0-1, no augmentation),
# judged on the validation levels only, as the augmentation probe: Adam's learning rate (1e-4 is the default)
# and 4x the training steps (8 epochs of the 8,000 pairs instead of 2). Outputs in runs/lg/probe_training/.
exec "$(dirname "$0")/probe.sh" runs/lg/probe_training \
  "lr3e-4 --learning_rate 0.0003" "lr1e-3 --learning_rate 0.001" "epochs8 --epochs 8"
