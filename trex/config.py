"""One config for steps 2 and 3 (`trex/reward_model.py demos|train|sweep`), so one YAML serves both."""

from __future__ import annotations

from dataclasses import dataclass

from baseline_agent.envs import GAMES, MODES
from toolkit.cli import UserError
from toolkit.config import option
from toolkit.runtime import RuntimeConfig


@dataclass
class TrexConfig(RuntimeConfig):
    """Ranked demonstrations (step 2) and the T-REX reward model (step 3)."""

    # --- the game and the level sets
    env_name: str = option("coinrun", "Procgen game (checkpoints of another game are refused)", choices=GAMES)
    distribution_mode: str = option("easy", "Procgen distribution mode", choices=MODES)
    train_start_level: int = option(0, "first training level (use the demonstrators' own)", min=0)
    train_num_levels: int = option(200, "number of training levels", min=1)
    test_num_levels: int = option(100_000, "held-out levels, right after the training ones (disjoint)", min=1)

    # --- step 2: demonstrations
    checkpoint_dir: str = option("", "folder of step-1 checkpoints to roll out (e.g. runs/ppo/checkpoints)")
    checkpoints: list[str] = option([], "explicit checkpoint files (instead of checkpoint_dir)")
    num_demos: int = option(100, "demonstrations on training levels", min=0)
    num_test_demos: int = option(50, "demonstrations on held-out levels", min=0)
    checkpoint_sampling: str = option("stratified", "how checkpoints are drawn per demo",
                                      choices=("uniform", "stratified"))
    noise_levels: list[float] = option([], "D-REX-style epsilon-greedy noise levels for one checkpoint, to spread "
                                       "returns; rank_by: noise then ranks by them (D-REX); empty = off",
                                       min=0.0, max=1.0)
    greedy: bool = option(False, "greedy actions instead of sampling")
    max_episode_steps: int = option(1000, "cap on a demonstration's length", min=1)
    num_envs: int = option(32, "episodes rolled out at once in one vectorised env", min=1)
    demo_dir: str = option("runs/demos", "folder of demonstrations (.npz files and index.csv)")

    # --- step 3: snippet pairs
    num_pairs: int = option(5000, "training pairs of snippets", min=1)
    min_snippet_length: int = option(20, "shortest snippet, in frames before subsampling", min=1)
    max_snippet_length: int = option(60, "longest snippet, in frames before subsampling", min=1)
    frame_stride: int = option(2, "keep every k-th frame of a snippet (T-REX's Atari code subsampled)", min=1)
    progress_constraint: bool = option(True, "the better demo's snippet starts no earlier than the worse one's")
    rank_by: str = option("return", "rank demos by true return (T-REX) or by less epsilon-greedy noise (D-REX, "
                          "with noise_levels)", choices=("return", "noise"))
    val_fraction: float = option(0.2, "share of training-level demos held out for validation", min=0.0, max=0.9)

    # --- step 3: RewardNet and RewardTrainer
    reward_net: str = option("fast", "network: fast (strided, cheap) or trex2020 (the 2020 study's)",
                             choices=("fast", "trex2020"))
    ensemble_size: int = option(1, "independently initialised reward nets, averaged", min=1)
    batch_size: int = option(32, "pairs per training step", min=1)
    learning_rate: float = option(1e-4, "Adam learning rate", min=0.0)
    weight_decay: float = option(0.0, "Adam weight decay", min=0.0)
    l1_reg: float = option(0.001, "L1 penalty on per-frame rewards, summed per pair (anchors the reward's offset, "
                                  "which equal-length snippets leave free; the 2020 study's 0.001)", min=0.0)
    epochs: int = option(5, "passes over the training pairs (at most)", min=1)
    eval_interval: int = option(1000, "training pairs between validation checks (the unit of patience)", min=1)
    patience: int = option(3, "validation checks without a better validation accuracy before stopping", min=1)
    amp: bool = option(False, "bf16/fp16 autocast on GPU")

    # --- step 3: sweep over the number of demonstrations
    sweep_num_demos: list[int] = option([12, 25, 50, 100], "numbers of training demos in the sweep", min=2)
    sweep_seeds: int = option(3, "seeds per sweep point", min=1)

    # --- common
    seed: int = option(0, "random seed", min=0)
    run_dir: str = option("runs/reward_model", "folder for the reward model, metrics, logs and plots")

    def check(self) -> None:
        super().check()
        if self.min_snippet_length > self.max_snippet_length:
            raise UserError("config key 'min_snippet_length': must not exceed max_snippet_length "
                            f"({self.min_snippet_length} > {self.max_snippet_length})")
