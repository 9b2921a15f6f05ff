"""Snippet pairs for T-REX (`create_training_data`): which of two demo snippets came from the better demo.

Pairs are stored as indices (demo, start, window length), never as copied frames, so 50,000 pairs cost
kilobytes; frames are gathered per batch from one concatenated observation array (`concat_obs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toolkit.cli import UserError
from trex.demos.store import Demo
from trex.results import PairFigures


@dataclass
class SnippetPairs:
    """N pairs of snippets; snippet k of pair n covers frames start[n,k] .. start[n,k]+length[n]-1 of demo[n,k],
    of which every `frame_stride`-th is shown to the network. label[n] is the side (0/1) of the better demo."""

    demo: np.ndarray  # [N, 2] index into the demo list
    start: np.ndarray  # [N, 2]
    length: np.ndarray  # [N] window length in frames, before subsampling
    label: np.ndarray  # [N] 0 or 1
    frame_stride: int
    label_noise: float  # share of pairs whose snippet windows' true returns order opposite to the label

    def __len__(self) -> int:
        return len(self.label)

    def frames_per_pair(self) -> float:
        """Mean frames the network sees per pair (both snippets), after subsampling."""
        return float(2 * np.mean(-(-self.length // self.frame_stride))) if len(self) else 0.0

    def frame_index(self, idx: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices into the concatenated frames for pairs `idx`, and the snippet (2*i + side) of each frame."""
        starts = (offsets[self.demo[idx]] + self.start[idx]).reshape(-1)  # [2B] in snippet order
        counts = np.repeat(-(-self.length[idx] // self.frame_stride), 2)
        segment = np.repeat(np.arange(len(starts)), counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return starts[segment] + within * self.frame_stride, segment


def frame_chunks(pairs: SnippetPairs, max_frames: int) -> list[np.ndarray]:
    """Consecutive pair indices in chunks of at most `max_frames` frames each (a pair longer than that alone), so a
    no-grad pass over them holds a bounded number of activations whatever the snippets' length."""
    frames = 2 * -(-pairs.length // pairs.frame_stride)
    chunks, start, total = [], 0, 0
    for n, f in enumerate(frames.tolist()):
        if total + f > max_frames and n > start:
            chunks.append(np.arange(start, n))
            start, total = n, 0
        total += f
    if len(pairs) > start:
        chunks.append(np.arange(start, len(pairs)))
    return chunks


def concat_obs(demos: list[Demo]) -> tuple[np.ndarray, np.ndarray]:
    """All demos' frames in one uint8 array and each demo's offset into it, so a batch is one gather."""
    lengths = np.array([len(d.obs) for d in demos])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return np.concatenate([d.obs for d in demos]), offsets


def create_training_data(
    demos: list[Demo],
    num_pairs: int,
    min_len: int,
    max_len: int,
    frame_stride: int,
    progress_constraint: bool,
    rng: np.random.Generator,
    rank_by: str = "return",
    time_aligned: bool = False,
    same_level: bool = False,
) -> SnippetPairs:
    """Sample `num_pairs` snippet pairs from demos of different rank, labelled by the better demo.

    `rank_by="return"` ranks demos by their true return (T-REX); `"noise"` by their epsilon-greedy noise, less
    noise being better (D-REX), so no reward is needed to rank. Label noise is always measured on true returns.

    Snippet windows have the same length, drawn uniformly from [min_len, max_len] and cut to the shorter demo.
    With the progress constraint (T-REX's choice) the better demo's snippet starts no earlier than the worse
    one's, so a later, more advanced part of the better episode is compared with an earlier part of the worse.
    Time-aligned pairs (`time_aligned`) cover the same time steps of their two episodes, so no reward that only
    grows with time can tell their snippets apart (a clock scores 0.5 on them); the progress constraint is then moot.
    Same-level pairs (`same_level`) pair only demos of the same level, so how a level looks cannot explain a label.
    """
    rank = np.array([d.record.ret if rank_by == "return" else -d.record.noise for d in demos], np.float64)
    lengths = np.array([len(d.obs) for d in demos], dtype=np.int64)
    if len(np.unique(rank)) < 2:
        raise UserError(
            f"too few demos of distinct {rank_by} to form pairs ({len(demos)} demos, "
            f"{len(np.unique(rank))} distinct value(s)); generate more varied demonstrations"
        )
    levels = np.array([d.record.level_seed for d in demos]) if same_level else None
    first, second = _distinct_rank_pairs(rank, num_pairs, rng, levels)
    better_first = rank[first] > rank[second]
    worse = np.where(better_first, second, first)
    better = np.where(better_first, first, second)

    shortest = np.minimum(lengths[worse], lengths[better])
    length = np.minimum(rng.integers(min_len, max_len + 1, size=num_pairs), shortest)
    if time_aligned:
        worse_start = better_start = rng.integers(0, shortest - length + 1)
    elif progress_constraint:
        worse_start = rng.integers(0, shortest - length + 1)
        better_start = worse_start + rng.integers(0, lengths[better] - length - worse_start + 1)
    else:
        worse_start = rng.integers(0, lengths[worse] - length + 1)
        better_start = rng.integers(0, lengths[better] - length + 1)

    label = rng.integers(0, 2, size=num_pairs)  # which side holds the better snippet, so order carries no signal
    demo = np.where(label[:, None] == 1, np.stack([worse, better], 1), np.stack([better, worse], 1))
    start = np.where(
        label[:, None] == 1, np.stack([worse_start, better_start], 1), np.stack([better_start, worse_start], 1)
    )

    pairs = SnippetPairs(
        demo.astype(np.int64),
        start.astype(np.int64),
        length.astype(np.int64),
        label.astype(np.int64),
        frame_stride,
        0.0,
    )
    pairs.label_noise = label_figures(pairs, demos)["against_label"] or 0.0
    return pairs


def window_returns(pairs: SnippetPairs, demos: list[Demo]) -> np.ndarray:
    """The true return [N, 2] of each snippet's whole window (every frame, whatever the frame stride)."""
    cumulative = [np.concatenate([[0.0], np.cumsum(d.rewards, dtype=np.float64)]) for d in demos]
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in cumulative])[:-1]]).astype(np.int64)
    first = offsets[pairs.demo] + pairs.start  # [N, 2] into the concatenated cumulative sums
    flat = np.concatenate(cumulative)
    return flat[first + pairs.length[:, None]] - flat[first]


def label_figures(pairs: SnippetPairs | None, demos: list[Demo], model_accuracy: float | None = None) -> PairFigures:
    """What a pair set's labels can teach, beside the model's accuracy on it: the share of pairs whose two windows
    have the same true return (ties) and of pairs the true reward orders against the label; the accuracy of the
    true reward itself (ordered as labelled, plus half the ties: the ceiling of any reward) and of a clock, a reward
    that only grows with time (the later-starting snippet scores more; equal starts half). Labels a clock explains
    better than the true reward does train a clock. `demos`: the list the pairs index (no pairs: figures None)."""
    n = 0 if pairs is None else len(pairs)
    if pairs is None or not n:
        return {
            "pairs": 0,
            "ties": None,
            "against_label": None,
            "true_reward_accuracy": None,
            "clock_accuracy": None,
            "model_accuracy": model_accuracy,
        }
    rows = np.arange(n)
    returns = window_returns(pairs, demos)
    better, other = returns[rows, pairs.label], returns[rows, 1 - pairs.label]
    tie = np.isclose(better, other, rtol=0.0, atol=1e-9)
    later = pairs.start[rows, pairs.label] - pairs.start[rows, 1 - pairs.label]
    return {
        "pairs": int(n),
        "ties": float(tie.mean()),
        "against_label": float(((better < other) & ~tie).mean()),
        "true_reward_accuracy": float(((better > other) & ~tie).mean() + 0.5 * tie.mean()),
        "clock_accuracy": float((later > 0).mean() + 0.5 * (later == 0).mean()),
        "model_accuracy": model_accuracy,
    }


def _distinct_rank_pairs(
    rank: np.ndarray, n: int, rng: np.random.Generator, levels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """n pairs of demo indices drawn uniformly among pairs whose rank values (return, or -noise) differ (and, given
    each demo's level, whose levels are the same)."""
    i, j = np.triu_indices(len(rank), k=1)
    keep = rank[i] != rank[j]
    if levels is not None:
        keep &= levels[i] == levels[j]
        if not keep.any():
            raise UserError(
                f"no two of these {len(rank)} demos share a level and differ in rank, so there are no same-level "
                "pairs: set same_level_pairs false, or draw the demos from fewer levels (demo_num_levels)"
            )
    i, j = i[keep], j[keep]
    pick = rng.integers(0, len(i), size=n)
    return i[pick], j[pick]
