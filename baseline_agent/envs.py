"""Procgen through its vectorised gym3 interface: level sets, env groups stepped in turn, true-return episode
statistics and reward scaling."""

from __future__ import annotations

import contextlib
import io
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from toolkit.cli import UserError

with contextlib.redirect_stderr(io.StringIO()):  # gym 0.26 prints an unmaintained-package notice on import
    from procgen import ProcgenGym3Env

GAMES = (
    "bigfish",
    "bossfight",
    "caveflyer",
    "chaser",
    "climber",
    "coinrun",
    "dodgeball",
    "fruitbot",
    "heist",
    "jumper",
    "leaper",
    "maze",
    "miner",
    "ninja",
    "plunder",
    "starpilot",
)
MODES = ("easy", "hard", "extreme", "memory", "exploration")
NUM_ACTIONS = 15
OBS_SHAPE = (64, 64, 3)
# Procgen's options beyond game, levels and mode (PPOConfig has a key of each name); a policy is evaluated or
# rolled out with the values it was trained with, since they change what the agent sees.
PROCGEN_OPTIONS = (
    "use_backgrounds",
    "restrict_themes",
    "use_monochrome_assets",
    "paint_vel_info",
    "center_agent",
    "use_sequential_levels",
)


@dataclass(frozen=True)
class LevelSet:
    """A range of Procgen level seeds: [start_level, start_level + num_levels); num_levels=0 means all."""

    start_level: int
    num_levels: int

    def contains(self, seed: int) -> bool:
        return self.num_levels == 0 or self.start_level <= seed < self.start_level + self.num_levels

    def overlaps(self, other: LevelSet) -> bool:
        if self.num_levels == 0 or other.num_levels == 0:
            return True
        return (
            self.start_level < other.start_level + other.num_levels
            and other.start_level < self.start_level + self.num_levels
        )

    def __str__(self) -> str:
        return "all" if self.num_levels == 0 else f"[{self.start_level:,}, {self.start_level + self.num_levels:,})"


def held_out_levels(train: LevelSet, num_levels: int) -> LevelSet:
    """Levels disjoint from `train` by construction: the range right after it."""
    if train.num_levels == 0:
        raise UserError("training on all levels (num_levels=0) leaves no held-out levels")
    return LevelSet(train.start_level + train.num_levels, num_levels)


def make_procgen(
    env_name: str,
    num_envs: int,
    levels: LevelSet,
    seed: int,
    distribution_mode: str = "easy",
    render: bool = False,
    num_threads: int = 4,
    **options,
) -> ProcgenGym3Env:
    """A `ProcgenGym3Env`; `options` are Procgen's own (use_backgrounds, paint_vel_info, ...)."""
    if env_name not in GAMES:
        raise UserError(f"unknown game '{env_name}' (choose one of: {', '.join(GAMES)})")
    env = ProcgenGym3Env(
        num=num_envs,
        env_name=env_name,
        num_levels=levels.num_levels,
        start_level=levels.start_level,
        distribution_mode=distribution_mode,
        rand_seed=int(seed) % 2**31,
        num_threads=num_threads,
        render_mode="rgb_array" if render else None,
        **options,
    )
    # gym3 closes an env left to the garbage collector in __del__, through a first lookup of a cffi function that
    # takes cffi's non-reentrant lock: a collection that runs inside another lookup (building the next env) then
    # deadlocks the process (seen in tests/test_reward_env.py). Looked up once here, the function is cached on the
    # library, and __del__ takes no lock.
    _ = env._c_lib.libenv_close
    return env


@dataclass
class Episode:
    """A finished episode: true (unnormalised) return, length and level seed."""

    ret: float
    length: int
    level_seed: int


class VecEnv:
    """Step-style view of a gym3 env: `step(actions) -> (obs, reward, done, finished_episodes)`.

    gym3's `observe()` returns the reward of the last action and `first`, which marks `obs` as the first
    frame of a new episode; so `done[t]` here is `first` after action t, as baselines' wrapper had it.
    """

    def __init__(self, env: ProcgenGym3Env):
        self.env = env
        self.num_envs = env.num
        self.ep_ret = np.zeros(self.num_envs, np.float64)
        self.ep_len = np.zeros(self.num_envs, np.int64)

    def observe(self) -> np.ndarray:
        return self.env.observe()[1]["rgb"]

    def level_seeds(self) -> np.ndarray:
        return np.array([info["level_seed"] for info in self.env.get_info()], np.int64)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, Episode]]]:
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: np.ndarray) -> None:
        """Start the step and return at once: procgen steps its envs on its own threads until `step_wait`."""
        self.env.act(np.asarray(actions, dtype=np.int32))

    def get_state(self) -> dict:
        """Everything needed to continue exactly where this env is: procgen's own serialised game states (levels,
        positions, random generators) and the running episode tallies."""
        states = self.env.callmethod("get_state")
        return {
            "procgen": [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in states],
            "ep_ret": torch.from_numpy(self.ep_ret.copy()),
            "ep_len": torch.from_numpy(self.ep_len.copy()),
        }

    def set_state(self, state: dict) -> None:
        self.env.callmethod("set_state", [t.numpy().tobytes() for t in state["procgen"]])
        self.ep_ret, self.ep_len = state["ep_ret"].numpy().copy(), state["ep_len"].numpy().copy()

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, Episode]]]:
        reward, obs, first = self.env.observe()
        self.ep_ret += reward
        self.ep_len += 1
        finished = []
        if first.any():
            infos = self.env.get_info()
            for i in np.flatnonzero(first):
                finished.append(
                    (int(i), Episode(float(self.ep_ret[i]), int(self.ep_len[i]), int(infos[i]["prev_level_seed"])))
                )
            self.ep_ret[first] = 0.0
            self.ep_len[first] = 0
        return obs["rgb"], reward.astype(np.float32), first.copy(), finished


def group_slices(num_envs: int, groups: int) -> list[slice]:
    """Contiguous, nearly equal slices of the env axis, one per env group."""
    bounds = np.linspace(0, num_envs, groups + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def step_groups(
    venvs: list[VecEnv],
    frames: list[np.ndarray],
    num_steps: int,
    choose: Callable[[int, int, np.ndarray], np.ndarray],
    landed: Callable[..., None],
) -> None:
    """Step every env group `num_steps` times, pipelined: a group's step is started (procgen steps it on its
    own threads) before the next group's actions are chosen, and waited for only when that group is due again.

    `choose(t, g, frames) -> actions` picks group g's actions at step t; `landed(t, g, obs, reward, done,
    finished)` receives the result of that step. `frames[g]` is updated in place to each group's newest
    frames. With one group this is the plain loop: choose, step, wait.
    """

    def land(t: int, g: int) -> None:
        frames[g], reward, done, finished = venvs[g].step_wait()
        landed(t, g, frames[g], reward, done, finished)

    for t in range(num_steps):
        for g, venv in enumerate(venvs):
            if t:
                land(t - 1, g)
            venv.step_async(choose(t, g, frames[g]))
    for g in range(len(venvs)):
        land(num_steps - 1, g)


class EpisodeStats:
    """The last 100 finished episodes' true returns, lengths and (with a learned reward) learned returns."""

    def __init__(self, num_envs: int):
        self.ret: deque[float] = deque(maxlen=100)
        self.len: deque[int] = deque(maxlen=100)
        self.learned: deque[float] = deque(maxlen=100)
        self.learned_acc = np.zeros(num_envs, np.float64)

    def add_true(self, episodes: list[tuple[int, Episode]]) -> None:
        for _, ep in episodes:
            self.ret.append(ep.ret)
            self.len.append(ep.length)

    def add_learned(self, rewards: np.ndarray, dones: np.ndarray, envs: slice = slice(None)) -> None:
        """Accumulate learned rewards [T, n] of the envs `envs` and close the episodes that `dones` [T, n] ends."""
        acc = self.learned_acc[envs]  # a view: updated in place
        for r, d in zip(rewards, dones, strict=True):
            acc += r
            self.learned.extend(acc[d].tolist())
            acc[d] = 0.0

    def state_dict(self) -> dict:
        return {
            "ret": list(self.ret),
            "len": list(self.len),
            "learned": list(self.learned),
            "learned_acc": self.learned_acc.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("ret", "len", "learned"):
            getattr(self, name).extend(state[name])
        self.learned_acc[:] = state["learned_acc"]


class RunningMeanStd:
    """Running mean and variance over batches (Chan et al.), as baselines' RunningMeanStd."""

    def __init__(self, epsilon: float = 1e-4):
        self.mean, self.var, self.count = 0.0, 1.0, epsilon

    def update_from_moments(self, batch_mean: float, batch_var: float, batch_count: float) -> None:
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var, self.count = m2 / total, total


class RewardNormalizer:
    """baselines' `VecNormalize(ob=False)`: divide rewards by the running std of the discounted return.

    `reduce_moments` combines the batch moments across data-parallel ranks (identity on one process).
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8, reduce_moments=None):
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon
        self.ret = np.zeros(num_envs, np.float64)
        self.rms = RunningMeanStd()
        self.reduce_moments = reduce_moments or (lambda mean, var, count: (mean, var, count))

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Normalise one step's rewards; `done` marks the episodes that ended with this reward."""
        self.ret = self.ret * self.gamma + reward
        self.rms.update_from_moments(
            *self.reduce_moments(float(self.ret.mean()), float(self.ret.var()), float(len(self.ret)))
        )
        out = np.clip(reward / np.sqrt(self.rms.var + self.epsilon), -self.clip, self.clip)
        self.ret[done] = 0.0
        return out.astype(np.float32)

    def state_dict(self) -> dict:
        return {"ret": self.ret.tolist(), "mean": self.rms.mean, "var": self.rms.var, "count": self.rms.count}

    def load_state_dict(self, state: dict) -> None:
        if len(state["ret"]) == len(self.ret):
            self.ret = np.array(state["ret"], np.float64)
        self.rms.mean, self.rms.var, self.rms.count = state["mean"], state["var"], state["count"]
