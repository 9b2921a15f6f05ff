"""The sweep's results: `sweep_results.csv` (one row per reward model, with its policy and demonstrator), the
figures and `sweep_report.md`, from the finished runs' own metrics.json and summary.json.

    python -m trex.sweep -c configs/sweep/study2020.yaml --collect true
"""

from __future__ import annotations

import math
from pathlib import Path

from baseline_agent.checkpoint import list_checkpoints
from baseline_agent.envs import LevelSet
from baseline_agent.evaluation import checkpoint_returns
from toolkit.figures import figure_grid, figure_row, save_figure
from toolkit.files import read_json, write_csv, write_json, write_text
from toolkit.logger import fmt, fmt_interval
from trex.config import TrexConfig, held_out
from trex.pipeline.steps import Step
from trex.pipeline.study_report import level_set_figures
from trex.pipeline.sweep_plan import SweepConfig
from trex.results import RewardMetrics, read_metrics
from trex.reward.demo_count_curve import sweep_summary
from trex.reward.evaluation import figure_bounds, seed_interval
from trex.reward.plots import plot_sweep
from trex.reward.table import FIGURE_COLUMNS, LABEL_COLUMNS, VALIDATION_COLUMNS, figure_columns, label_means

# A pair set's accuracies in the report: the model's, the true reward's (the ceiling) and a clock's.
PAIR_FIGURES = ("model_accuracy", "true_reward_accuracy", "clock_accuracy")
RESULT_COLUMNS = (
    "game",
    "demonstrator_seed",
    "demo_levels",
    "preset",
    "num_demos",
    "seed",
    "ranking",
    "distinct_returns",
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
    for game, folder in cfg.demonstrators.items():  # shipped: no step-1 job, the summary shipped beside them
        summary = Path(folder) / "summary.json"
        if summary.is_file():
            ppo_summary[(game, cfg.demonstrator_seeds[0])] = read_json(summary)
    rows = []
    models: dict[tuple, list[RewardMetrics]] = {}  # by (game, preset, demo levels, demos): the seeds' metrics
    rankings: dict[tuple, dict] = {}  # by the same key: what ordered the demos (its last seed's)
    for j in jobs:
        if j.stage != "reward" or not (Path(j.config.run_dir) / "metrics.json").is_file():
            continue
        m = read_metrics(Path(j.config.run_dir) / "metrics.json")
        models.setdefault(group_key(j.grid), []).append(m)
        rankings[group_key(j.grid)] = ranked = ranking(j.config, m)
        policy = by_name.get(j.name.replace("reward_", "policy_", 1))
        pol = read_json(Path(policy.config.run_dir) / "summary.json") if policy else {}
        demo = ppo_summary.get((j.grid["game"], j.grid["demonstrator_seed"]), {})
        rows.append(
            {
                **j.grid,
                **ranked,
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
    step4 = step4_rows(cfg, all_jobs)
    step4_png = run / "step4_held_out.png"
    if step4 and plot_step4(step4, step4_png):
        figures.append(step4_png)
    held = [{**r, **rankings[group_key(r)]} for r in held_out_rows(models)]
    write_csv(run / "sweep_held_out.csv", [flat_row(r) for r in held], tuple(flat_row(held[0])) if held else ())
    games_png = run / "held_out_by_game.png"
    if held and plot_games(held, games_png):
        figures.append(games_png)
    report = write_sweep_report(cfg, rows, figures, held, policy_lines(cfg, step4))
    print(f"collected {len(rows)} reward models -> {run / 'sweep_results.csv'}, {report}", flush=True)
    return report


def ranking(cfg: TrexConfig, metrics: RewardMetrics) -> dict:
    """What ordered a reward model's demos: `return` (T-REX) or `noise` (D-REX), and how many distinct returns its
    training demos have (a game paying 10 or 0 has two: little for a ranking by return to order)."""
    returns = metrics.get("train_demo_returns") or []
    return {"ranking": cfg.rank_by, "distinct_returns": len({round(float(r), 6) for r in returns}) or None}


CELL = ("game", "preset", "demo_levels", "num_demos")  # what the seeds of one cell of the grid share


def group_key(cell: dict) -> tuple:
    """The seeds of one cell of the grid share it: (game, preset, demo levels, number of demos)."""
    return tuple(cell[k] for k in CELL)


def cell_fields(key: tuple) -> dict:
    """A `group_key` back as its named fields."""
    return dict(zip(CELL, key, strict=True))


def levels_label(demo_levels: int) -> str:
    """A number of demo levels as the tables and figures name it: 0 is a fresh level per demo."""
    return "fresh" if demo_levels == 0 else str(demo_levels)


def held_out_rows(models: dict[tuple, list[RewardMetrics]]) -> list[dict]:
    """Per cell of the grid, the held-out levels' figures over its seeds with level-clustered intervals
    (trex/pipeline/study_report.py: level_set_figures), beside the held-out snippet pairs' label figures: the model,
    the true reward (the ceiling) and a clock."""
    out = []
    for key, ms in sorted(models.items(), key=lambda kv: str(kv[0])):
        blocks = [m["held_out"] for m in ms if "returns" in m.get("held_out", {})]
        if len(blocks) != len(ms):
            continue  # a model without its demos' returns (older files): no clustered figure
        figures = level_set_figures(blocks)
        pairs = label_means(ms).get("held_out", {})
        model_pairs = [m["labels"]["held_out"]["model_accuracy"] for m in ms if "held_out" in m.get("labels", {})]
        out.append(
            {
                **cell_fields(key),
                "seeds": len(ms),
                "n_levels": figures["n_levels"],
                "centred_spearman": figures["centred_spearman"],
                "length_spearman": figures["length_spearman"],
                "centred_minus_length": figures["centred_minus_length"],
                # the model's over its seeds; the true reward's and the clock's are the same for every seed (the
                # held-out pairs depend on the demos only)
                "pairs_model_accuracy": seed_interval(model_pairs, (0, 1)),
                **{f"pairs_{f}": pairs.get(f) for f in PAIR_FIGURES[1:]},
            }
        )
    return out


INTERVAL_PARTS = ("mean", "ci95_low", "ci95_high")  # an interval's keys, and its columns' suffixes in a CSV


def flat_row(row: dict) -> dict:
    """A held-out row for a CSV: each interval as its mean, ci95_low and ci95_high columns."""
    flat = {k: v for k, v in row.items() if not isinstance(v, dict)}
    for k, v in row.items():
        if isinstance(v, dict):
            flat.update({f"{k}_{s}": v[s] for s in INTERVAL_PARTS})
    return flat


def nested_row(flat: dict) -> dict:
    """flat_row undone: each interval's mean, ci95_low and ci95_high columns as one dict again."""
    suffixes = tuple(f"_{s}" for s in INTERVAL_PARTS)
    row = {k: v for k, v in flat.items() if not k.endswith(suffixes)}
    for key in {k.removesuffix(s) for k in flat for s in suffixes if k.endswith(s)}:
        row[key] = {s: flat[f"{key}_{s}"] for s in INTERVAL_PARTS}
    return row


def plot_games(held: list[dict], path: Path) -> bool:
    """Two panels per game, two games to a row, in the manner of the Procgen paper's figures, at each number of
    demo levels: the learned reward's held-out Spearman (centred) beside episode length's, with level-clustered 95%
    intervals; and on the held-out snippet pairs the model's accuracy (95% interval over seeds) beside the true
    reward's (the ceiling of any reward on these labels) and a clock's."""
    games = sorted({r["game"] for r in held})
    plt, fig, axes = figure_grid(2 * len(games), 2 * min(len(games), 2), width=2.7, height=3)
    for i, game in enumerate(games):
        mine = sorted((r for r in held if r["game"] == game), key=lambda r: (r["demo_levels"] == 0, r["demo_levels"]))
        cells = [f"{levels_label(r['demo_levels'])} levels\n{r['preset']}\n{r['num_demos']} demos" for r in mine]
        ranking, pairs = axes[2 * i], axes[2 * i + 1]
        for offset, (figure, label) in enumerate(
            (("centred_spearman", "learned reward (centred)"), ("length_spearman", "episode length"))
        ):
            x = [j + 0.15 * (2 * offset - 1) for j in range(len(mine))]
            means, bars = error_bars([r[figure] for r in mine])
            ranking.errorbar(x, means, yerr=bars, fmt="o", capsize=3, label=label)
        ranking.axhline(0, color="grey", lw=0.5)
        ranking.set_ylim(-1, 1)
        ranking.set_title(f"{game}: episode ranking", fontsize=9)
        for offset, (figure, label) in enumerate(
            (
                ("model_accuracy", "model"),
                ("true_reward_accuracy", "true reward (ceiling)"),
                ("clock_accuracy", "clock"),
            )
        ):
            x = [j + 0.2 * (offset - 1) for j in range(len(mine))]
            stats = [r[f"pairs_{figure}"] for r in mine]
            if offset:  # one value for every seed: no interval
                stats = [{"mean": v, "ci95_low": None, "ci95_high": None} for v in stats]
            means, bars = error_bars(stats)
            pairs.errorbar(x, means, yerr=bars, fmt="os^"[offset], capsize=3, color=f"C{offset + 2}", label=label)
        pairs.axhline(0.5, color="grey", lw=0.5)
        pairs.set_ylim(0, 1)
        pairs.set_title(f"{game}: snippet pairs", fontsize=9)
        for ax in (ranking, pairs):
            ax.set_xticks(range(len(mine)), cells, fontsize=7)
            ax.set_xlim(-0.6, len(mine) - 0.4)
            ax.grid(alpha=0.3)
    axes[0].set_ylabel("Spearman, held-out levels")
    axes[1].set_ylabel("accuracy, held-out pairs")
    axes[0].legend(fontsize=6, loc="lower left")
    axes[1].legend(fontsize=6, loc="lower left")
    save_figure(plt, fig, path)
    return True


def error_bars(stats: list[dict]) -> tuple[list[float], list[list[float]]]:
    """The means (NaN where undefined) and each interval's reach below and above its mean (none where it is
    unknown), as matplotlib's `y` and `yerr`."""
    means, low, high = [], [], []
    for st in stats:
        mean = st["mean"]
        means.append(math.nan if mean is None else mean)
        low.append(0.0 if mean is None or st["ci95_low"] is None else mean - st["ci95_low"])
        high.append(0.0 if mean is None or st["ci95_high"] is None else st["ci95_high"] - mean)
    return means, [low, high]


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
        means, bars = error_bars([stats[i] for i in x])
        ax.errorbar(x, means, yerr=bars, fmt="-o", capsize=3, label=f"{game}, {preset}, {n} demos")
    ax.set_xticks(range(len(order)), [levels_label(n) for n in order])
    ax.set_xlabel("distinct levels of the training demos")
    ax.set_ylabel("Spearman correlation, held-out levels")
    ax.set_ylim(-1, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(plt, fig, path)
    return True


def plot_step4(step4: list[dict], path: Path) -> bool:
    """Step 4 per game and cell: the final T-REX policies' held-out return beside PPO on the true reward, on
    survival, and random actions (95% intervals: over seeds; random's over its episodes)."""
    plt, fig, axes = figure_row(1, width=max(5.0, 1.6 * len(step4)))
    ax = axes[0]
    for offset, (key, label) in enumerate(STEP4_COLUMNS):
        means, bars = error_bars([r[key] for r in step4])
        x = [i + 0.18 * (offset - 1.5) for i in range(len(step4))]
        ax.errorbar(x, means, yerr=bars, fmt="os^D"[offset], capsize=3, label=label)
    ax.set_xticks(range(len(step4)), [f"{r['game']}\n{r['demo_levels']} levels" for r in step4], fontsize=8)
    ax.set_ylabel("return, held-out levels")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(plt, fig, path)
    return True


def _val_accuracies(rows: list[dict]) -> str:
    """The seeds' mean accuracy of the model, the true reward and a clock on the validation pairs."""
    return " / ".join(fmt(seed_interval([r[f"labels_val_{f}"] for r in rows])["mean"]) for f in PAIR_FIGURES)


def held_out_lines(held: list[dict]) -> list[str]:
    """The report's table of level-clustered held-out figures (`held_out_rows`)."""
    if not held:
        return []
    lines = [
        "Held-out levels, clustered: mean over seeds [95% bootstrap over the levels, the episodes within them and the "
        "seeds]; minus length is the paired difference from episode length on the same demos (an interval above "
        "zero: the learned reward ranks unseen levels' episodes beyond what their length says). Held-out snippet "
        "pairs: the accuracy of the model (mean [95% interval over seeds]), of the true reward (the ceiling) and of a "
        "clock.",
        "",
        "| game | preset | demo levels | demos | ranking (distinct returns) | seeds | held-out levels | "
        "centred Spearman | length | centred minus length | held-out snippet pairs: model / true reward / clock |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in held:
        pairs = " / ".join([fmt_interval(r["pairs_model_accuracy"]), *(fmt(r[f"pairs_{f}"]) for f in PAIR_FIGURES[1:])])
        lines.append(
            f"| {r['game']} | {r['preset']} | {levels_label(r['demo_levels'])} | "
            f"{r['num_demos']} | {r['ranking']} ({r['distinct_returns']}) | {r['seeds']} | {r['n_levels']} | "
            f"{fmt_interval(r['centred_spearman'])} | {fmt_interval(r['length_spearman'])} | "
            f"{fmt_interval(r['centred_minus_length'])} | {pairs} |"
        )
    return [*lines, ""]


def held_out_return(cfg: SweepConfig, path: Path, game: str, levels: LevelSet, checkpoint: Path | None) -> dict:
    """The held-out return of a final checkpoint, or of random actions for None: cfg.eval_episodes episodes on
    `levels`, seed 0 (`summarize_returns`), measured once and kept in `path`."""
    if not path.is_file():
        returns = checkpoint_returns(checkpoint, game, cfg.distribution_mode, levels, cfg.eval_episodes)
        write_json(
            path,
            {
                "levels": [levels.start_level, levels.num_levels],
                "checkpoint": checkpoint and str(checkpoint),
                **returns,
            },
        )
    return read_json(path)


STEP4_COLUMNS = (
    ("trex", "T-REX policy"),
    ("true_reward", "PPO, true reward"),
    ("survival", "PPO, survival"),
    ("random", "random actions"),
)


def step4_rows(cfg: SweepConfig, all_jobs: list[Step]) -> list[dict]:
    """Step 4 beside its controls, per cell: the final T-REX policies' held-out return (mean and 95% interval over
    seeds), PPO's on the true reward and on survival at the same budget (over their seeds), and random actions',
    each played cfg.eval_episodes episodes on the demos' held-out levels (kept as held_out_eval.json in each run,
    random_<game>.json in the sweep folder)."""
    levels = {j.config.env_name: held_out(j.config) for j in all_jobs if j.stage == "demos"}
    policies: dict[tuple, list[float | None]] = {}  # by cell: each seed's final return
    controls: dict[tuple, list[float | None]] = {}  # by (game, control): each seed's final return
    for j in all_jobs:
        if j.stage not in ("policy", "control") or not j.done():
            continue
        run = Path(j.config.run_dir)
        final = held_out_return(
            cfg,
            run / "held_out_eval.json",
            j.grid["game"],
            levels[j.grid["game"]],
            list_checkpoints(run / "checkpoints")[-1],
        )
        if j.stage == "policy":
            policies.setdefault(group_key(j.grid), []).append(final["mean"])
        else:
            controls.setdefault((j.grid["game"], j.grid["control"]), []).append(final["mean"])
    return [
        {
            **cell_fields(key),
            "seeds": len(finals),
            "trex": seed_interval(finals),
            **{c: seed_interval(controls.get((key[0], c), [])) for c in ("true_reward", "survival")},
            "random": held_out_return(cfg, Path(cfg.run_dir) / f"random_{key[0]}.json", key[0], levels[key[0]], None),
        }
        for key, finals in sorted(policies.items(), key=lambda kv: str(kv[0]))
    ]


def policy_lines(cfg: SweepConfig, step4: list[dict]) -> list[str]:
    """The report's table of `step4_rows`."""
    if not step4:
        return []
    lines = [
        f"Step 4 beside its controls, held-out return of the final policies ({cfg.eval_episodes} episodes each on the "
        "demos' held-out levels; mean [95% interval over seeds]): the T-REX policy on each cell's reward model, PPO on "
        "the true reward and on survival alone (+1 per step) at the same budget, network and levels, and random "
        "actions (its interval over its episodes).",
        "",
        "| game | preset | demo levels | demos | seeds | " + " | ".join(label for _, label in STEP4_COLUMNS) + " |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in step4:
        lines.append(
            f"| {r['game']} | {r['preset']} | {levels_label(r['demo_levels'])} | "
            f"{r['num_demos']} | {r['seeds']} | " + " | ".join(fmt_interval(r[k]) for k, _ in STEP4_COLUMNS) + " |"
        )
    return [*lines, ""]


def write_sweep_report(
    cfg: SweepConfig, rows: list[dict], figures: list[Path], held: list[dict], policies: list[str]
) -> Path:
    run = Path(cfg.run_dir)
    summary: dict[tuple, list[dict]] = {}
    for r in rows:
        summary.setdefault(group_key(r), []).append(r)
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
        "Spearman, held-out, centred | length baseline, held-out | validation pairs: model / true reward / clock |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (game, preset, levels, n), rs in sorted(summary.items(), key=lambda kv: str(kv[0])):
        col = lambda c, rs=rs: fmt_interval(seed_interval([r[c] for r in rs], figure_bounds(c)))
        lines.append(
            f"| {game} | {preset} | {levels_label(levels)} | {n} | {len(rs)} | "
            f"{col('new_episodes_spearman')} | {col('held_out_spearman')} | {col('held_out_centred_spearman')} | "
            f"{col('held_out_length_baseline_spearman')} | {_val_accuracies(rs)} |"
        )
    lines += [
        "",
        *held_out_lines(held),
        *policies,
        *[f"![{p.stem}]({p.name})" for p in figures],
        "",
        f"Collected with `python -m trex.sweep -c <this sweep's config> --collect true`; its resolved config is "
        f"`{run / 'config.yaml'}`.",
        "",
    ]
    path = run / "sweep_report.md"
    write_text(path, "\n".join(lines))
    return path
