"""The tables of results/reward_recipe: every recipe on the validation levels (what a recipe is chosen by), and the
chosen ones on held-out levels, looked at once the choice is made.

    python results/reward_recipe/table.py results/reward_recipe runs/recipe [--held_out RECIPE,RECIPE]

Reads every runs/recipe/<game>/<recipe>/L<levels>_s<seed>/metrics.json; writes table.md and recipes.csv. Intervals
are 95% bootstraps over the levels, the episodes within them and the seeds (trex/pipeline/study_report.py:
level_set_figures); "minus length" is the paired difference from the episode-length baseline on the same demos.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from toolkit.files import write_csv, write_text
from toolkit.logger import fmt, fmt_interval
from trex.pipeline.study_report import ensemble_figures, level_set_figures
from trex.pipeline.sweep_report import flat_row
from trex.results import LevelSetFigures, RewardMetrics, read_metrics
from trex.reward.table import label_means


def runs(root: Path) -> dict[tuple[str, str, int], list[RewardMetrics]]:
    """{(game, recipe, training demos' levels): the seeds' metrics}, in the order recipes.yaml lists them."""
    out: dict[tuple[str, str, int], list[RewardMetrics]] = {}
    for path in sorted(root.glob("*/*/L*_s*/metrics.json")):
        game, recipe, point = path.parts[-4], path.parts[-3], path.parent.name
        out.setdefault((game, recipe, int(point[1:].split("_")[0])), []).append(read_metrics(path))
    return out


def row(key: tuple[str, str, int], metrics: list[RewardMetrics], blocks: list[LevelSetFigures]) -> dict:
    game, recipe, levels = key
    figures = level_set_figures(blocks)
    labels = label_means(metrics)
    aligned = labels.get("val_aligned", {})
    model, ceiling = aligned.get("model_accuracy"), aligned.get("true_reward_accuracy")
    train = labels.get("train", {})
    return {
        "game": game,
        "recipe": recipe,
        "demo_levels": levels,
        "seeds": len(metrics),
        "centred": figures["centred_spearman"],
        "length": figures["length_spearman"],
        "centred_minus_length": figures["centred_minus_length"],
        **ensemble_figures(blocks),  # the seeds as one reward, as step 4 uses them
        "clock_free_model": model,
        "clock_free_true_reward": ceiling,
        "clock_free_above_chance": None if model is None or ceiling is None else (model - 0.5) / (ceiling - 0.5),
        "train_true_reward": train.get("true_reward_accuracy"),
        "train_clock": train.get("clock_accuracy"),
        "train_model": train.get("model_accuracy"),
        # snippet pairs of new episodes of the training levels (recipes.csv only): what carries within the levels
        "new_episodes_model": labels.get("new_episodes", {}).get("model_accuracy"),
        "new_episodes_true_reward": labels.get("new_episodes", {}).get("true_reward_accuracy"),
        "best_step": float(np.mean([m["best_step"] for m in metrics])),
        "wall_s": float(np.mean([m["wall_time_s"] for m in metrics])),
    }


def main(out: Path, root: Path, held_out: list[str]) -> None:
    found = runs(root)
    val_rows = [row(k, ms, [m["validation"] for m in ms]) for k, ms in found.items() if "validation" in ms[0]]
    test_rows = [row(k, ms, [m["held_out"] for m in ms]) for k, ms in found.items() if k[1] in held_out]
    header = (
        "| game | recipe | training demos' levels | seeds | centred | length | centred - length [paired] | "
        "seeds' ensemble: centred / minus length [paired] | "
        "clock-free pairs: model / true reward (share above chance) | training pairs: true reward / clock / model | "
        "best step | s per model |"
    )
    rule = "|---|---|---|---|---|---|---|---|---|---|---|---|"

    def lines(rows: list[dict]) -> list[str]:
        return [
            f"| {r['game']} | {r['recipe']} | {r['demo_levels']} | {r['seeds']} | {fmt_interval(r['centred'])} | "
            f"{fmt_interval(r['length'])} | {fmt_interval(r['centred_minus_length'])} | "
            f"{fmt(r['ensemble_centred']['mean'])} / {fmt_interval(r['ensemble_minus_length'])} | "
            f"{fmt(r['clock_free_model'])} / {fmt(r['clock_free_true_reward'])} "
            f"({fmt(r['clock_free_above_chance'])}) | {fmt(r['train_true_reward'])} / {fmt(r['train_clock'])} / "
            f"{fmt(r['train_model'])} | {r['best_step']:.0f} | {r['wall_s']:.0f} |"
            for r in rows
        ]

    text = [
        "# Reward recipes",
        "",
        "## Validation levels (what a recipe is chosen by)",
        "",
        "Spearman correlation of the centred predicted returns with the true returns of the validation levels' demos",
        "(mean over seeds [95% bootstrap]); the clock-free pairs are time-aligned snippet pairs of the validation",
        "demos, on which a clock scores 0.5, of the recipe's snippet lengths (so their ceiling differs between",
        "recipes); the share above chance is (model - 0.5) / (true reward - 0.5): 0 for chance, 1 for the ceiling.",
        "The seeds' ensemble is the mean of the seeds' centred predicted returns (step 4 averages their rewards so),",
        "its interval a bootstrap over the demos alone.",
        "",
        header,
        rule,
        *lines(val_rows),
        "",
        "## Held-out levels (the chosen recipes, looked at once)",
        "",
        header,
        rule,
        *lines(test_rows),
        "",
    ]
    write_text(out / "table.md", "\n".join(text))
    flat = [
        {"level_set": name, **flat_row(r)}
        for name, rows in (("validation", val_rows), ("held_out", test_rows))
        for r in rows
    ]
    write_csv(out / "recipes.csv", flat, list(flat[0]) if flat else [])
    print(f"wrote {out / 'table.md'}, {out / 'recipes.csv'}")


if __name__ == "__main__":
    args = sys.argv[1:]
    chosen = args[args.index("--held_out") + 1].split(",") if "--held_out" in args else []
    main(Path(args[0]), Path(args[1]), chosen)
