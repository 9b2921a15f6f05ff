"""The results files of T-REX runs, each with one typed definition that writes and reads it (checked by mypy):

- `metrics.json` of a reward model (`trex/reward/fit.py`): `RewardMetrics`, one `LevelSetFigures` block per
  scored level set (`trex/level_sets.py: SCORED_SETS`);
- `evaluation.json` of a study (`trex/pipeline/study_plan.py`): `StudyEvaluation`, the true returns and episode
  lengths of each policy on each evaluation level set (`EVALUATION_SETS`).

Files written before today's level-set names are read as today's (`read_metrics`, `read_evaluation`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

from toolkit.cli import UserError
from toolkit.files import write_json
from trex.level_sets import LEGACY_EVALUATION_SETS, LEGACY_SCORED_SETS


class Correlations(TypedDict):
    """Pearson, Spearman and Kendall correlations of a prediction with the true returns, and their 95% bootstrap
    intervals (None where a figure is undefined, e.g. constant predictions)."""

    pearson: float | None
    spearman: float | None
    kendall: float | None
    ci95: dict[str, list[float] | None]


class LevelSetFigures(Correlations):
    """A reward model's figures on one level set's demos: its correlations, the baselines it must beat, and the
    per-demo returns they come from (trex/reward/evaluation.py: evaluate_returns)."""

    pair_accuracy: float | None
    n_demos: int
    n_levels: NotRequired[int | None]  # distinct levels of the demos; intervals resample levels, then episodes
    length_baseline: Correlations
    centred: Correlations
    returns: dict[str, list[float]]  # true, predicted, length, time_baseline, level_seed: one value per demo
    time_baseline: NotRequired[Correlations]
    partial_spearman: NotRequired[dict[str, Any]]  # value, ci95, of ("centred"; older files: the raw returns)
    offset: NotRequired[dict[str, float]]  # train, here, shift
    within_level: NotRequired[dict[str, Any]]
    within_checkpoint: NotRequired[dict[str, Any]]
    snippet_accuracy: NotRequired[float | None]


class PairFigures(TypedDict):
    """What one set of snippet pairs' labels can teach (trex/reward/pairs.py: label_figures): ties and pairs the true
    reward orders against the label (shares), the accuracy of the true reward (the ceiling) and of a clock on the
    same pairs, beside the model's own (None where it was not measured)."""

    pairs: int
    ties: float | None
    against_label: float | None
    true_reward_accuracy: float | None
    clock_accuracy: float | None
    model_accuracy: float | None


class RewardMetrics(TypedDict):
    """metrics.json of one reward model."""

    env_name: str
    distribution_mode: str
    reward_net: str
    ensemble_size: int
    seed: int
    new_episodes: LevelSetFigures
    held_out: LevelSetFigures
    validation: NotRequired[LevelSetFigures]  # the validation levels' demos (with val_num_levels): to choose by
    label_noise: float
    val_label_noise: float | None
    labels: NotRequired[dict[str, PairFigures]]  # pair set (train, val, new_episodes, held_out): its PairFigures
    best_val_accuracy: float | None
    best_step: int
    steps: int
    pairs_seen: int
    stopped_early: bool
    num_train_demos: int
    num_val_demos: int
    num_pairs: int
    train_demo_returns: list[float]
    reward_stats: dict[str, float]
    frames_per_pair: float
    pairs_per_s: float
    frames_per_s: float
    train_time_s: float
    wall_time_s: float
    inverse_dynamics: NotRequired[dict[str, float]]  # with inverse_dynamics: fit.inverse_dynamics_figures


class StudyEvaluation(TypedDict):
    """evaluation.json of a study: the level sets, then each policy's block: its checkpoint and, per level set, its
    true returns as `baseline_agent.evaluation.summarize_returns` gives them, with normalized_score, mean_length
    and the lengths summarised the same way."""

    levels: dict[str, list[int]]  # level set: [start_level, num_levels]
    trex_policy: dict[str, Any]
    demonstrator: dict[str, Any]
    random: dict[str, Any]
    survival_control: NotRequired[dict[str, Any]]
    true_reward_ppo: NotRequired[dict[str, Any]]


def _read(path: str | os.PathLike) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read results file {path}: {err}") from None
    if not isinstance(data, dict):
        raise UserError(f"results file {path} does not hold a JSON object")
    return data


def _renamed(data: dict[str, Any], legacy: dict[str, str]) -> dict[str, Any]:
    return {legacy.get(k, k): v for k, v in data.items()}


def as_metrics(data: dict[str, Any]) -> RewardMetrics:
    """A metrics.json's content, older level-set names read as today's."""
    return cast(RewardMetrics, _renamed(data, LEGACY_SCORED_SETS))


def read_metrics(path: str | os.PathLike) -> RewardMetrics:
    """A reward model's metrics.json; refused in one line where it is missing, unreadable or not one."""
    metrics = as_metrics(_read(path))
    missing = [k for k in ("new_episodes", "held_out") if k not in metrics]
    if missing:
        raise UserError(f"{path} is not a reward model's metrics.json (no '{missing[0]}' figures)")
    return metrics


def write_metrics(path: str | os.PathLike, metrics: RewardMetrics) -> None:
    write_json(path, metrics)


def read_evaluation(path: str | os.PathLike) -> StudyEvaluation:
    """A study's evaluation.json, older level-set names read as today's."""
    data = _read(path)
    out = {
        k: _renamed(v, LEGACY_EVALUATION_SETS) if isinstance(v, dict) and k != "levels" else v for k, v in data.items()
    }
    out["levels"] = _renamed(data.get("levels", {}), LEGACY_EVALUATION_SETS)
    return cast(StudyEvaluation, out)


def write_evaluation(path: str | os.PathLike, evaluation: StudyEvaluation) -> None:
    write_json(path, evaluation)


def scored_set(metrics: RewardMetrics, key: str) -> LevelSetFigures:
    """The figures of level set `key` (one of `SCORED_SETS`)."""
    if key == "new_episodes":
        return metrics["new_episodes"]
    if key == "held_out":
        return metrics["held_out"]
    raise KeyError(f"'{key}' is not a scored level set")


def agent_results(evaluation: StudyEvaluation, agent: str) -> dict[str, Any] | None:
    """One policy's block of evaluation.json (see StudyEvaluation); None where that policy was not run."""
    return cast(dict[str, Any], evaluation).get(agent)


def correlation(figures: Correlations, metric: str) -> float | None:
    """One figure of a block by name: a correlation (pearson, spearman, kendall) or, of a level set's block, the
    pair accuracy."""
    if metric not in ("pearson", "spearman", "kendall", "pair_accuracy"):
        raise KeyError(f"'{metric}' is not a figure of a correlations block")
    return cast(dict[str, float | None], figures)[metric]
