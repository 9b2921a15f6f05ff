"""The sweep's results: `sweep_results.csv` (one row per reward model, with its policy and demonstrator), the
figures and `sweep_report.md`, from the finished runs' own metrics.json and summary.json.

    python -m trex.sweep -c configs/sweep/study2020.yaml --collect true
"""

from __future__ import annotations

import math
from pathlib import Path

from toolkit.figures import figure_row, save_figure
from toolkit.files import read_json, write_csv, write_text
from toolkit.logger import fmt, fmt_interval
from trex.pipeline.steps import Step
from trex.pipeline.sweep_plan import SweepConfig
from trex.results import read_metrics
from trex.reward.demo_count_curve import sweep_summary
from trex.reward.evaluation import figure_bounds, seed_interval
from trex.reward.plots import plot_sweep
from trex.reward.table import FIGURE_COLUMNS, LABEL_COLUMNS, VALIDATION_COLUMNS, figure_columns

RESULT_COLUMNS = (
    "game",
    "demonstrator_seed",
    "demo_levels",
    "preset",
    "num_demos",
    "seed",
    "best_val_accuracy",
    *FIGURE_COLUMNS,
    *VALIDATION_COLUMNS,
    *LABEL_COLUMNS,
    "policy_train_return",
    "policy_held_out_return",
    "policy_held_out_normalized_score",
    "demonstrator_train_return",
    "demonstrator_held_out_return",
    "demonstrator_held_out_normalized_score",
    "reward_run_dir",
)


def collect(cfg: SweepConfig, jobs: list[Step], all_jobs: list[Step]) -> Path:
    """sweep_results.csv (one row per finished reward model of `jobs`, with its policy and demonstrator; `all_jobs`:
    every job of the grid, whatever its `steps`), the figures and sweep_report.md."""
    run = Path(cfg.run_dir)
    by_name = {j.name: j for j in jobs}
    ppo_summary = {
        (j.grid["game"], j.grid["demonstrator_seed"]): read_json(Path(j.config.run_dir) / "summary.json")
        for j in all_jobs
        if j.stage == "ppo"
    }
    rows = []
    for j in jobs:
        if j.stage != "reward" or not (Path(j.config.run_dir) / "metrics.json").is_file():
            continue
        m = read_metrics(Path(j.config.run_dir) / "metrics.json")
        policy = by_name.get(j.name.replace("reward_", "policy_", 1))
        pol = read_json(Path(policy.config.run_dir) / "summary.json") if policy else {}
        demo = ppo_summary.get((j.grid["game"], j.grid["demonstrator_seed"]), {})
        rows.append(
            {
                **j.grid,
                "best_val_accuracy": m["best_val_accuracy"],
                "reward_run_dir": j.config.run_dir,
                **figure_columns(m),
                "policy_train_return": pol.get("train_return"),
                "policy_held_out_return": pol.get("held_out_return"),
                "policy_held_out_normalized_score": pol.get("held_out_normalized_score"),
                "demonstrator_train_return": demo.get("train_return"),
                "demonstrator_held_out_return": demo.get("held_out_return"),
                "demonstrator_held_out_normalized_score": demo.get("held_out_normalized_score"),
            }
        )
    write_csv(run / "sweep_results.csv", rows, RESULT_COLUMNS)
    figures = []
    for game in cfg.games:
        for preset in cfg.presets:
            mine = [r for r in rows if r["game"] == game and r["preset"] == preset]
            if mine:
                path = run / f"correlation_{game}_{preset}.png"
                plot_sweep(sweep_summary(mine), path, f"{game}, preset {preset}: mean and 95% interval over seeds")
                figures.append(path)
    levels_png = run / "correlation_by_levels.png"
    if len({r["demo_levels"] for r in rows}) > 1 and plot_by_levels(rows, levels_png):
        figures.append(levels_png)
    scores_png = run / "policy_scores.png"
    if any(r["policy_held_out_normalized_score"] is not None for r in rows) and plot_scores(rows, scores_png):
        figures.append(scores_png)
    report = write_sweep_report(cfg, rows, figures)
    print(f"collected {len(rows)} reward models -> {run / 'sweep_results.csv'}, {report}", flush=True)
    return report


def plot_by_levels(rows: list[dict], path: Path) -> bool:
    """Held-out Spearman against the number of distinct demo levels (fresh levels rightmost), per game, preset and
    number of demos: mean and 95% interval over seeds."""
    plt, fig, axes = figure_row(1)
    ax = axes[0]
    order = sorted({r["demo_levels"] for r in rows}, key=lambda n: (n == 0, n))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["game"], r["preset"], r["num_demos"]), []).append(r)
    for (game, preset, n), rs in sorted(groups.items()):
        stats = [seed_interval([r["held_out_spearman"] for r in rs if r["demo_levels"] == lv], (-1, 1)) for lv in order]
        x = [i for i, s in enumerate(stats) if s["mean"] is not None]
        mean = [stats[i]["mean"] for i in x]
        err = [
            [
                stats[i]["mean"] - (stats[i]["ci95_low"] if stats[i]["ci95_low"] is not None else stats[i]["mean"])
                for i in x
            ],
            [
                (stats[i]["ci95_high"] if stats[i]["ci95_high"] is not None else stats[i]["mean"]) - stats[i]["mean"]
                for i in x
            ],
        ]
        ax.errorbar(x, mean, yerr=err, fmt="-o", capsize=3, label=f"{game}, {preset}, {n} demos")
    ax.set_xticks(range(len(order)), ["fresh" if n == 0 else str(n) for n in order])
    ax.set_xlabel("distinct levels of the training demos")
    ax.set_ylabel("Spearman correlation, held-out levels")
    ax.set_ylim(-1, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(plt, fig, path)
    return True


def plot_scores(rows: list[dict], path: Path) -> bool:
    """Normalised held-out score of the T-REX policies (mean over seeds) against their demonstrators', per game."""
    plt, fig, axes = figure_row(1)
    ax = axes[0]
    games = sorted({r["game"] for r in rows})
    for offset, (column, label) in enumerate(
        (
            ("policy_held_out_normalized_score", "T-REX policy (learned reward)"),
            ("demonstrator_held_out_normalized_score", "PPO demonstrator"),
        )
    ):
        means = [seed_interval([r[column] for r in rows if r["game"] == g])["mean"] for g in games]
        ax.bar(
            [i + 0.4 * offset for i in range(len(games))],
            [m if m is not None else math.nan for m in means],
            width=0.4,
            label=label,
        )
    ax.set_xticks([i + 0.2 for i in range(len(games))], games)
    ax.set_ylabel("normalised score, held-out levels")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    save_figure(plt, fig, path)
    return True


def _val_accuracies(rows: list[dict]) -> str:
    """The seeds' mean accuracy of the model, the true reward and a clock on the validation pairs."""
    figures = ("model_accuracy", "true_reward_accuracy", "clock_accuracy")
    return " / ".join(fmt(seed_interval([r[f"labels_val_{f}"] for r in rows])["mean"]) for f in figures)


def write_sweep_report(cfg: SweepConfig, rows: list[dict], figures: list[Path]) -> Path:
    run = Path(cfg.run_dir)
    summary: dict[tuple, list[dict]] = {}
    for r in rows:
        summary.setdefault((r["game"], r["preset"], r["demo_levels"], r["num_demos"]), []).append(r)
    lines = [
        f"# Sweep `{cfg.name}`",
        "",
        f"{len(rows)} reward models collected from `{run}`; mean and 95% interval over seeds. Every figure comes "
        "from the runs' own metrics.json and summary.json (`sweep_results.csv` has one row per run). Centred: "
        "the predicted returns less the model's mean reward per frame times the episode's length (T-REX's loss "
        "cannot see a constant added to every frame's reward, and summed over episodes that constant's sign alone "
        "can flip the plain figure; trex/reward/evaluation.py: centred_returns). Validation pairs: the accuracy of "
        "the model, of the true reward (the ceiling) and of a clock (a reward that only grows with time) on the "
        "pairs the model was early-stopped on; a clock as good as the true reward there chooses a clock.",
        "",
        "| game | preset | demo levels | demos | seeds | Spearman, training levels | Spearman, held-out levels | "
        "Spearman, held-out, centred | length baseline, held-out | validation pairs: model / true reward / clock | "
        "T-REX policy, held-out return |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (game, preset, levels, n), rs in sorted(summary.items(), key=lambda kv: str(kv[0])):
        col = lambda c, rs=rs: fmt_interval(seed_interval([r[c] for r in rs], figure_bounds(c)))
        lines.append(
            f"| {game} | {preset} | {'fresh' if levels == 0 else levels} | {n} | {len(rs)} | "
            f"{col('new_episodes_spearman')} | {col('held_out_spearman')} | {col('held_out_centred_spearman')} | "
            f"{col('held_out_length_baseline_spearman')} | {_val_accuracies(rs)} | {col('policy_held_out_return')} |"
        )
    lines += [
        "",
        *[f"![{p.stem}]({p.name})" for p in figures],
        "",
        f"Collected with `python -m trex.sweep -c <this sweep's config> --collect true`; its resolved config is "
        f"`{run / 'config.yaml'}`.",
        "",
    ]
    path = run / "sweep_report.md"
    write_text(path, "\n".join(lines))
    return path
