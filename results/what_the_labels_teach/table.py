"""What the labels of results/level_generalisation's recipe can teach, and how its reward models rank held-out
demos, with the intervals that follow how the demos were drawn (levels, then episodes, then seeds) beside the
intervals of demos resampled as if independent.

    python results/what_the_labels_teach/table.py results/what_the_labels_teach \
        starpilot=runs/labels/sweep_starpilot fruitbot=runs/labels/sweep_fruitbot

Reads every `sweep/L<levels>_n<demos>_s<seed>/metrics.json` of each sweep folder; writes table.md and results.csv.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from toolkit.files import write_csv, write_text
from toolkit.logger import fmt, fmt_interval
from trex.pipeline.study_report import reward_figures
from trex.results import RewardMetrics, read_metrics
from trex.reward.evaluation import (
    block_offset,
    bootstrap_ci,
    centred_returns,
    spearman_difference_ci,
    standardised_ensemble,
)
from trex.reward.table import LABEL_FIGURES, PAIR_SET_NAMES, label_means


def models(sweep: Path) -> dict[int, list[RewardMetrics]]:
    """{training demos' levels (0: a fresh level per demo): the seeds' metrics}."""
    out: dict[int, list[RewardMetrics]] = {}
    for path in sorted(sweep.glob("sweep/L*_n*_s*/metrics.json")):
        levels = int(path.parent.name[1:].split("_")[0])
        out.setdefault(levels, []).append(read_metrics(path))
    return out


def independent_interval(metrics: list[RewardMetrics]) -> list[float] | None:
    """The held-out centred Spearman's interval as the toolkit drew it before: demos resampled as independent."""
    r = metrics[0]["held_out"]["returns"]
    true, lengths = np.array(r["true"]), np.array(r["length"])
    centred = np.array(
        [centred_returns(m["held_out"]["returns"]["predicted"], lengths, block_offset(m["held_out"])) for m in metrics]
    )
    return bootstrap_ci(true, centred, np.random.default_rng(1))["spearman"]


def ensemble(metrics: list[RewardMetrics]) -> dict:
    """The seeds' models as one ensemble (each standardised by its training frames' reward statistics): its
    held-out Spearman less the length baseline's, paired, over levels then episodes."""
    r = metrics[0]["held_out"]["returns"]
    true, lengths = np.array(r["true"]), np.array(r["length"])
    preds = np.array([m["held_out"]["returns"]["predicted"] for m in metrics])
    offsets = np.array([block_offset(m["held_out"]) for m in metrics])
    stds = np.array([m["reward_stats"]["std"] for m in metrics])
    mean = standardised_ensemble(preds, lengths, offsets, stds)
    clusters = np.array(r["level_seed"]) if "level_seed" in r else None
    diff = spearman_difference_ci(true, mean[None], lengths, np.random.default_rng(4), clusters=clusters)
    ci = diff["ci95"]
    low, high = ci if isinstance(ci, list) else (None, None)
    return {"mean": diff["difference"], "ci95_low": low, "ci95_high": high}


def main(out: Path, sweeps: dict[str, Path]) -> None:
    label_rows, rank_rows = [], []
    for game, sweep in sweeps.items():
        for levels, metrics in sorted(models(sweep).items()):
            where = {"game": game, "demo_levels": levels or "fresh", "seeds": len(metrics)}
            for key, means in label_means(metrics).items():
                label_rows.append({**where, "pairs": PAIR_SET_NAMES[key], "number": means.pop("pairs"), **means})
            held = reward_figures(metrics)["held_out"]
            within = [m["held_out"].get("within_checkpoint", {}) for m in metrics]
            rank_rows.append(
                {
                    **where,
                    "levels_scored": held["n_levels"],
                    "centred": held["centred_spearman"],
                    "centred_independent": independent_interval(metrics),
                    "length": held["length_spearman"],
                    "centred_minus_length": held["centred_minus_length"],
                    "partial": held["partial_spearman"],
                    "within_level": held["within_level_spearman"],
                    "within_checkpoint": float(np.mean([w["model"]["spearman"] for w in within])),
                    "within_checkpoint_length": within[0]["length_baseline"]["spearman"],
                    "ensemble_minus_length": ensemble(metrics),
                }
            )
    lines = [
        "# What the labels can teach, and how the reward ranks held-out demos",
        "",
        "Each set of snippet pairs the reward models met (means over seeds): ties (equal true return in both windows),",
        "pairs the true reward orders against the label, and the accuracy of the true reward (the ceiling), of a clock",
        "(a reward that only grows with time) and of the model.",
        "",
        "| game | training demos' levels | pairs | number | ties | against the label | true reward | clock | model |",
        "|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['game']} | {r['demo_levels']} | {r['pairs']} | {r['number']:,} | "
            + " | ".join(fmt(r[f]) for f in LABEL_FIGURES)
            + " |"
            for r in label_rows
        ],
        "",
        "Held-out levels, Spearman correlation with the true return (mean over seeds; 95% bootstrap over the levels,",
        "the episodes within them and the seeds; 'as independent': the same figure with the demos resampled as if",
        "independent, as the toolkit drew its intervals before; 'ensemble': the seeds' models as one, each",
        "standardised by its training frames' reward statistics; partial, within-level: seeds' mean and interval):",
        "",
        "| game | training demos' levels | seeds | held-out levels | centred | centred, demos as independent | "
        "length | centred - length [paired] | ensemble - length [paired] | partial given length | within-level | "
        "within-checkpoint (length) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['game']} | {r['demo_levels']} | {r['seeds']} | {r['levels_scored']} | "
            f"{fmt_interval(r['centred'])} | {_pair(r['centred_independent'])} | {fmt_interval(r['length'])} | "
            f"{fmt_interval(r['centred_minus_length'])} | {fmt_interval(r['ensemble_minus_length'])} | "
            f"{fmt_interval(r['partial'])} | "
            f"{fmt_interval(r['within_level'])} | {fmt(r['within_checkpoint'])} "
            f"({fmt(r['within_checkpoint_length'])}) |"
            for r in rank_rows
        ],
        "",
    ]
    write_text(out / "table.md", "\n".join(lines))
    columns = ("game", "demo_levels", "seeds", "pairs", "number", *LABEL_FIGURES)
    write_csv(out / "labels.csv", label_rows, columns)
    print(f"wrote {out / 'table.md'}, {out / 'labels.csv'}")


def _pair(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{fmt(ci[0])}, {fmt(ci[1])}]"


if __name__ == "__main__":
    out_dir, *pairs = sys.argv[1:]
    main(Path(out_dir), {p.split("=", 1)[0]: Path(p.split("=", 1)[1]) for p in pairs})
