"""The learned reward as PPO's reward source (step 4): batched over all envs, on the training device, no grad.

Alignment: the reward of transition t is r(obs_t), the frame on which action t was chosen. Demonstrations pair
frame t with reward t the same way, so the policy is rewarded on exactly the frames the RewardNet was trained
to score, and the last reward of an episode never sees the next episode's first frame.

T-REX's loss compares snippets of equal length, so it cannot fix a constant added to every frame's reward; PPO
would receive that constant as a bonus (or a cost) for every step alive, its sign left to the seed. The
transforms decide it instead:
- `none`: the raw output (the 2020 study's default);
- `sigmoid`: squashed to (0, 1), as T-REX did on Atari: a positive reward for every step;
- `standardise`: less the mean and over the spread of the model's rewards on its own training demos' frames
  (stored in the reward model file when it is trained), so those frames average 0 on any machine.
After the transform, `survival` is added to every step: positive rewards staying alive, negative ends episodes
sooner. Several reward models (an ensemble of the study's seeds) give the mean of their transformed rewards.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from baseline_agent.envs import OBS_SHAPE
from toolkit.cli import UserError

TRANSFORMS = ("none", "sigmoid", "standardise")


class LearnedReward:
    """`RewardSource` of one or more reward models: each one's transformed per-frame reward, averaged, plus
    `survival` per step. `stats` holds each model's training-frame {"mean", "std"} (needed by `standardise`)."""

    def __init__(
        self,
        models: torch.nn.Module | Sequence[torch.nn.Module],
        transform: str = "none",
        stats: Sequence[dict | None] | None = None,
        survival: float = 0.0,
    ):
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {transform}")
        self.models = [m.eval() for m in ([models] if isinstance(models, torch.nn.Module) else models)]
        self.transform, self.survival = transform, survival
        self.stats = list(stats) if stats is not None else [None] * len(self.models)
        if transform == "standardise" and any(s is None for s in self.stats):
            raise ValueError("the standardise transform needs each model's training-frame mean and std")
        self._device: torch.device | None = None

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if self._device != obs.device:
            for model in self.models:
                model.to(obs.device)
            self._device = obs.device
        total = torch.zeros(len(obs), device=obs.device)
        for model, stats in zip(self.models, self.stats, strict=True):
            reward = model(obs).float()
            if self.transform == "sigmoid":
                reward = torch.sigmoid(reward)
            elif self.transform == "standardise":
                assert stats is not None
                reward = (reward - stats["mean"]) / max(stats["std"], 1e-8)
            total += reward
        return total / len(self.models) + self.survival


class ConstantReward:
    """`RewardSource` of the survival control: `value` for every step, whatever the frame ("+1 per step")."""

    def __init__(self, value: float = 1.0):
        self.value = value

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.full((len(obs),), self.value, device=obs.device)


def load_reward_source(
    paths: str | Sequence[str],
    env_name: str,
    distribution_mode: str | None,
    transform: str = "none",
    survival: float = 0.0,
    device: str | torch.device = "cpu",
) -> LearnedReward:
    """The `LearnedReward` of one or more reward model files, each checked as `load_learned_reward` checks it;
    `standardise` is refused in one line for a file trained before its training-frame statistics were stored."""
    models, stats = [], []
    for path in [paths] if isinstance(paths, str) else paths:
        model, meta = _load_checked(path, env_name, distribution_mode, device)
        models.append(model)
        stats.append(meta.get("reward_stats"))
        if transform == "standardise" and stats[-1] is None:
            raise UserError(
                f"reward model {path} holds no statistics of its training frames, which the standardise transform "
                "needs: train it again with trex/reward_model.py train, or choose another reward_transform"
            )
    if not models:
        raise UserError("config key 'reward_model': the path of at least one reward_model.pt is required")
    return LearnedReward(models, transform, stats, survival)


def load_learned_reward(
    path: str, env_name: str, distribution_mode: str | None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """A reward model from `trex/reward_model.py train`, refused when trained on another game, distribution
    mode or frame shape."""
    return _load_checked(path, env_name, distribution_mode, device)[0]


def _load_checked(
    path: str, env_name: str, distribution_mode: str | None, device: str | torch.device
) -> tuple[torch.nn.Module, dict]:
    from trex.reward.net import load_reward_model

    model, meta = load_reward_model(path, device)
    if meta.get("env_name") != env_name:
        raise UserError(f"reward model {path} was trained on '{meta.get('env_name')}', not '{env_name}'")
    if distribution_mode is not None and meta.get("distribution_mode", distribution_mode) != distribution_mode:
        raise UserError(
            f"reward model {path} was trained on {meta['distribution_mode']} levels, not {distribution_mode}"
        )
    if meta.get("frame_stack", 1) != 1:
        raise UserError(
            f"reward model {path} reads {meta['frame_stack']} stacked frames (frame_stack); outside step 3 a learned "
            "reward is scored one frame at a time: train the reward with frame_stack 1"
        )
    if tuple(meta.get("obs_shape", ())) != OBS_SHAPE:
        raise UserError(
            f"reward model {path} expects frames of shape {tuple(meta.get('obs_shape', ()))}, Procgen gives {OBS_SHAPE}"
        )
    return model, meta
