"""Copy the demonstrators' checkpoints into the result, weights only (no optimizer or normaliser state), with their
training curve, so steps 2-3 rerun without hours of PPO:

    python results/level_generalisation/ship.py runs/lg/ppo_starpilot results/level_generalisation/demonstrators
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from baseline_agent.checkpoint import export_weights, list_checkpoints

if __name__ == "__main__":
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    for path in list_checkpoints(run / "checkpoints"):
        print(export_weights(path, out / "checkpoints"))
    for name in ("progress.csv", "learning_curve.png", "config.yaml", "summary.json", "versions.json"):
        shutil.copy(run / name, out / name)
