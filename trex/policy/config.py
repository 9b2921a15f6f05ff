"""Step 4's config: PPO's keys plus where the reward comes from."""

from __future__ import annotations

from dataclasses import dataclass

from baseline_agent.ppo_config import PPOConfig
from toolkit.cli import UserError
from toolkit.config import option
from trex.policy.learned_reward import TRANSFORMS

REWARDS = ("learned", "survival")


@dataclass
class PolicyConfig(PPOConfig):
    """PPO's keys plus the learned reward. `normalize_reward` (default on) scales the learned reward by the
    running std of its discounted return, as step 1 did for the true reward."""

    reward: str = option(
        "learned",
        "what the policy learns from: the learned reward, or survival (+1 per step, whatever the frame: the "
        "control a learned reward must beat)",
        choices=REWARDS,
    )
    reward_model: list[str] = option(
        [],
        "reward_model.pt file(s) from `trex/reward_model.py train` (required with reward: learned); several: "
        "the mean of their transformed rewards",
        path="file",
    )
    reward_transform: str = option(
        "none",
        "applied to each model's reward before scaling (trex/policy/learned_reward.py): none (raw), sigmoid (as T-REX "
        "on Atari) or standardise (by the model's own training frames' mean and std)",
        choices=TRANSFORMS,
    )
    survival_bonus: float = option(
        0.0, "added to every step's learned reward after the transform: > 0 rewards staying alive, < 0 ending sooner"
    )
    run_dir: str = option("runs/policy", "folder for config, checkpoints, logs and summary", path="folder")

    def check(self) -> None:
        super().check()
        if self.reward == "learned" and not self.reward_model:
            raise UserError("config key 'reward_model': the path of a reward_model.pt is required")
