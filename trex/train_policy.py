"""Step 4 of T-REX: train a PPO policy on the learned reward alone (the true return is logged beside it).

    python trex/train_policy.py -c configs/ppo/coinrun.yaml --reward_model runs/reward_coinrun/reward_model.pt \
        --run_dir runs/policy_coinrun

The step-1 trainer runs unchanged with the reward model plugged in as its reward source.
"""

from __future__ import annotations

from dataclasses import dataclass

from baseline_agent.distributed import main_process_lock
from baseline_agent.ppo import PPOConfig, PPOTrainer, RewardSource
from toolkit.cli import UserError, run_main
from toolkit.config import option, parse_config
from trex.policy.learned_reward import TRANSFORMS, ConstantReward, load_reward_source

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
    run_dir: str = option("runs/policy", "folder for config, checkpoints, logs and summary")

    def check(self) -> None:
        super().check()
        if self.reward == "learned" and not self.reward_model:
            raise UserError("config key 'reward_model': the path of a reward_model.pt is required")


def main(argv: list[str]) -> dict:
    cfg = parse_config(PolicyConfig, argv, prog="trex/train_policy.py", description=__doc__.splitlines()[0])
    source: RewardSource
    if cfg.reward == "survival":
        source = ConstantReward(1.0)
    else:
        source = load_reward_source(
            cfg.reward_model, cfg.env_name, cfg.distribution_mode, cfg.reward_transform, cfg.survival_bonus
        )
    with main_process_lock(cfg.run_dir):
        return PPOTrainer(cfg, reward_source=source).train()


if __name__ == "__main__":
    run_main(main)
