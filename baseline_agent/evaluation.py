"""Evaluate a policy on a level set: exactly N complete episodes in one vectorised env, and their statistics.

Each env slot owns a fixed quota of episodes (its first ones); episodes beyond a slot's quota are ignored.
Stopping at "the first N episodes to finish" instead would over-sample short episodes and bias the mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import stdtrit

from baseline_agent.checkpoint import load_policy
from baseline_agent.envs import NUM_ACTIONS, PROCGEN_OPTIONS, LevelSet, VecEnv, held_out_levels, make_procgen
from baseline_agent.models import Policy
from toolkit.cli import UserError

RewardFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class StepView:
    """What `on_step` sees after each vectorised step t, per env slot.

    `obs` (and `renders`, the 512x512 frames, when rendering) is the frame action t was chosen on; `reward`
    is the true reward of action t; `ret`, `learned` and `length` count the current episode through step t;
    `recording` marks slots whose step t belongs to a counted episode (within quota, not past `max_steps`).
    """

    obs: np.ndarray
    renders: list[np.ndarray] | None
    reward: np.ndarray
    ret: np.ndarray
    learned: np.ndarray | None
    length: np.ndarray
    recording: np.ndarray


def procgen_options(config: dict[str, Any]) -> dict[str, Any]:
    """The Procgen rendering options of a saved run config, so evaluation sees the frames training saw."""
    return {k: config[k] for k in PROCGEN_OPTIONS if k in config}


def default_levels(config: dict[str, Any], start_level: int | None, num_levels: int) -> LevelSet:
    """`[start_level, +num_levels)`, or by default the levels right after a run's training levels (unseen)."""
    if start_level is not None:
        return LevelSet(start_level, num_levels)
    if "start_level" not in config or "num_levels" not in config:
        raise UserError("the checkpoint's config does not name its training levels: choose levels with --start_level")
    if int(config["num_levels"]) == 0:
        raise UserError("the checkpoint trained on all levels (num_levels=0): choose levels with --start_level")
    return held_out_levels(LevelSet(int(config["start_level"]), int(config["num_levels"])), num_levels)


def episode_quotas(num_episodes: int, num_envs: int) -> np.ndarray:
    """Episodes each env slot must finish: as even as possible, summing to `num_episodes`."""
    quotas = np.full(num_envs, num_episodes // num_envs, np.int64)
    quotas[: num_episodes % num_envs] += 1
    return quotas


def _choose_actions(
    policy: Policy | None, obs: torch.Tensor, greedy: bool, gen: torch.Generator, playing: np.ndarray
) -> np.ndarray:
    """Actions from a private generator, so results depend on `seed` alone and not on global RNG state. The policy
    reads only the `playing` slots' frames; the others (done with their episodes) act uniformly at random, drawn
    from the same generator in the same order, so every playing slot's action is what a full batch would give."""
    if policy is None:
        return torch.randint(NUM_ACTIONS, (obs.shape[0],), generator=gen).numpy()
    logits = torch.zeros(obs.shape[0], NUM_ACTIONS)
    rows = torch.from_numpy(np.flatnonzero(playing))
    with torch.inference_mode():
        logits[rows] = policy(obs[rows.to(obs.device)])[0].float().cpu()
    if greedy:
        return logits.argmax(-1).numpy()
    return torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(-1).numpy()


def run_episodes(
    policy: Policy | None,
    env_name: str,
    distribution_mode: str,
    levels: LevelSet,
    num_episodes: int,
    num_envs: int,
    seed: int,
    greedy: bool = False,
    device: str | torch.device = "cpu",
    reward_fn: RewardFn | None = None,
    max_steps: int | None = None,
    render: bool = False,
    on_step: Callable[[StepView], None] | None = None,
    num_threads: int = 4,
    **options: Any,
) -> list[dict[str, Any]]:
    """Run exactly `num_episodes` complete episodes; one dict per episode, ordered by slot then time.

    Each dict has `ret` (true return), `length`, `level_seed`, `truncated` (cut at `max_steps` steps)
    and, with `reward_fn`, `learned_ret`: the sum of `reward_fn(obs_t)` over the episode's frames, where
    obs_t is the frame action t was chosen on (the alignment of `ppo.RewardSource`). `policy=None` acts
    uniformly at random. Deterministic for a fixed `seed` on CPU. `options` are Procgen's own.
    """
    if num_episodes < 1 or num_envs < 1:
        raise ValueError("num_episodes and num_envs must be positive")
    num_envs = min(num_envs, num_episodes)
    quotas = episode_quotas(num_episodes, num_envs)
    venv = VecEnv(
        make_procgen(
            env_name, num_envs, levels, seed, distribution_mode, render=render, num_threads=num_threads, **options
        )
    )
    gen = torch.Generator().manual_seed(int(seed))
    done_count = np.zeros(num_envs, np.int64)
    waiting = np.zeros(num_envs, bool)  # truncated at max_steps: skip until the env starts its next episode
    ret = np.zeros(num_envs, np.float64)
    learned = np.zeros(num_envs, np.float64) if reward_fn is not None else None
    length = np.zeros(num_envs, np.int64)
    level_seed = venv.level_seeds()
    results: list[list[dict[str, Any]]] = [[] for _ in range(num_envs)]
    obs = venv.observe()

    def close(i: int, seed_i: int, truncated: bool) -> None:
        ep = {"ret": float(ret[i]), "length": int(length[i]), "level_seed": int(seed_i), "truncated": truncated}
        if learned is not None:
            ep["learned_ret"] = float(learned[i])
        results[i].append(ep)
        done_count[i] += 1

    while (done_count < quotas).any():
        recording = (done_count < quotas) & ~waiting
        renders = [info["rgb"] for info in venv.env.get_info()] if render and on_step else None
        obs_t = torch.from_numpy(obs).to(device)
        actions = _choose_actions(policy, obs_t, greedy, gen, done_count < quotas)
        if learned is not None and reward_fn is not None:
            with torch.no_grad():
                learned += reward_fn(obs_t).double().cpu().numpy()
        next_obs, reward, done, finished = venv.step(actions)
        ret += reward
        length += 1
        if on_step is not None:
            on_step(
                StepView(
                    obs,
                    renders,
                    reward,
                    ret.copy(),
                    None if learned is None else learned.copy(),
                    length.copy(),
                    recording,
                )
            )
        for i, ep in finished:
            if recording[i]:
                close(i, ep.level_seed, truncated=False)
        if max_steps is not None:
            for i in np.flatnonzero(recording & ~done & (length >= max_steps)):
                close(i, level_seed[i], truncated=True)
                waiting[i] = True
        if done.any():
            level_seed = np.where(done, venv.level_seeds(), level_seed)
            waiting &= ~done
            ret[done], length[done] = 0.0, 0
            if learned is not None:
                learned[done] = 0.0
        obs = next_obs
    return [ep for slot in results for ep in slot]


def summarize_returns(returns: Sequence[float]) -> dict[str, Any]:
    """n, mean, median, std (sample, ddof=1) and a Student-t 95% confidence interval of the mean.

    With one value the std is 0 and the interval is unknown (None).
    """
    x = np.asarray(returns, np.float64)
    if x.size == 0:
        raise ValueError("no returns to summarise")
    n, mean = int(x.size), float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    half = float(stdtrit(n - 1, 0.975) * std / math.sqrt(n)) if n > 1 else None
    return {
        "n": n,
        "mean": mean,
        "median": float(np.median(x)),
        "std": std,
        "min": float(x.min()),
        "max": float(x.max()),
        "ci95_low": None if half is None else mean - half,
        "ci95_high": None if half is None else mean + half,
    }


def checkpoint_returns(
    checkpoint: Path | None, env_name: str, distribution_mode: str, levels: LevelSet, num_episodes: int, seed: int = 0
) -> dict[str, Any]:
    """`summarize_returns` of `num_episodes` episodes on `levels` played by a saved checkpoint (with its run's own
    Procgen options) or, for None, by uniformly random actions: 20 environments, one thread, deterministic for a seed.
    Raises UserError when the checkpoint plays another game."""
    policy, options = None, {}
    if checkpoint is not None:
        policy, meta = load_policy(checkpoint)
        if meta["model_spec"]["env_name"] != env_name:
            raise UserError(f"{checkpoint} plays {meta['model_spec']['env_name']}, not {env_name}")
        options = procgen_options(meta["config"])
    episodes = run_episodes(
        policy, env_name, distribution_mode, levels, num_episodes, 20, seed=seed, num_threads=1, **options
    )
    return summarize_returns([e["ret"] for e in episodes])


def outplays_random(
    checkpoint: Path,
    env_name: str,
    distribution_mode: str,
    levels: LevelSet,
    num_episodes: int = 32,
    margin: float = 0.5,
) -> tuple[bool, float, float]:
    """(whether, checkpoint's mean, random's mean): whether a checkpoint's mean return over `num_episodes` on
    `levels` beats random actions' on the same levels and seed by more than `margin`. The shipped demonstrators'
    test, which results/procgen16/ship.py also runs before it ships a game."""
    mine = checkpoint_returns(checkpoint, env_name, distribution_mode, levels, num_episodes)["mean"]
    chance = checkpoint_returns(None, env_name, distribution_mode, levels, num_episodes)["mean"]
    return mine > chance + margin, mine, chance
