"""Step 1 of T-REX: train a PPO demonstrator on a Procgen game, saving checkpoints along the way.

python baseline_agent/train.py -c configs/ppo/coinrun.yaml --run_dir runs/coinrun
torchrun --nproc_per_node 4 baseline_agent/train.py -c configs/ppo/coinrun.yaml
"""

from __future__ import annotations

from baseline_agent.distributed import main_process_lock
from baseline_agent.ppo import PPOConfig, PPOTrainer
from toolkit.cli import run_main
from toolkit.config import parse_config


def main(argv: list[str]) -> dict:
    cfg = parse_config(PPOConfig, argv, prog="baseline_agent/train.py", description=__doc__.splitlines()[0])
    with main_process_lock(cfg.run_dir):
        return PPOTrainer(cfg).train()


if __name__ == "__main__":
    run_main(main)
