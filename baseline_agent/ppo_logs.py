"""What a PPO run reports: one progress.csv row per update, and at the end summary.json and the curve PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from baseline_agent.scores import normalized_score, reference_table
from toolkit.files import write_json
from toolkit.logger import fmt, fmt_duration, plot_curves

# progress.csv columns of the returns (baselines' names), and their labels on the learning curve
CURVES = {"eprewmean": "train levels (true)", "eval_eprewmean": "held-out levels (true)"}
LEARNED_CURVES = {"learned_eprewmean": "train levels (learned)", "eval_learned_eprewmean": "held-out levels (learned)"}


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    var_ret = returns.var()
    return float("nan") if var_ret == 0 else float(1 - (returns - values).var() / var_ret)


def progress_row(
    update: int,
    step: int,
    num_steps: int,
    fps: int,
    explained: float,
    means: dict[str, Any],
    losses: dict[str, float],
    timings: dict[str, float],
    elapsed: float,
) -> dict[str, Any]:
    """One update's row, in baselines' column names; `means` holds the episode means by column name."""
    row = {
        "misc/serial_timesteps": update * num_steps,
        "misc/nupdates": update,
        "misc/total_timesteps": step,
        "fps": fps,
        "misc/explained_variance": explained,
        **means,
        "misc/time_elapsed": elapsed,
    }
    row.update({f"loss/{k}": v for k, v in losses.items() if k != "loss"})
    row.update({f"time/{k}": v for k, v in timings.items()})
    return row


def run_summary(
    env_name: str,
    distribution_mode: str,
    step: int,
    world_size: int,
    means: dict[str, Any],
    episodes: dict[str, int],
    wall: float,
    sps: float,
) -> dict[str, Any]:
    """summary.json: final returns (means of the last 100 episodes), normalised scores and the published PPO."""
    ref = reference_table().get(env_name, {})
    score = lambda r: None if r is None else normalized_score(env_name, distribution_mode, r)
    summary = {
        "env_name": env_name,
        "distribution_mode": distribution_mode,
        "total_timesteps": step,
        "world_size": world_size,
        "train_return": means["eprewmean"],
        "train_episodes": episodes["train"],
        "held_out_return": means["eval_eprewmean"],
        "held_out_episodes": episodes["held_out"],
        "train_normalized_score": score(means["eprewmean"]),
        "held_out_normalized_score": score(means["eval_eprewmean"]),
        "reference_ppo_easy200_25m": {
            "train": ref.get("ppo_easy200_train_25m"),
            "test": ref.get("ppo_easy200_test_25m"),
        },
        "wall_time_s": wall,
        "sps": sps,
    }
    if "learned_eprewmean" in means:
        summary["learned_return"] = means["learned_eprewmean"]
        summary["held_out_learned_return"] = means["eval_learned_eprewmean"]
    return summary


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """summary.json and learning_curve.png (true returns, and learned ones where a learned reward trained)."""
    write_json(run_dir / "summary.json", summary)
    columns = {**CURVES, **(LEARNED_CURVES if "learned_return" in summary else {})}
    plot_curves(
        run_dir / "progress.csv",
        run_dir / "learning_curve.png",
        columns,
        f"{summary['env_name']} ({summary['distribution_mode']})",
    )
    wall = summary["wall_time_s"]
    print(
        f"done: {summary['total_timesteps']:,} steps in {fmt_duration(wall if math.isfinite(wall) else 0)}; "
        f"train return {fmt(summary['train_return'])}, held-out return {fmt(summary['held_out_return'])} -> "
        f"{run_dir / 'summary.json'}",
        flush=True,
    )
