"""The plots of a reward model and of a demo-count curve (PNG, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolkit.figures import figure_row, save_figure
from toolkit.logger import fmt
from trex.demos.store import Demo
from trex.results import LevelSetFigures


def _z(x: np.ndarray | list[float] | list[int]) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / x.std() if len(x) and x.std() > 0 else x - (x.mean() if len(x) else 0.0)


def plot_predicted_vs_true(
    level_sets: dict[str, tuple[list[Demo], list[np.ndarray], LevelSetFigures]], path: str | Path
) -> None:
    """Predicted return against true return per level set; episode length (the baseline) on the same z-scale."""
    plt, fig, axes = figure_row(len(level_sets))
    for ax, (name, (demos, rewards, metrics)) in zip(axes, level_sets.items(), strict=True):
        true = np.array([d.record.ret for d in demos])
        ax.scatter(true, _z([r.sum() for r in rewards]), s=18, label="predicted return (z-score)")
        ax.scatter(
            true,
            _z([len(d.obs) for d in demos]),
            s=18,
            marker="x",
            alpha=0.6,
            label="episode length, baseline (z-score)",
        )
        base = metrics["length_baseline"]
        ax.set_title(
            f"{name}: n={metrics['n_demos']}  spearman {fmt(metrics['spearman'])} (length {fmt(base['spearman'])})",
            fontsize=9,
        )
        ax.set_xlabel("true return")
        ax.set_ylabel("z-score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(plt, fig, path)


def plot_cumulative(demos: list[Demo], rewards: list[np.ndarray], path: str | Path, count: int = 4) -> None:
    """Cumulative predicted and true reward over time for a few demos spread across the return range."""
    order = np.argsort([d.record.ret for d in demos], kind="stable")
    chosen = order[np.unique(np.linspace(0, len(order) - 1, min(count, len(order))).round().astype(int))]
    plt, fig, axes = figure_row(max(len(chosen), 1), width=4.0)
    for ax, k in zip(axes, chosen, strict=False):
        ax.plot(np.cumsum(demos[k].rewards), color="black", label="true")
        twin = ax.twinx()
        twin.plot(np.cumsum(rewards[k]), color="tab:blue", label="predicted")
        ax.set_title(f"return {demos[k].record.ret:g}, length {len(demos[k].obs)}", fontsize=9)
        ax.set_xlabel("time step")
        ax.set_ylabel("cumulative true reward")
        twin.set_ylabel("cumulative predicted reward", color="tab:blue")
    save_figure(plt, fig, path)


def plot_reward_by_time(level_sets: dict[str, list[np.ndarray]], path: str | Path) -> None:
    """Mean predicted per-frame reward at each time step; a time-driven "U shape" shows up here."""
    plt, fig, axes = figure_row(1, width=7.0)
    ax = axes[0]
    for name, rewards in level_sets.items():
        horizon = max((len(r) for r in rewards), default=0)
        total, count = np.zeros(horizon), np.zeros(horizon)
        for r in rewards:
            total[: len(r)] += r
            count[: len(r)] += 1
        keep = count >= max(1, 0.1 * len(rewards))  # steps most episodes reach; the tail is a few long ones
        ax.plot(np.arange(horizon)[keep], total[keep] / count[keep], label=f"{name} ({len(rewards)} demos)")
    ax.set_xlabel("time step in episode")
    ax.set_ylabel("mean predicted reward")
    ax.set_title("predicted reward by time step (steps reached by >=10% of demos)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(plt, fig, path)


def plot_sweep(summary: list[dict], path: str | Path, title: str) -> None:
    """Spearman correlation against the number of training demos, one line per number of distinct demo levels,
    on new episodes of the training levels and on held-out levels: mean and 95% interval over seeds, with the
    episode-length baseline dashed."""
    plt, fig, axes = figure_row(2)
    levels = sorted({p["demo_levels"] for p in summary}, key=lambda n: (n == 0, n))
    for ax, key, where in zip(
        axes, ("new_episodes", "held_out"), ("training levels, new episodes", "held-out levels"), strict=True
    ):
        for i, n_levels in enumerate(levels):
            pts = sorted((p for p in summary if p["demo_levels"] == n_levels), key=lambda p: p["num_demos"])
            x = np.array([p["num_demos"] for p in pts])
            label = "fresh level per demo" if n_levels == 0 else f"{n_levels} levels"
            for column, style, name in (
                (f"{key}_spearman", "-o", "T-REX"),
                (f"{key}_length_baseline_spearman", "--", "length baseline"),
            ):
                mean = np.array([np.nan if p[column]["mean"] is None else p[column]["mean"] for p in pts])
                low = np.array([np.nan if p[column]["ci95_low"] is None else p[column]["ci95_low"] for p in pts])
                high = np.array([np.nan if p[column]["ci95_high"] is None else p[column]["ci95_high"] for p in pts])
                ax.plot(x, mean, style, color=f"C{i}", label=f"{name}, {label}")
                ax.fill_between(x, low, high, color=f"C{i}", alpha=0.15 if name == "T-REX" else 0.05)
        ax.set_xscale("log")
        ticks = sorted({p["num_demos"] for p in summary})
        ax.set_xticks(ticks, [str(v) for v in ticks])
        ax.set_xlabel("training demonstrations")
        ax.set_ylabel(f"Spearman correlation, {where}")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(-1, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(plt, fig, path)
