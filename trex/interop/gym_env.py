"""Procgen with the Gymnasium API (0.29), single and vectorised, for RL code outside this project.

A thin adapter of procgen's own vectorised env (`baseline_agent.envs`), not EnvPool: EnvPool 1.2.5's Procgen wants
glfw>=2.10 where gym3 pins glfw<2, and this way the frames are the very ones the demos and step 4 see.

Procgen resets an episode by itself: the frame after an episode's last action is the next episode's first, and
the frame after the last action is never shown. So `terminated` marks the step that ended an episode, the
observation it returns is already the next episode's first frame, and `truncated` is always False (a game's own
time limit ends its episode as any other end does). `info["episode"]` holds each finished episode's true return
`r`, length `l` and level seed, as Gymnasium's RecordEpisodeStatistics names them.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from baseline_agent.envs import NUM_ACTIONS, OBS_SHAPE, LevelSet, VecEnv, make_procgen

OBS_SPACE = spaces.Box(0, 255, OBS_SHAPE, np.uint8)


class ProcgenVecEnv(gymnasium.vector.VectorEnv):
    """`num_envs` Procgen envs stepped together on procgen's threads; `options` are Procgen's own."""

    def __init__(
        self,
        env_name: str,
        num_envs: int = 1,
        num_levels: int = 0,
        start_level: int = 0,
        distribution_mode: str = "easy",
        seed: int = 0,
        num_threads: int = 1,
        **options: Any,
    ):
        super().__init__(num_envs, OBS_SPACE, spaces.Discrete(NUM_ACTIONS))
        self.env_name, self.distribution_mode = env_name, distribution_mode
        self._make_args = (env_name, num_envs, LevelSet(start_level, num_levels))
        self._make_kwargs = {"distribution_mode": distribution_mode, "num_threads": num_threads, **options}
        self._seed = seed
        self._venv = self._make()
        self._fresh = True  # every env is at the first frame of an episode, as `reset` must leave it

    def _make(self) -> VecEnv:
        return VecEnv(make_procgen(*self._make_args, self._seed, **self._make_kwargs))

    def reset_wait(self, seed: int | list[int] | None = None, options: dict | None = None) -> Any:
        """Procgen cannot restart an episode: a new seed, or any episode under way, builds the envs anew (one
        seed for all: procgen seeds its envs from one)."""
        if isinstance(seed, list):
            seed = seed[0]
        if seed is not None or not self._fresh:
            self._venv.env.close()
            self._seed = self._seed + 1 if seed is None else seed
            self._venv = self._make()
        self._fresh = True
        return self._venv.observe(), {"level_seed": self._venv.level_seeds()}

    def step_async(self, actions: np.ndarray) -> None:
        self._fresh = False
        self._venv.step_async(np.asarray(actions))

    def step_wait(self, **kwargs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, reward, done, finished = self._venv.step_wait()
        info: dict[str, Any] = {"level_seed": self._venv.level_seeds()}
        if finished:
            stats = {"r": np.zeros(self.num_envs), "l": np.zeros(self.num_envs, np.int64)}
            stats["level_seed"] = np.zeros(self.num_envs, np.int64)
            for i, ep in finished:
                stats["r"][i], stats["l"][i], stats["level_seed"][i] = ep.ret, ep.length, ep.level_seed
            info["episode"], info["_episode"] = stats, done.copy()
        return obs, reward, done, np.zeros(self.num_envs, bool), info


class ProcgenEnv(gymnasium.Env):
    """One Procgen env with the single-env Gymnasium API (a `ProcgenVecEnv` of one)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, env_name: str, **kwargs: Any):
        self.vec = ProcgenVecEnv(env_name, num_envs=1, **kwargs)
        self.env_name, self.distribution_mode = env_name, self.vec.distribution_mode
        self.observation_space, self.action_space = OBS_SPACE, spaces.Discrete(NUM_ACTIONS)
        self._at_start = True

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if self._at_start and seed is None:  # the episode that just ended left the next one's first frame
            obs, info = self.vec._venv.observe(), {"level_seed": self.vec._venv.level_seeds()}
        else:
            obs, info = self.vec.reset(seed=seed)
        self._at_start = True
        return obs[0], split_info(info, 1)[0]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.vec.step(np.array([action]))
        self._at_start = bool(terminated[0])
        return obs[0], float(reward[0]), self._at_start, bool(truncated[0]), split_info(info, 1)[0]

    def close(self) -> None:
        self.vec.close()


def split_info(info: dict, num_envs: int) -> list[dict]:
    """A vector env's info (arrays, with `_key` masks) as one dict of plain values per env, keys of masked-out
    entries dropped: what single-env code and SB3 read."""
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in info.items():
        if key.startswith("_"):
            continue
        for i in np.flatnonzero(info.get(f"_{key}", np.ones(num_envs, bool))):
            out[i][key] = {k: v[i].item() for k, v in value.items()} if isinstance(value, dict) else value[i].item()
    return out
