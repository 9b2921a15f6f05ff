"""A Gymnasium vector env of this project as Stable-Baselines3's `VecEnv`, so SB3 trains on the learned reward.

SB3 takes no Gymnasium vector env, and wrapping single envs in its DummyVecEnv would score one frame at a time;
through this one VecEnv the reward model scores every env's frame in one batch.

    from stable_baselines3 import PPO
    from trex.interop.gym_env import ProcgenVecEnv
    from trex.interop.reward_env import LearnedRewardVecEnv
    from trex.interop.sb3_env import SB3VecEnv

    venv = LearnedRewardVecEnv(ProcgenVecEnv("starpilot", num_envs=8), "runs/reward/reward_model.pt")
    PPO("CnnPolicy", SB3VecEnv(venv)).learn(100_000)  # rollout/ep_rew_mean is the true return

Each env's info keeps the true reward (`original_env_rew`), and at an episode's end SB3's `episode` entry with the
true return and length (what SB3 logs as ep_rew_mean) and `learned_return`. Procgen shows no frame after an
episode's last action (it starts the next episode at once), so `terminal_observation` is the episode's last frame.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from trex.interop.gym_env import split_info


class SB3VecEnv(VecEnv):
    """SB3's VecEnv over a Gymnasium (0.29) vector env: `ProcgenVecEnv`, or one wrapped in `LearnedRewardVecEnv`."""

    def __init__(self, venv: gymnasium.vector.VectorEnv):
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._obs: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        self._obs, info = self.venv.reset(seed=self._seeds[0])
        self.reset_infos = split_info(info, self.num_envs)
        self._reset_seeds()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, reward, terminated, truncated, info = self.venv.step_wait()
        done = terminated | truncated
        infos = split_info(info, self.num_envs)
        for i in np.flatnonzero(done):
            infos[i]["terminal_observation"] = self._obs[i] if self._obs is not None else obs[i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        self._obs = obs
        return obs, reward.astype(np.float32), done, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.venv.unwrapped, attr_name, None)] * self.num_envs

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.venv.unwrapped, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return [getattr(self.venv.unwrapped, method_name)(*args, **kwargs)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * self.num_envs
