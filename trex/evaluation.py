"""How well a learned reward tracks the true one on a set of demos: the 2020 study's headline numbers and plots.

Correlations (Pearson, Spearman, Kendall) between true and predicted returns, pair accuracy, and the same
correlations for the episode-length baseline ("+1 per step"), which the 2020 study found as good as its reward models.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from toolkit.files import atomic_write
from toolkit.logger import fmt
from trex.demo_store import Demo
from trex.reward_net import RewardNet

PREDICT_BATCH = 2048  # frames per no-grad forward pass


@torch.no_grad()
def frame_rewards(model, frames: np.ndarray, device: torch.device | str) -> np.ndarray:
    """Per-frame predicted rewards [T] (float64) of uint8 frames [T, 64, 64, 3], in no-grad batches; `model` is a
    RewardNet or anything called like one (a `LearnedReward`)."""
    parts = [model(torch.from_numpy(frames[s:s + PREDICT_BATCH]).to(device)).float().cpu().numpy()
             for s in range(0, len(frames), PREDICT_BATCH)]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def predict_rewards(model: RewardNet, demos: list[Demo], device: torch.device | str) -> list[np.ndarray]:
    """Per-frame predicted rewards [T] of each demo."""
    model.eval()
    return [frame_rewards(model, demo.obs, device) for demo in demos]


def _none_if_nan(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def correlations(true: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    """Pearson, Spearman and Kendall correlation; None where undefined (fewer than 2 points, or a constant input)."""
    true, pred = np.asarray(true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if len(true) < 2 or np.ptp(true) == 0 or np.ptp(pred) == 0:
        return {"pearson": None, "spearman": None, "kendall": None}
    return {"pearson": _none_if_nan(stats.pearsonr(true, pred)[0]),
            "spearman": _none_if_nan(stats.spearmanr(true, pred)[0]),
            "kendall": _none_if_nan(stats.kendalltau(true, pred)[0])}


def pair_accuracy(true: np.ndarray, pred: np.ndarray) -> float | None:
    """Share of demo pairs with distinct true return that the prediction orders correctly (a predicted tie: half)."""
    true, pred = np.asarray(true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    i, j = np.triu_indices(len(true), k=1)
    distinct = true[i] != true[j]
    if not distinct.any():
        return None
    agree = np.sign(true[i] - true[j]) * np.sign(pred[i] - pred[j])
    return float(np.mean(np.where(agree[distinct] == 0, 0.5, agree[distinct] > 0)))


def evaluate_returns(true: np.ndarray, pred: np.ndarray, lengths: np.ndarray) -> dict:
    """The metrics.json block for one level set."""
    return {**correlations(true, pred), "pair_accuracy": pair_accuracy(true, pred), "n_demos": int(len(true)),
            "length_baseline": correlations(true, lengths)}


def evaluate_demos(model: RewardNet, demos: list[Demo], device: torch.device | str) -> tuple[dict, list[np.ndarray]]:
    """(metrics of `evaluate_returns`, per-frame predicted rewards of each demo)."""
    rewards = predict_rewards(model, demos, device)
    true = np.array([d.record.ret for d in demos], dtype=np.float64)
    pred = np.array([r.sum() for r in rewards])
    lengths = np.array([len(d.obs) for d in demos], dtype=np.float64)
    return evaluate_returns(true, pred, lengths), rewards


# --------------------------------------------------------------------------- plots (PNG, written atomically)
def _figure(ncols: int, width: float = 5.0, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return plt, fig, axes[0]


def _save(plt, fig, path: str | Path) -> None:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def _z(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / x.std() if len(x) and x.std() > 0 else x - (x.mean() if len(x) else 0.0)


def plot_predicted_vs_true(level_sets: dict[str, tuple[list[Demo], list[np.ndarray], dict]], path: str | Path) -> None:
    """Predicted return against true return per level set; episode length (the baseline) on the same z-scale."""
    plt, fig, axes = _figure(len(level_sets))
    for ax, (name, (demos, rewards, metrics)) in zip(axes, level_sets.items(), strict=True):
        true = np.array([d.record.ret for d in demos])
        ax.scatter(true, _z([r.sum() for r in rewards]), s=18, label="predicted return (z-score)")
        ax.scatter(true, _z([len(d.obs) for d in demos]), s=18, marker="x", alpha=0.6,
                   label="episode length, baseline (z-score)")
        base = metrics["length_baseline"]
        ax.set_title(f"{name}: n={metrics['n_demos']}  spearman {fmt(metrics['spearman'])} "
                     f"(length {fmt(base['spearman'])})", fontsize=9)
        ax.set_xlabel("true return")
        ax.set_ylabel("z-score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(plt, fig, path)


def plot_cumulative(demos: list[Demo], rewards: list[np.ndarray], path: str | Path, count: int = 4) -> None:
    """Cumulative predicted and true reward over time for a few demos spread across the return range."""
    order = np.argsort([d.record.ret for d in demos], kind="stable")
    chosen = order[np.unique(np.linspace(0, len(order) - 1, min(count, len(order))).round().astype(int))]
    plt, fig, axes = _figure(max(len(chosen), 1), width=4.0)
    for ax, k in zip(axes, chosen, strict=False):
        ax.plot(np.cumsum(demos[k].rewards), color="black", label="true")
        twin = ax.twinx()
        twin.plot(np.cumsum(rewards[k]), color="tab:blue", label="predicted")
        ax.set_title(f"return {demos[k].record.ret:g}, length {len(demos[k].obs)}", fontsize=9)
        ax.set_xlabel("time step")
        ax.set_ylabel("cumulative true reward")
        twin.set_ylabel("cumulative predicted reward", color="tab:blue")
    _save(plt, fig, path)


def plot_reward_by_time(level_sets: dict[str, list[np.ndarray]], path: str | Path) -> None:
    """Mean predicted per-frame reward at each time step; a time-driven "U shape" shows up here."""
    plt, fig, axes = _figure(1, width=7.0)
    ax = axes[0]
    for name, rewards in level_sets.items():
        horizon = max((len(r) for r in rewards), default=0)
        total, count = np.zeros(horizon), np.zeros(horizon)
        for r in rewards:
            total[:len(r)] += r
            count[:len(r)] += 1
        keep = count >= max(1, 0.1 * len(rewards))  # steps most episodes reach; the tail is a few long ones
        ax.plot(np.arange(horizon)[keep], total[keep] / count[keep], label=f"{name} ({len(rewards)} demos)")
    ax.set_xlabel("time step in episode")
    ax.set_ylabel("mean predicted reward")
    ax.set_title("predicted reward by time step (steps reached by >=10% of demos)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(plt, fig, path)


def plot_sweep(summary: list[dict], path: str | Path, title: str) -> None:
    """Held-out correlation against the number of training demos (mean +- std over seeds), with the length baseline."""
    plt, fig, axes = _figure(2)
    n = np.array([p["num_demos"] for p in summary])
    for ax, metric in zip(axes, ("pearson", "spearman"), strict=True):
        for key, label, style in (("reward_model", "T-REX reward model", "-o"), ("length_baseline", "episode length",
                                                                                 "--s")):
            mean = np.array([np.nan if p[key][metric]["mean"] is None else p[key][metric]["mean"] for p in summary])
            std = np.array([np.nan if p[key][metric]["std"] is None else p[key][metric]["std"] for p in summary])
            ax.errorbar(n, mean, yerr=std, fmt=style, capsize=3, label=label)
        ax.set_xscale("log")
        ax.set_xticks(n, [str(v) for v in n])
        ax.set_xlabel("training demonstrations")
        ax.set_ylabel(f"{metric} correlation, held-out levels")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(plt, fig, path)
