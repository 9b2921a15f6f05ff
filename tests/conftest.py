"""Shared fixtures: tiny step-1 checkpoints built directly (random policies), fast enough for any test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from baseline_agent.checkpoint import checkpoint_path, save_checkpoint
from baseline_agent.envs import NUM_ACTIONS, OBS_SHAPE
from baseline_agent.models import Policy

# The tests' networks and batches are tiny: one torch thread per process is fastest, also in the scripts they start.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

TINY_NET = {"channels": [4, 8, 8], "hidden_size": 32}


def make_tiny_checkpoints(
    run_dir: Path, game: str = "coinrun", steps: tuple[int, ...] = (100, 200), distribution_mode: str = "easy"
) -> list[Path]:
    """Random tiny IMPALA policies saved as step-1 checkpoints of `game` in run_dir/checkpoints."""
    paths = []
    for step in steps:
        torch.manual_seed(step)
        policy = Policy(NUM_ACTIONS, TINY_NET["channels"], TINY_NET["hidden_size"], OBS_SHAPE)
        path = checkpoint_path(run_dir, step)
        save_checkpoint(
            path,
            {
                "model": policy.state_dict(),
                "step": step,
                "config": {"env_name": game, "distribution_mode": distribution_mode, **TINY_NET},
                "model_spec": {
                    "env_name": game,
                    "distribution_mode": distribution_mode,
                    "num_actions": NUM_ACTIONS,
                    **TINY_NET,
                    "obs_shape": list(OBS_SHAPE),
                },
            },
        )
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def tiny_checkpoints():
    """`tiny_checkpoints(run_dir, game, steps)` -> checkpoint paths, oldest first."""
    return make_tiny_checkpoints


@pytest.fixture
def bf16_allowed(monkeypatch):
    """Let precision bf16 run on a CPU that emulates it: tests of the bf16 path at tiny sizes take seconds there."""
    import toolkit.runtime

    monkeypatch.setattr(toolkit.runtime, "native_bf16", lambda: True)


def _fit_reward_net(cfg, train, seed: int = 0):
    """A RewardNet trained by RewardTrainer on snippet pairs of `train` (progress constraint on, or time-aligned
    with cfg.time_aligned): (net, trainer)."""
    import numpy as np

    from trex.reward.net import RewardNet
    from trex.reward.pairs import concat_obs, create_training_data
    from trex.reward.trainer import RewardTrainer

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    pairs = create_training_data(
        train,
        cfg.num_pairs,
        cfg.min_snippet_length,
        cfg.max_snippet_length,
        cfg.frame_stride,
        True,
        rng,
        time_aligned=cfg.time_aligned,
    )
    frames, offsets = concat_obs(train)
    net = RewardNet(cfg.reward_net, cfg.ensemble_size, frames.shape[1:], cfg.frame_stack)
    trainer = RewardTrainer(net, cfg, torch.device("cpu"), verbose=False)
    trainer.fit(frames, offsets, pairs, None, rng)
    return net, trainer


@pytest.fixture
def fit_reward_net():
    """`_fit_reward_net`, for the tests that train a reward net on synthetic demos."""
    return _fit_reward_net


# `make test` runs whole files per worker (--dist loadfile) in collection order (--no-loadscope-reorder): the
# slowest files go first, longest first, so that no worker is left alone with one of them at the end while the other
# has run out of files (xdist's own order, most tests first, started test_sweep.py last). Slowest by --durations on
# a 2-core Xeon; the other files keep their usual order after them.
SLOWEST_FILES = (
    "test_sweep.py",
    "test_study.py",
    "test_reward_learning.py",
    "test_ppo_learns.py",
    "test_faults.py",
    "test_eval_scripts.py",
    "test_benchmarks.py",
    "test_shipped_demonstrators.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order is kept
