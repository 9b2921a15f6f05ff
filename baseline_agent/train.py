"""Step 1 of T-REX: train a PPO demonstrator on a Procgen game, saving checkpoints along the way.

    python baseline_agent/train.py -c configs/ppo/coinrun.yaml --run_dir runs/coinrun
    torchrun --nproc_per_node 4 baseline_agent/train.py -c configs/ppo/coinrun.yaml
"""

from __future__ import annotations

from baseline_agent.cli import run_main
from baseline_agent.config import parse_config
from baseline_agent.ppo import PPOConfig, PPOTrainer


def main(argv: list[str]) -> dict:
    cfg = parse_config(PPOConfig, argv, prog="baseline_agent/train.py", description=__doc__.splitlines()[0])
    return PPOTrainer(cfg).train()


if __name__ == "__main__":
    run_main(main)
