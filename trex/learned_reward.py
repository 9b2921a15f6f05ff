"""The learned reward as PPO's reward source (step 4): batched over all envs, on the training device, no grad.

Alignment: the reward of transition t is r(obs_t), the frame on which action t was chosen. Demonstrations pair
frame t with reward t the same way, so the policy is rewarded on exactly the frames the RewardNet was trained
to score, and the last reward of an episode never sees the next episode's first frame.
"""

from __future__ import annotations

import torch

from baseline_agent.envs import OBS_SHAPE
from toolkit.cli import UserError

TRANSFORMS = ("none", "sigmoid")


class LearnedReward:
    """`RewardSource` from a reward model; `transform="sigmoid"` squashes as T-REX did on Atari."""

    def __init__(self, model: torch.nn.Module, transform: str = "none"):
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {transform}")
        self.model, self.transform = model.eval(), transform
        self._device: torch.device | None = None

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if self._device != obs.device:
            self.model.to(obs.device)
            self._device = obs.device
        reward = self.model(obs).float()
        return torch.sigmoid(reward) if self.transform == "sigmoid" else reward


def load_learned_reward(
    path: str, env_name: str, distribution_mode: str | None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """A reward model from `trex/reward_model.py train`, refused when trained on another game, distribution
    mode or frame shape."""
    from trex.reward_net import load_reward_model

    model, meta = load_reward_model(path, device)
    if meta.get("env_name") != env_name:
        raise UserError(f"reward model {path} was trained on '{meta.get('env_name')}', not '{env_name}'")
    if distribution_mode is not None and meta.get("distribution_mode", distribution_mode) != distribution_mode:
        raise UserError(
            f"reward model {path} was trained on {meta['distribution_mode']} levels, not {distribution_mode}"
        )
    if tuple(meta.get("obs_shape", ())) != OBS_SHAPE:
        raise UserError(
            f"reward model {path} expects frames of shape {tuple(meta.get('obs_shape', ()))}, Procgen gives {OBS_SHAPE}"
        )
    return model
