"""Synthetic demonstrations whose return is a known function of the frames, for tests and benchmarks.

Each frame is dim noise; some frames carry a bright square marker, and each marker frame earns reward 1. Demos
differ in length and in their share of marker frames, so episode length alone ranks them only loosely.
"""

from __future__ import annotations

import numpy as np

from trex.demos.store import Demo, DemoRecord

MARKER = 8  # side of the square, in pixels


def marker_demos(
    count: int,
    rng: np.random.Generator,
    level_set: str = "train",
    min_len: int = 30,
    max_len: int = 80,
    game: str = "coinrun",
    mode: str = "easy",
    obs_shape: tuple[int, int, int] = (64, 64, 3),
) -> list[Demo]:
    demos = []
    for k in range(count):
        length = int(rng.integers(min_len, max_len + 1))
        marked = rng.random(length) < rng.random()
        obs = rng.integers(0, 60, size=(length, *obs_shape), dtype=np.uint8)
        for t in np.flatnonzero(marked):
            y, x = rng.integers(0, obs_shape[0] - MARKER, size=2)
            obs[t, y : y + MARKER, x : x + MARKER] = 255
        rewards = marked.astype(np.float32)
        record = DemoRecord(
            id=f"{level_set}{k:04d}",
            game=game,
            distribution_mode=mode,
            level_seed=k,
            level_set=level_set,
            level_range=f"0+{count}",
            checkpoint="synthetic",
            checkpoint_step=0,
            noise=0.0,
            length=length,
            ret=float(rewards.sum()),
            file=f"{level_set}{k:04d}.npz",
        )
        demos.append(Demo(record, obs, np.zeros(length, dtype=np.int64), rewards))
    return demos


def as_written(demos: list[Demo]) -> list[tuple[DemoRecord, np.ndarray, np.ndarray, np.ndarray]]:
    """The (record, obs, actions, rewards) tuples `write_demos` takes."""
    return [(d.record, d.obs, d.actions, d.rewards) for d in demos]
