"""How well a learned reward tracks the true one on a set of demos: the 2020 study's headline numbers (the plots of
them: plots.py).

Correlations (Pearson, Spearman, Kendall) between true and predicted returns, pair accuracy, and the same
correlations for the episode-length baseline ("+1 per step"), which the 2020 study found as good as its reward
models; each with a 95% bootstrap interval over the levels, then the episodes within them (`resample_groups`).
Intervals over reward-model seeds are `seed_interval`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import numpy as np
import torch
from scipy import stats

from trex.demos.store import Demo
from trex.results import LevelSetFigures
from trex.reward.net import RewardNet, stack_frames

PREDICT_BATCH = 2048  # frames per no-grad forward pass
BOOTSTRAP = 1000  # resamples of the demos for each interval


@torch.no_grad()
def frame_rewards(model, frames: np.ndarray, device: torch.device | str) -> np.ndarray:
    """Per-frame predicted rewards [T] (float64) of one episode's uint8 frames [T, 64, 64, 3], in no-grad batches;
    `model` is a RewardNet (stacking frames as it reads them) or anything called like one (a `LearnedReward`)."""
    depth, first = getattr(model, "frame_stack", 1), np.zeros(1, np.int64)
    parts = []
    for s in range(0, len(frames), PREDICT_BATCH):
        batch = stack_frames(frames, np.arange(s, min(s + PREDICT_BATCH, len(frames))), first, depth)
        parts.append(model(torch.from_numpy(batch).to(device)).float().cpu().numpy())
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
    return {
        "pearson": _none_if_nan(stats.pearsonr(true, pred)[0]),
        "spearman": _none_if_nan(stats.spearmanr(true, pred)[0]),
        "kendall": _none_if_nan(stats.kendalltau(true, pred)[0]),
    }


def pair_accuracy(true: np.ndarray, pred: np.ndarray) -> float | None:
    """Share of demo pairs with distinct true return that the prediction orders correctly (a predicted tie: half)."""
    true, pred = np.asarray(true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    i, j = np.triu_indices(len(true), k=1)
    distinct = true[i] != true[j]
    if not distinct.any():
        return None
    agree = np.sign(true[i] - true[j]) * np.sign(pred[i] - pred[j])
    return float(np.mean(np.where(agree[distinct] == 0, 0.5, agree[distinct] > 0)))


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair of x and y [B, n]; nan where a row is constant."""
    x, y = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(1) / np.sqrt((x * x).sum(1) * (y * y).sum(1))


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b (scipy's default, ties corrected) of each row pair, over all pairs of columns."""
    i, j = np.triu_indices(x.shape[1], k=1)
    out = np.empty(len(x))
    step = max(1, 20_000_000 // max(len(i), 1))  # rows per chunk: bounded memory for large demo sets
    for a in range(0, len(x), step):
        dx, dy = np.sign(x[a : a + step, i] - x[a : a + step, j]), np.sign(y[a : a + step, i] - y[a : a + step, j])
        untied_x, untied_y = (dx != 0).sum(1), (dy != 0).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[a : a + step] = (dx * dy).sum(1) / np.sqrt(untied_x * untied_y)
    return out


def resample_groups(
    n: int, rng: np.random.Generator, resamples: int = BOOTSTRAP, clusters: np.ndarray | None = None
) -> list[np.ndarray]:
    """Index rows of `resamples` bootstrap resamples of n demos, as [R_k, T_k] groups of equal size T_k.

    Without `clusters` one group [resamples, n]: demos drawn with replacement, as if independent. With `clusters`
    (each demo's level seed) a two-stage bootstrap, as the demos were drawn: levels with replacement, then as many
    episodes as the level holds, with replacement, within each drawn level (episodes of one level are alike, so an
    interval that resamples them as independent is too narrow). Resamples are grouped by their size, which varies
    when levels hold different numbers of episodes; the groups' order carries no meaning."""
    if clusters is None:
        return [rng.integers(0, n, (resamples, n))]
    _, level = np.unique(np.asarray(clusters), return_inverse=True)
    members = [np.flatnonzero(level == k) for k in range(level.max() + 1)]
    drawn = rng.integers(0, len(members), (resamples, len(members)))
    by_size: dict[int, list[np.ndarray]] = {}
    for row in drawn:
        idx = np.concatenate([members[k][rng.integers(0, len(members[k]), len(members[k]))] for k in row])
        by_size.setdefault(len(idx), []).append(idx)
    return [np.stack(rows) for rows in by_size.values()]


def _seed_means(per_seed: np.ndarray, rng: np.random.Generator, resample_seeds: bool) -> np.ndarray:
    """The mean over reward-model seeds [S, R] of each resample's figure; with `resample_seeds`, over S seeds drawn
    with replacement for each resample (the seeds' spread enters the interval too)."""
    if not resample_seeds or len(per_seed) < 2:
        return per_seed.mean(0)
    pick = rng.integers(0, len(per_seed), (per_seed.shape[1], len(per_seed)))
    return per_seed[pick, np.arange(per_seed.shape[1])[:, None]].mean(1)


def _percentile_ci(draws: np.ndarray, resamples: int) -> list[float] | None:
    draws = draws[np.isfinite(draws)]
    return [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if len(draws) > resamples / 2 else None


def bootstrap_ci(
    true: np.ndarray,
    pred: np.ndarray,
    rng: np.random.Generator,
    resamples: int = BOOTSTRAP,
    clusters: np.ndarray | None = None,
    resample_seeds: bool = False,
) -> dict[str, list[float] | None]:
    """95% percentile interval of each correlation over `resamples` resamplings of the demos (`resample_groups`:
    by level, then episode, where `clusters` gives each demo's level).

    `pred` is [n] predicted returns, or [S, n] of S reward models (seeds) on the same demos: then the interval is
    that of their mean correlation, the demos resampled alike for every model (and the seeds too with
    `resample_seeds`). None with fewer than 3 demos, or where most resamples leave a correlation undefined (a
    constant input).
    """
    true, pred = np.asarray(true, np.float64), np.atleast_2d(np.asarray(pred, np.float64))
    if len(true) < 3:
        return dict.fromkeys(("pearson", "spearman", "kendall"))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("pearson", "spearman", "kendall")}
    for idx in resample_groups(len(true), rng, resamples, clusters):
        x = true[idx]
        rx = stats.rankdata(x, axis=1)
        parts["pearson"].append(np.stack([_pearson_rows(x, p[idx]) for p in pred]))
        parts["spearman"].append(np.stack([_pearson_rows(rx, stats.rankdata(p[idx], axis=1)) for p in pred]))
        parts["kendall"].append(np.stack([_kendall_rows(x, p[idx]) for p in pred]))
    return {
        k: _percentile_ci(_seed_means(np.concatenate(v, axis=1), rng, resample_seeds), resamples)
        for k, v in parts.items()
    }


def spearman_difference_ci(
    true: np.ndarray,
    pred: np.ndarray,
    baseline: np.ndarray,
    rng: np.random.Generator,
    resamples: int = BOOTSTRAP,
    clusters: np.ndarray | None = None,
    resample_seeds: bool = False,
) -> dict[str, float | list[float] | None]:
    """The mean Spearman of `pred` ([n], or [S, n] of S reward models) less the Spearman of `baseline` [n] on the
    same demos, with the 95% percentile interval of that difference over resamplings of the demos (by level, then
    episode, with `clusters`; and of the seeds with `resample_seeds`), every prediction and the baseline resampled
    alike (a paired interval: does the reward beat the baseline?)."""
    true, pred = np.asarray(true, np.float64), np.atleast_2d(np.asarray(pred, np.float64))
    baseline = np.asarray(baseline, np.float64)
    spearman = lambda x, y: _pearson_rows(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1))
    point = float(np.mean(spearman(true[None].repeat(len(pred), 0), pred)) - spearman(true[None], baseline[None])[0])
    if len(true) < 3:
        return {"difference": point, "ci95": None}
    base, per_seed = [], []
    for idx in resample_groups(len(true), rng, resamples, clusters):
        base.append(spearman(true[idx], baseline[idx]))
        per_seed.append(np.stack([spearman(true[idx], p[idx]) for p in pred]))
    draws = _seed_means(np.concatenate(per_seed, axis=1), rng, resample_seeds) - np.concatenate(base)
    return {"difference": point, "ci95": _percentile_ci(draws, resamples)}


def seed_interval(values: list[float | None], bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Mean and 95% Student-t interval of one figure over reward-model seeds (None values dropped). A figure with
    `bounds` (a correlation: -1, 1; an accuracy or share: 0, 1) has its interval taken on Fisher's z of the figure
    mapped onto (-1, 1) (for a correlation Fisher's z itself) and mapped back, so it stays within its bounds however
    few the seeds."""
    x = np.array([v for v in values if v is not None], np.float64)
    if not len(x):
        return {"mean": None, "ci95_low": None, "ci95_high": None, "n": 0}
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "ci95_low": None, "ci95_high": None, "n": 1}
    t = float(stats.t.ppf(0.975, len(x) - 1))
    if bounds is None:
        half = t * float(x.std(ddof=1)) / math.sqrt(len(x))
        low, high = mean - half, mean + half
    else:
        lo, hi = bounds
        z = np.arctanh(np.clip(2 * (x - lo) / (hi - lo) - 1, -1 + 1e-9, 1 - 1e-9))
        half = t * float(z.std(ddof=1)) / math.sqrt(len(x))
        back = lambda v: lo + (hi - lo) * (float(np.tanh(v)) + 1) / 2
        low, high = back(z.mean() - half), back(z.mean() + half)
    return {"mean": mean, "ci95_low": low, "ci95_high": high, "n": int(len(x))}


def figure_bounds(figure: str) -> tuple[float, float] | None:
    """The bounds a figure's (or table column's) name says it lies within: a correlation's [-1, 1], an accuracy's
    or share's [0, 1]; None for an unbounded figure (a return, an offset)."""
    if any(m in figure for m in ("spearman", "kendall", "pearson")):
        return (-1.0, 1.0)
    if any(m in figure for m in ("accuracy", "ties", "against_label", "label_noise")):
        return (0.0, 1.0)
    return None


@dataclass(frozen=True)
class TrainingProfile:
    """What a reward model gives the frames of its own training demos, which a policy would see too: the mean
    reward per frame (`offset`) and the mean reward at each time step of an episode (`by_time`)."""

    offset: float
    by_time: np.ndarray

    @classmethod
    def of(cls, rewards: list[np.ndarray]) -> TrainingProfile:
        horizon = max((len(r) for r in rewards), default=0)
        total, count = np.zeros(horizon), np.zeros(horizon)
        for r in rewards:
            total[: len(r)] += r
            count[: len(r)] += 1
        frames = max(count.sum(), 1.0)
        return cls(float(total.sum() / frames), total / np.maximum(count, 1))

    def time_returns(self, lengths: np.ndarray) -> np.ndarray:
        """The time-only baseline: each demo's return if every frame got the training demos' mean reward at its
        time step (the overall mean past the longest training demo). A reward must beat it to have learned more
        than when in an episode a frame comes."""
        lengths = np.asarray(lengths, np.int64)
        horizon = max(int(lengths.max(initial=0)), len(self.by_time))
        per_step = np.full(horizon, self.offset)
        per_step[: len(self.by_time)] = self.by_time
        cumulative = np.concatenate([[0.0], np.cumsum(per_step)])
        return cumulative[lengths]


def centred_returns(pred: np.ndarray, lengths: np.ndarray, offset: float) -> np.ndarray:
    """Predicted returns less `offset` (the model's mean reward per frame on its training demos) times length.

    T-REX compares snippets of equal length, so its loss cannot see a constant added to every frame's reward.
    Summed over whole episodes that constant becomes constant x length, and its sign alone can flip the
    correlation with the true return wherever length correlates with return. Centred, the predicted returns show
    what the reward learned beyond the passing of time; no true return is used."""
    pred, lengths = np.asarray(pred, np.float64), np.asarray(lengths, np.float64)
    return pred - lengths * offset


def standardised_ensemble(preds: np.ndarray, lengths: np.ndarray, offsets: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """The predicted returns [n] of several reward models as one ensemble: each model's returns [S, n] centred on
    its training demos' offset and divided by the standard deviation of its reward per frame there (its stored
    `reward_stats`), then averaged, so that no model weighs more for having learned a larger scale."""
    preds, offsets, stds = np.atleast_2d(np.asarray(preds, np.float64)), np.asarray(offsets), np.asarray(stds)
    centred = np.stack([centred_returns(p, lengths, o) for p, o in zip(preds, offsets, strict=True)])
    return (centred / np.where(stds > 0, stds, 1.0)[:, None]).mean(0)


def centred_figures(block: LevelSetFigures) -> dict[str, float | None]:
    """The correlations of the centred predicted returns of one level set's metrics.json block: as stored when the
    model was evaluated (centred on the training demos' offset); files written before the offset was stored are
    centred on the scored set's own mean, as they were then."""
    if "offset" in block:
        return {m: block["centred"][m] for m in ("pearson", "spearman", "kendall")}
    r = block["returns"]
    pred, lengths = np.array(r["predicted"]), np.array(r["length"])
    return correlations(np.array(r["true"]), centred_returns(pred, lengths, block_offset(block)))


def block_offset(block: LevelSetFigures) -> float:
    """The offset a metrics.json block was centred on: its training demos' (files from before it was stored: the
    scored set's own mean reward per frame, as they were centred then)."""
    if "offset" in block:
        return float(block["offset"]["train"])
    r = block["returns"]
    return float(np.sum(r["predicted"]) / max(np.sum(r["length"]), 1.0))


def partial_spearman(true: np.ndarray, pred: np.ndarray, lengths: np.ndarray) -> float | None:
    """Spearman correlation of predicted and true return given episode length (ranks, length partialled out): what
    the prediction knows of the return that the length does not."""
    ranks = [stats.rankdata(np.asarray(v, np.float64))[None] for v in (true, pred, lengths)]
    value = _partial_rows(*ranks)[0]
    return _none_if_nan(float(value))


def _partial_rows(rx: np.ndarray, ry: np.ndarray, rz: np.ndarray) -> np.ndarray:
    xy, xz, yz = _pearson_rows(rx, ry), _pearson_rows(rx, rz), _pearson_rows(ry, rz)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xy - xz * yz) / np.sqrt((1 - xz**2) * (1 - yz**2))


def partial_spearman_ci(
    true: np.ndarray,
    pred: np.ndarray,
    lengths: np.ndarray,
    rng: np.random.Generator,
    resamples: int = BOOTSTRAP,
    clusters: np.ndarray | None = None,
) -> list[float] | None:
    """95% bootstrap interval of `partial_spearman` over resamplings of the demos (by level, then episode, with
    `clusters`)."""
    true = np.asarray(true, np.float64)
    if len(true) < 4:
        return None
    draws = []
    for idx in resample_groups(len(true), rng, resamples, clusters):
        rows = [stats.rankdata(np.asarray(v, np.float64)[idx], axis=1) for v in (true, pred, lengths)]
        draws.append(_partial_rows(*rows))
    return _percentile_ci(np.concatenate(draws), resamples)


def _mean_within(true: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> tuple[float | None, int]:
    """Mean Spearman correlation within each group of at least 3 demos with distinct returns, and how many groups
    it rests on."""
    values = []
    for g in np.unique(groups):
        at = groups == g
        if at.sum() >= 3:
            values.append(correlations(true[at], pred[at])["spearman"])
    kept = [v for v in values if v is not None]
    return (float(np.mean(kept)) if kept else None), len(kept)


def within_level(true: np.ndarray, pred: np.ndarray, level_seeds: np.ndarray) -> dict[str, Any]:
    """Mean Spearman correlation within each level that has at least 3 demos of distinct returns: how well the
    prediction ranks episodes of one and the same level, free of differences between levels."""
    spearman, levels = _mean_within(true, pred, level_seeds)
    return {"spearman": spearman, "levels": levels}


def within_checkpoint(true: np.ndarray, pred: np.ndarray, checkpoints: np.ndarray) -> dict[str, Any]:
    """Mean Spearman correlation within each demonstrator checkpoint's demos: the same checkpoints play every demo
    set, so a reward that knows a checkpoint's style of play (its bullets, its moves) can rank demos of unseen
    levels across checkpoints without knowing the game; among one checkpoint's demos that knowledge is no help."""
    spearman, count = _mean_within(true, pred, checkpoints)
    return {"spearman": spearman, "checkpoints": count}


def evaluate_returns(
    true: np.ndarray,
    pred: np.ndarray,
    lengths: np.ndarray,
    profile: TrainingProfile,
    level_seeds: np.ndarray | None = None,
    seed: int = 0,
    checkpoints: np.ndarray | None = None,
) -> LevelSetFigures:
    """The metrics.json block for one level set: correlations with 95% bootstrap intervals for the reward model
    and for two baselines, episode length ("+1 per step") and time alone (`TrainingProfile.time_returns`); the
    same for the predicted returns centred on the training demos' offset (`centred_returns`); the partial
    Spearman of the centred returns given length (centred, because ranks are not linear, so a partial Spearman of
    the raw returns moves with the per-frame constant T-REX cannot identify); the offset on this set against the
    training demos' (`offset`: train, here, shift); the mean Spearman within levels and within the demonstrator
    checkpoints that played them (`checkpoints`), with how many of each it rests on; and every demo's true and
    predicted return, length and level (in demo-index order: reward models evaluated on the same folder list the
    same demos alike). With `level_seeds` every interval resamples levels, then episodes within them
    (`resample_groups`)."""
    rng = np.random.default_rng(seed)
    true, pred = np.asarray(true, np.float64), np.asarray(pred, np.float64)
    lengths = np.asarray(lengths, np.float64)
    clusters = None if level_seeds is None else np.asarray(level_seeds)
    centred = centred_returns(pred, lengths, profile.offset)
    time_only = profile.time_returns(lengths.astype(np.int64))
    here = float(pred.sum() / max(lengths.sum(), 1.0))
    ci = lambda x: bootstrap_ci(true, x, rng, clusters=clusters)
    block: dict[str, Any] = {
        **correlations(true, pred),
        "ci95": ci(pred),
        "pair_accuracy": pair_accuracy(true, pred),
        "n_demos": int(len(true)),
        "n_levels": None if clusters is None else int(len(np.unique(clusters))),
        "length_baseline": {**correlations(true, lengths), "ci95": ci(lengths)},
        "time_baseline": {**correlations(true, time_only), "ci95": ci(time_only)},
        "centred": {**correlations(true, centred), "ci95": ci(centred)},
        "partial_spearman": {
            "value": partial_spearman(true, centred, lengths),
            "ci95": partial_spearman_ci(true, centred, lengths, rng, clusters=clusters),
            "of": "centred",
        },
        "offset": {"train": profile.offset, "here": here, "shift": here - profile.offset},
        "returns": {
            "true": [float(x) for x in true],
            "predicted": [float(x) for x in pred],
            "length": [int(x) for x in lengths],
            "time_baseline": [float(x) for x in time_only],
        },
    }
    if clusters is not None:
        block["returns"]["level_seed"] = [int(x) for x in clusters]
        block["within_level"] = {
            "model": within_level(true, pred, clusters),
            "length_baseline": within_level(true, lengths, clusters),
        }
    if checkpoints is not None:
        groups = np.asarray(checkpoints)
        block["within_checkpoint"] = {
            "model": within_checkpoint(true, pred, groups),
            "length_baseline": within_checkpoint(true, lengths, groups),
        }
    return cast(LevelSetFigures, block)


class DemoEvaluation(NamedTuple):
    """A reward model on one level set's demos: its metrics.json block and each demo's per-frame predicted rewards."""

    figures: LevelSetFigures
    rewards: list[np.ndarray]


def evaluate_demos(
    model: RewardNet, demos: list[Demo], device: torch.device | str, profile: TrainingProfile, seed: int = 0
) -> DemoEvaluation:
    """`evaluate_returns` of the model's predicted returns of `demos`; `seed` seeds the bootstrap."""
    rewards = predict_rewards(model, demos, device)
    true = np.array([d.record.ret for d in demos], dtype=np.float64)
    pred = np.array([r.sum() for r in rewards])
    lengths = np.array([len(d.obs) for d in demos], dtype=np.float64)
    seeds = np.array([d.record.level_seed for d in demos])
    checkpoints = np.array([d.record.checkpoint for d in demos])
    return DemoEvaluation(evaluate_returns(true, pred, lengths, profile, seeds, seed, checkpoints), rewards)
