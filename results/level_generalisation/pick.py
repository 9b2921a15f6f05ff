"""Which augmentation the level-diversity grid uses: the probe's best mean validation accuracy (validation levels
of their own, never the held-out ones). Writes probe.csv and prints the winner's `--augment` value.

    python results/level_generalisation/pick.py runs/lg/probe results/level_generalisation/probe.csv
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np


def main(probe_dir: Path, out: Path) -> str:
    runs: dict[str, list[dict]] = {}
    for path in sorted(probe_dir.glob("*/metrics.json")):
        runs.setdefault(path.parent.name.rsplit("_s", 1)[0], []).append(json.loads(path.read_text()))
    rows = [
        {
            "augment": name,
            "seeds": len(ms),
            "validation_accuracy": float(np.mean([m["best_val_accuracy"] for m in ms])),
            "per_seed": " ".join(f"{m['best_val_accuracy']:.3f}" for m in ms),
            "train_time_s": float(np.mean([m["train_time_s"] for m in ms])),
        }
        for name, ms in runs.items()
    ]
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: -r["validation_accuracy"]))
    best = max((r for r in rows if r["augment"] != "none"), key=lambda r: r["validation_accuracy"])
    return best["augment"].replace("+", ",")


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), Path(sys.argv[2])))
