"""A probe's table and its pick: the variant with the best mean validation accuracy (validation levels of their own,
never the held-out ones). Writes OUT_CSV (one row per variant, best first; the centred Spearman on new episodes of
the training levels and on held-out levels beside it, reported, never used to choose) and prints the best variant
other than `none`, as an `--augment` value for the augmentation probe.

    python results/level_generalisation/pick.py runs/lg/probe results/level_generalisation/probe.csv
    python results/level_generalisation/pick.py runs/lg/probe_training results/level_generalisation/probe_training.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from toolkit.files import write_csv
from trex.results import read_metrics
from trex.reward.table import figure_columns


def main(probe_dir: Path, out: Path) -> str:
    runs: dict[str, list[dict]] = {}
    for path in sorted(probe_dir.glob("*/metrics.json")):
        runs.setdefault(path.parent.name.rsplit("_s", 1)[0], []).append(read_metrics(path))
    rows = []
    for name, ms in runs.items():
        figures = [figure_columns(m) for m in ms]
        rows.append(
            {
                "variant": name,
                "seeds": len(ms),
                "validation_accuracy": float(np.mean([m["best_val_accuracy"] for m in ms])),
                "per_seed": " ".join(f"{m['best_val_accuracy']:.3f}" for m in ms),
                "train_time_s": float(np.mean([m["train_time_s"] for m in ms])),
                **{
                    f"{key}_centred_spearman": float(np.mean([f[f"{key}_centred_spearman"] for f in figures]))
                    for key in ("new_episodes", "held_out")
                },
            }
        )
    rows.sort(key=lambda r: -r["validation_accuracy"])
    write_csv(out, rows, tuple(rows[0]))
    best = max((r for r in rows if r["variant"] != "none"), key=lambda r: r["validation_accuracy"])
    return best["variant"].replace("+", ",")


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), Path(sys.argv[2])))
