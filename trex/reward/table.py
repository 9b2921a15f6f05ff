"""The figures of one reward model as a row of a results table: the columns every table of reward models shares
(the study's and the sweep's reports, the demo-count curve, the results scripts), read from its metrics.json."""

from __future__ import annotations

import numpy as np

from trex.level_sets import SCORED_SETS
from trex.results import RewardMetrics, correlation, scored_set
from trex.reward.evaluation import centred_figures

METRICS = ("spearman", "kendall", "pearson")
# One-number figures of a level set's block beyond the correlations: what a reward must beat "time passes" by.
EXTRA_FIGURES = (
    "partial_spearman",
    "snippet_accuracy",
    "offset_shift",
    "within_level_spearman",
    "within_checkpoint_spearman",
)
# What each pair set's labels can teach (trex/reward/pairs.py: label_figures), as labels_<pair set>_<figure>.
PAIR_SETS = ("train", "val", "val_aligned", *SCORED_SETS)
PAIR_SET_NAMES = {
    "train": "training pairs",
    "val": "validation pairs",
    "val_aligned": "time-aligned pairs, validation levels",
    **{key: f"snippet pairs, {name}" for key, name in SCORED_SETS.items()},
}
LABEL_FIGURES = ("ties", "against_label", "true_reward_accuracy", "clock_accuracy", "model_accuracy")
# The figures of one reward model in a table row: each correlation of the model, the length and time-only
# baselines and the centred returns, and the extra figures, on both level sets.
FIGURE_COLUMNS = tuple(
    f"{key}_{kind}{m}"
    for kind in ("", "length_baseline_", "centred_", "time_baseline_")
    for key in SCORED_SETS
    for m in METRICS
) + tuple(f"{key}_{f}" for f in EXTRA_FIGURES for key in SCORED_SETS)
LABEL_COLUMNS = tuple(f"labels_{s}_{f}" for s in PAIR_SETS for f in LABEL_FIGURES)
# The validation levels' figures (metrics.json's `validation`, with val_num_levels): what a recipe is chosen by.
VALIDATION_COLUMNS = tuple(f"validation_{kind}spearman" for kind in ("", "length_baseline_", "centred_"))


def figure_columns(metrics: RewardMetrics) -> dict[str, float | None]:
    """The FIGURE_COLUMNS, VALIDATION_COLUMNS and LABEL_COLUMNS of a metrics.json (the centred figures recomputed
    from its per-demo returns; figures a file from before they existed lacks are None)."""
    out: dict[str, float | None] = {}
    for key in SCORED_SETS:
        block = scored_set(metrics, key)
        centred = centred_figures(block)
        for m in METRICS:
            out[f"{key}_{m}"] = correlation(block, m)
            out[f"{key}_length_baseline_{m}"] = correlation(block["length_baseline"], m)
            out[f"{key}_centred_{m}"] = centred[m]
            time_baseline = block.get("time_baseline")
            out[f"{key}_time_baseline_{m}"] = None if time_baseline is None else correlation(time_baseline, m)
        out[f"{key}_partial_spearman"] = block.get("partial_spearman", {}).get("value")
        out[f"{key}_snippet_accuracy"] = block.get("snippet_accuracy")
        out[f"{key}_offset_shift"] = block.get("offset", {}).get("shift")
        out[f"{key}_within_level_spearman"] = block.get("within_level", {}).get("model", {}).get("spearman")
        out[f"{key}_within_checkpoint_spearman"] = block.get("within_checkpoint", {}).get("model", {}).get("spearman")
    validation = metrics.get("validation")
    out["validation_spearman"] = None if validation is None else correlation(validation, "spearman")
    out["validation_length_baseline_spearman"] = (
        None if validation is None else correlation(validation["length_baseline"], "spearman")
    )
    out["validation_centred_spearman"] = None if validation is None else centred_figures(validation)["spearman"]
    labels = metrics.get("labels", {})
    for s in PAIR_SETS:
        for f in LABEL_FIGURES:
            out[f"labels_{s}_{f}"] = labels[s][f] if s in labels else None  # type: ignore[literal-required]
    return {c: out[c] for c in (*FIGURE_COLUMNS, *VALIDATION_COLUMNS, *LABEL_COLUMNS)}


def label_means(metrics: list[RewardMetrics]) -> dict[str, dict[str, float | None]]:
    """{pair set: its number of pairs and each LABEL_FIGURES figure's mean over the seeds' models (None where no
    model measured it)}, for every pair set with pairs (files from before `labels` existed have none)."""
    out: dict[str, dict[str, float | None]] = {}
    for key in PAIR_SETS:
        found = [m["labels"][key] for m in metrics if key in m.get("labels", {})]
        if not found or not found[0]["pairs"]:
            continue
        out[key] = {"pairs": found[0]["pairs"]}
        for f in LABEL_FIGURES:
            values = [x[f] for x in found if x[f] is not None]  # type: ignore[literal-required]
            out[key][f] = float(np.mean(values)) if values else None
    return out
