"""The figure and table of results/starpilot_cpu/README.md from the sweep's own rows (sweep_results.csv).

python results/starpilot_cpu/figure.py runs/starpilot_cpu/sweep_results.csv results/starpilot_cpu
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trex.evaluation import seed_interval  # noqa: E402

# The 2020 study's published means (5 seeds), StarPilot easy, held-out-level demos (shared/reference, README).
PUBLISHED = {12: 0.35, 25: 0.43, 50: 0.51, 100: 0.27, 200: 0.69, 300: 0.90, 1000: 0.95}
PUBLISHED_LENGTH = 0.955


def main(rows_csv: str, out_dir: str) -> None:
    rows = list(csv.DictReader(open(rows_csv)))
    out = Path(out_dir)
    by_n: dict[int, list[dict]] = {}
    for r in rows:
        by_n.setdefault(int(r["num_demos"]), []).append(r)
    stat = lambda rs, c: seed_interval([float(r[c]) if r[c] else None for r in rs])
    lines = [
        "| demos | seeds | T-REX, held-out levels | length baseline, held-out | T-REX, fresh training-level "
        "episodes | published T-REX (5 seeds) |",
        "|---|---|---|---|---|---|",
    ]
    fmt = lambda s: (
        f"{s['mean']:.2f} [{s['ci95_low']:.2f}, {s['ci95_high']:.2f}]"
        if s["ci95_low"] is not None
        else f"{s['mean']:.2f}"
    )
    xs, means, lows, highs, lengths = [], [], [], [], []
    for n in sorted(by_n):
        test, length = stat(by_n[n], "test_levels_spearman"), stat(by_n[n], "test_levels_length_baseline_spearman")
        train = stat(by_n[n], "train_levels_spearman")
        lines.append(
            f"| {n} | {test['n']} | {fmt(test)} | {length['mean']:.2f} | {fmt(train)} | "
            f"{PUBLISHED.get(n, float('nan')):.2f} |"
        )
        xs.append(n)
        means.append(test["mean"])
        lows.append(test["ci95_low"] if test["ci95_low"] is not None else test["mean"])
        highs.append(test["ci95_high"] if test["ci95_high"] is not None else test["mean"])
        lengths.append(length["mean"])
    (out / "table.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(xs, means, "-o", color="C0", label="T-REX here (CPU demonstrators), mean of seeds")
    ax.fill_between(xs, lows, highs, color="C0", alpha=0.2, label="95% interval over seeds")
    ax.plot(xs, lengths, "--", color="C0", label="episode length here")
    ax.plot(
        sorted(PUBLISHED),
        [PUBLISHED[n] for n in sorted(PUBLISHED)],
        "-s",
        color="C3",
        label="T-REX, 2020 study (5 seeds)",
    )
    ax.axhline(PUBLISHED_LENGTH, ls="--", color="C3", label="episode length, 2020 study")
    ax.set_xscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("training demonstrations")
    ax.set_ylabel("Spearman correlation, held-out-level demos")
    ax.set_ylim(-0.5, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("StarPilot (easy): predicted vs true return of held-out-level demos")
    fig.tight_layout()
    fig.savefig(out / "correlation_by_demos.png", dpi=100)
    print("\n".join(lines))


if __name__ == "__main__":
    main(*sys.argv[1:3])
