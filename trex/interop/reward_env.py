"""The learned reward as Gymnasium wrappers (single and vectorised), for RL libraries other than this project's PPO.

Each replaces the reward by `trex.policy.learned_reward.LearnedReward`, the very reward source step 4 plugs into PPO
(same transforms, batched over the envs, no grad, on the given device), aligned as step 4 aligns it: the reward
of a step is r(frame the action was chosen on). As imitation's reward wrappers do, the true reward stays in
`info["original_env_rew"]` and the true episode statistics in `info["episode"]`; each finished episode's learned
return is in `info["learned_return"]`.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch

from trex.interop.gym_env import ProcgenEnv, ProcgenVecEnv
from trex.policy.learned_reward import load_reward_source

VECTOR_ATTRIBUTES: tuple[str, ...] = ("num_envs", "observation_space", "action_space", "single_observation_space")
VECTOR_ATTRIBUTES += ("single_action_space", "is_vector_env", "env_name", "distribution_mode")


class _Scorer:
    """A reward model file as a function of uint8 frames [B, 64, 64, 3] (numpy) -> rewards [B] (float32)."""

    def __init__(self, path: str, env_name: str, distribution_mode: str, transform: str, device: str):
        self.device = torch.device(device)
        self.reward = load_reward_source(path, env_name, distribution_mode, transform, device=self.device)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.reward(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)).cpu().numpy()


class LearnedRewardVecEnv(gymnasium.vector.VectorEnvWrapper):
    """A `ProcgenVecEnv` whose reward is the reward model's; a model of another game, mode or frame shape is
    refused in one line (`UserError`), as step 4 refuses it."""

    def __init__(self, env: ProcgenVecEnv, reward_model: str, transform: str = "none", device: str = "cpu"):
        super().__init__(env)
        for name in VECTOR_ATTRIBUTES:  # Gymnasium 0.29 warns on each read it forwards
            setattr(self, name, getattr(env, name))
        self.score = _Scorer(reward_model, env.env_name, env.distribution_mode, transform, device)
        self._obs: np.ndarray | None = None
        self._reward = np.zeros(env.num_envs, np.float32)
        self._learned = np.zeros(env.num_envs, np.float64)

    def reset_wait(self, seed: int | list[int] | None = None, options: dict | None = None, **kwargs: Any) -> Any:
        self._obs, info = self.env.reset_wait(seed=seed, options=options)
        self._learned[:] = 0.0
        return self._obs, info

    def step_async(self, actions: np.ndarray) -> None:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        self._reward = self.score(self._obs)  # scored before stepping: the frames these actions are chosen on
        self.env.step_async(actions)

    def step_wait(self, **kwargs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        self._obs, true_reward, terminated, truncated, info = self.env.step_wait()
        self._learned += self._reward
        done = terminated | truncated
        info["original_env_rew"] = true_reward
        if done.any():
            info["learned_return"], info["_learned_return"] = np.where(done, self._learned, 0.0), done
            self._learned[done] = 0.0
        return self._obs, self._reward, terminated, truncated, info


class LearnedRewardEnv(gymnasium.Wrapper):
    """A single `ProcgenEnv` whose reward is the reward model's (a `LearnedRewardVecEnv` of one)."""

    def __init__(self, env: ProcgenEnv, reward_model: str, transform: str = "none", device: str = "cpu"):
        super().__init__(env)
        self.score = _Scorer(reward_model, env.env_name, env.distribution_mode, transform, device)
        self._obs: np.ndarray | None = None
        self._learned = 0.0

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        self._obs, info = self.env.reset(**kwargs)
        self._learned = 0.0
        return self._obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        reward = float(self.score(self._obs[None])[0])
        self._obs, true_reward, terminated, truncated, info = self.env.step(action)
        self._learned += reward
        info["original_env_rew"] = true_reward
        if terminated or truncated:
            info["learned_return"], self._learned = self._learned, 0.0
        return self._obs, reward, terminated, truncated, info
