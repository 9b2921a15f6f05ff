"""One name for each level set, everywhere (config keys, demo folders, metrics, logs, reports; docs/levels.md):

- training levels: the levels a run trains on (PPO's `start_level`/`num_levels`; the demonstrators' are T-REX's
  `train_start_level`/`train_num_levels`, and the training demos come from `demo_num_levels` of them);
  demos of level set `train`;
- new episodes of the training levels: episodes of the training demos' levels, never trained on; demos and
  figures `new_episodes`;
- held-out levels: levels no step trains on (`held_out_start_level`/`held_out_num_levels`, in PPO's curve as in
  T-REX's demos and the final evaluation); demos and figures `held_out`;
- validation levels: levels of their own for early stopping (`val_start_level`/`val_num_levels`); demos `val`.
"""

from __future__ import annotations

# The demo folders' level sets. The order seeds each set's rounds of episodes: append only.
DEMO_LEVEL_SETS = ("train", "new_episodes", "held_out", "val")
# The level sets a reward model is scored on (metrics.json's blocks, the results tables' column prefixes).
SCORED_SETS = {"new_episodes": "new episodes of the training levels", "held_out": "held-out levels"}
# The level sets a policy is evaluated on (a study's evaluation.json).
EVALUATION_SETS = {"training_levels": "training levels", "held_out": "held-out levels"}
# Names files written before the vocabulary above still hold; read as today's.
LEGACY_DEMO_LEVEL_SETS = {"train_eval": "new_episodes", "test": "held_out"}
LEGACY_SCORED_SETS = {"train_levels": "new_episodes", "test_levels": "held_out"}
LEGACY_EVALUATION_SETS = {"train_levels": "training_levels", "test_levels": "held_out"}


def upgrade_columns(row: dict) -> dict:
    """A results-table row (a CSV written before today's names: `train_levels_*`, `test_levels_*`) with today's
    column names."""
    out = {}
    for key, value in row.items():
        for old, new in LEGACY_SCORED_SETS.items():
            if key.startswith(old + "_"):
                key = new + key[len(old) :]
        out[key] = value
    return out
