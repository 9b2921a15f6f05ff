"""Step 4 of T-REX: train a PPO policy on the learned reward alone (the true return is logged beside it).

    python trex/train_policy.py -c configs/ppo/coinrun.yaml --reward_model runs/reward_coinrun/reward_model.pt \
        --run_dir runs/policy_coinrun

The step-1 trainer runs unchanged with the reward model plugged in as its reward source.
"""

from __future__ import annotations

from dataclasses import dataclass

from baseline_agent.distributed import main_process_lock
from baseline_agent.ppo import PPOConfig, PPOTrainer
from toolkit.cli import UserError, run_main
from toolkit.config import option, parse_config
from trex.learned_reward import TRANSFORMS, LearnedReward, load_learned_reward


@dataclass
class PolicyConfig(PPOConfig):
    """PPO's keys plus the learned reward. `normalize_reward` (default on) scales the learned reward by the
    running std of its discounted return, as step 1 did for the true reward."""

    reward_model: str = option("", "reward_model.pt from `trex/reward_model.py train` (required)")
    reward_transform: str = option(
        "none",
        "applied to each learned reward before scaling: none, or sigmoid "
        "as the T-REX paper did on Atari (then consider --normalize_reward false)",
        choices=TRANSFORMS,
    )
    run_dir: str = option("runs/policy", "folder for config, checkpoints, logs and summary")

    def check(self) -> None:
        super().check()
        if not self.reward_model:
            raise UserError("config key 'reward_model': the path of a reward_model.pt is required")


def main(argv: list[str]) -> dict:
    cfg = parse_config(PolicyConfig, argv, prog="trex/train_policy.py", description=__doc__.splitlines()[0])
    model = load_learned_reward(cfg.reward_model, cfg.env_name, cfg.distribution_mode)
    with main_process_lock(cfg.run_dir):
        return PPOTrainer(cfg, reward_source=LearnedReward(model, cfg.reward_transform)).train()


if __name__ == "__main__":
    run_main(main)
