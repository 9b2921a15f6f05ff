"""Step 4 of T-REX: train a PPO policy on the learned reward alone (the true return is logged beside it).

    python trex/train_policy.py -c configs/ppo/coinrun.yaml --reward_model runs/reward_coinrun/reward_model.pt \
        --run_dir runs/policy_coinrun

The step-1 trainer runs unchanged with the reward model plugged in as its reward source.
"""

from __future__ import annotations

from baseline_agent.distributed import main_process_lock
from baseline_agent.ppo import PPOTrainer, RewardSource
from toolkit.cli import run_main
from toolkit.config import parse_config
from trex.policy.config import PolicyConfig
from trex.policy.learned_reward import ConstantReward, load_reward_source


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
