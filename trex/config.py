"""One config for steps 2 and 3 (`trex/reward_model.py demos|train|sweep`), so one YAML serves both."""

from __future__ import annotations

from dataclasses import dataclass

from baseline_agent.envs import GAMES, MODES, LevelSet, held_out_levels
from toolkit.cli import UserError
from toolkit.config import option
from toolkit.runtime import RuntimeConfig
from toolkit.tracking import TrackingConfig
from trex.reward.augment import AUGMENTATIONS
from trex.reward.loss import SUPERVISIONS
from trex.reward.net import ARCHITECTURES

FRESH_LEVELS = 1_000_000_000  # levels a fresh level per demo is drawn from (demo_num_levels 0)
MAX_LEVEL = 2**31 - 1  # Procgen's level seeds are 32-bit ints


@dataclass
class TrexConfig(RuntimeConfig, TrackingConfig):
    """Ranked demonstrations (step 2) and the T-REX reward model (step 3)."""

    # --- the game and the level sets
    env_name: str = option("coinrun", "Procgen game (checkpoints of another game are refused)", choices=GAMES)
    distribution_mode: str = option("easy", "Procgen distribution mode", choices=MODES)
    train_start_level: int = option(
        0, "first of the demonstrators' training levels (checked against checkpoints)", min=0
    )
    train_num_levels: int = option(
        200, "number of the demonstrators' training levels (0 = they trained on every level)", min=0
    )
    demo_num_levels: int | None = option(
        None,
        "distinct levels the training demos are drawn from: the first N from "
        "train_start_level; none = train_num_levels; 0 = a fresh level per demo "
        f"(drawn from the {FRESH_LEVELS:,} levels after the held-out ones)",
        min=0,
    )
    held_out_start_level: int | None = option(
        None, "first held-out level (none = right after the training levels)", min=0
    )
    held_out_num_levels: int = option(
        100_000, "number of held-out levels (disjoint from the training demos' levels)", min=1
    )

    # --- step 2: demonstrations
    checkpoint_dir: str = option(
        "", "folder of step-1 checkpoints to roll out (e.g. runs/ppo/checkpoints)", path="folder"
    )
    checkpoints: list[str] = option([], "explicit checkpoint files (instead of checkpoint_dir)")
    num_demos: int = option(
        100, "demonstrations on the training demos' levels to train on (step 3 picks from them)", min=0
    )
    num_held_out_demos: int = option(
        50,
        "demonstrations on held-out levels; as many again are played on the training "
        "demos' levels as new episodes to evaluate on (level set new_episodes)",
        min=0,
    )
    checkpoint_sampling: str = option(
        "stratified", "how checkpoints are drawn per demo", choices=("uniform", "stratified")
    )
    noise_levels: list[float] = option(
        [],
        "D-REX-style epsilon-greedy noise levels for one checkpoint, to spread "
        "returns; rank_by: noise then ranks by them (D-REX); empty = off",
        min=0.0,
        max=1.0,
    )
    greedy: bool = option(False, "greedy actions instead of sampling")
    max_episode_steps: int = option(1000, "cap on a demonstration's length", min=1)
    num_envs: int = option(32, "episodes rolled out at once in one vectorised env", min=1)
    demo_dir: str = option("runs/demos", "folder of demonstrations (.npz files and index.csv)", path="folder")

    # --- step 3: snippet pairs
    num_pairs: int = option(5000, "training pairs of snippets", min=1)
    min_snippet_length: int = option(20, "shortest snippet, in frames before subsampling", min=1)
    max_snippet_length: int = option(60, "longest snippet, in frames before subsampling", min=1)
    frame_stride: int = option(2, "keep every k-th frame of a snippet (T-REX's Atari code subsampled)", min=1)
    progress_constraint: bool = option(True, "the better demo's snippet starts no earlier than the worse one's")
    time_aligned: bool = option(
        False,
        "both snippets of a pair cover the same time steps of their two episodes, so a reward that only grows with "
        "time cannot tell them apart (a clock scores 0.5; progress_constraint is then moot)",
    )
    same_level_pairs: bool = option(
        False,
        "pair only demos of the same level (training and validation pairs), so how a level looks cannot explain a "
        "label; needs demos that share levels (demo_num_levels well below num_demos)",
    )
    clock_free_validation: bool = option(
        False,
        "validation pairs are time-aligned whatever the training pairs, so early stopping rewards what a clock "
        "cannot explain",
    )
    rank_by: str = option(
        "return",
        "rank demos by true return (T-REX) or by less epsilon-greedy noise (D-REX, with noise_levels)",
        choices=("return", "noise"),
    )
    val_fraction: float = option(
        0.2,
        "share of the chosen training demos held out for validation (early stopping), when val_num_levels is 0",
        min=0.0,
        max=0.9,
    )
    val_num_levels: int = option(
        0,
        "levels of a validation set of its own, disjoint from the training demos' and the held-out levels, so "
        "early stopping sees overfitting to levels (0 = validate on val_fraction of the training demos)",
        min=0,
    )
    val_start_level: int | None = option(
        None, "first validation level (none = right after the fresh levels of demo_num_levels 0)", min=0
    )
    num_val_demos: int = option(50, "demonstrations on the validation levels (with val_num_levels)", min=0)
    demo_selection: str = option(
        "random",
        "how num_demos demos are picked from the folder: random, or return_bins "
        "(round-robin over equal-width return bins, the 2020 study's near-uniform spread)",
        choices=("random", "return_bins"),
    )
    return_bins: int = option(4, "number of return bins for demo_selection: return_bins", min=1)
    max_return: float = option(
        1.0,
        "keep only training demos whose return is at most this share of the way from "
        "the lowest to the highest (T-REX's extrapolation question; 1 = all)",
        min=0.0,
        max=1.0,
    )

    # --- step 3: RewardNet and RewardTrainer
    reward_net: str = option(
        "fast",
        "network: fast (strided, cheap), study2020 (the 2020 study's: 3x3 convs, max "
        "pools, raw 0-255 pixels), trex_atari (T-REX's Atari net), pooled (a reward per screen cell, "
        "the same weights everywhere, averaged: position-invariant) or impala (the Procgen paper's IMPALA trunk, "
        "16/32/32; about 45x fast's cost per step on a CPU: benchmarks/reward_net_cost.py)",
        choices=ARCHITECTURES,
    )
    frame_stack: int = option(
        1,
        "frames the reward of a frame reads: it and the frame_stack-1 before it, stacked along the channels, so the "
        "net can see what moved or burst since the step before (1 = one frame, as the 2020 study; a reward model "
        "reading more is measured in step 3 only: step 4 refuses it)",
        min=1,
        max=4,
    )
    ensemble_size: int = option(1, "independently initialised reward nets, averaged", min=1)
    ensemble_resample: bool = option(
        False, "each ensemble member trains on its own resample of the pairs (drawn with replacement)"
    )
    augment: list[str] = option(
        [],
        "image augmentations of training snippets, one draw per snippet (trex/reward/augment.py): shift, colour, conv",
        choices=AUGMENTATIONS,
    )
    augment_consistency: float = option(
        0.0, "weight of a consistency loss between the rewards of two augmented views of each frame", min=0.0
    )
    inverse_dynamics: float = option(
        0.0,
        "weight of a B-REX-style auxiliary loss on the reward net's encoder: predict each action of the training "
        "demos from its frame and the next (0 = off)",
        min=0.0,
    )
    dynamics_demo_dir: str = option(
        "",
        "a demo folder whose training demos' transitions feed the inverse-dynamics loss, drawn evenly with the "
        "training demos' (their returns are never read): unlabelled frames from many levels; none may be of a "
        "validation or held-out level",
        path="folder",
    )
    supervision: str = option(
        "ranks",
        "what the reward net learns from: ranks (T-REX: which snippet of a pair ranks higher) or true_returns (a "
        "diagnostic oracle, not a method: each snippet's true return, regressed by squared error; it reads the "
        "rewards T-REX never sees, to show what the net and demos could learn with the labels' weakness removed)",
        choices=SUPERVISIONS,
    )
    batch_size: int = option(32, "pairs per training step", min=1)
    learning_rate: float = option(1e-4, "Adam learning rate", min=0.0)
    weight_decay: float = option(0.0, "Adam weight decay", min=0.0)
    l1_reg: float = option(
        0.001,
        "L1 penalty on per-frame rewards, summed per pair (anchors the reward's offset, "
        "which equal-length snippets leave free; the 2020 study's 0.001)",
        min=0.0,
    )
    epochs: int = option(5, "passes over the training pairs (at most)", min=1)
    eval_interval: int = option(1000, "training pairs between validation checks (the unit of patience)", min=1)
    patience: int = option(3, "validation checks without a better validation accuracy before stopping", min=1)
    amp: bool = option(False, "bf16/fp16 autocast on GPU")
    eval_pairs: int = option(
        1000, "equal-length snippet pairs per evaluation level set, for the snippet accuracy figure", min=0
    )

    # --- step 3: sweep over the number of demonstrations and the number of levels they come from
    sweep_num_demos: list[int] = option([12, 25, 50, 100], "numbers of training demos in the sweep", min=2)
    sweep_demo_levels: list[int] = option(
        [],
        "other demo_num_levels values to sweep: the demos step fills one "
        "folder of training demos per value, <demo_dir>/levels_<N>",
        min=0,
    )
    sweep_seeds: int = option(3, "seeds per sweep point", min=1)

    # --- common
    name: str = option("", "a label for this configuration, written into sweep rows (e.g. study2020)")
    seed: int = option(0, "random seed", min=0)
    run_dir: str = option("runs/reward_model", "folder for the reward model, metrics, logs and plots", path="folder")

    def check(self) -> None:
        super().check()
        if self.min_snippet_length > self.max_snippet_length:
            raise UserError(
                "config key 'min_snippet_length': must not exceed max_snippet_length "
                f"({self.min_snippet_length} > {self.max_snippet_length})"
            )
        if self.augment_consistency > 0 and not self.augment:
            raise UserError("config key 'augment_consistency': needs at least one augmentation in 'augment'")
        if self.dynamics_demo_dir and self.inverse_dynamics == 0:
            raise UserError(
                "config key 'dynamics_demo_dir': its frames feed the inverse-dynamics loss: set inverse_dynamics"
            )
        if self.frame_stack > 1 and self.inverse_dynamics > 0:
            raise UserError("config key 'frame_stack': inverse_dynamics reads single frames: turn one off")
        if self.frame_stack > 1 and {"colour", "conv"} & set(self.augment):
            raise UserError(
                "config key 'frame_stack': colour and conv augmentations mix channels, so stacked frames: use shift"
            )
        for n in (self.demo_num_levels, *self.sweep_demo_levels):
            demo_levels(self, n)  # refuses a layout whose training demos would meet the held-out levels
        if self.val_num_levels:
            val_levels(self)


def held_out(cfg: TrexConfig) -> LevelSet:
    """The held-out levels: from held_out_start_level, or right after the demonstrators' training levels."""
    if cfg.held_out_start_level is None:
        if cfg.train_num_levels == 0:
            raise UserError(
                "config key 'held_out_start_level': the demonstrators trained on every level "
                "(train_num_levels 0), so name where the held-out levels start"
            )
        return held_out_levels(LevelSet(cfg.train_start_level, cfg.train_num_levels), cfg.held_out_num_levels)
    return LevelSet(cfg.held_out_start_level, cfg.held_out_num_levels)


def demo_levels(cfg: TrexConfig, n: int | None = None) -> LevelSet:
    """The levels training demos are drawn from with `n` distinct levels (default cfg.demo_num_levels); refused
    in one line where they would overlap the held-out levels or leave Procgen's 32-bit level range."""
    n = cfg.demo_num_levels if n is None else n
    test = held_out(cfg)
    if n is None:
        if cfg.train_num_levels == 0:
            raise UserError(
                "config key 'demo_num_levels': the demonstrators trained on every level "
                "(train_num_levels 0), so name how many levels the training demos come from (0 = fresh)"
            )
        n = cfg.train_num_levels
    fresh = LevelSet(test.start_level + test.num_levels, FRESH_LEVELS)
    levels = fresh if n == 0 else LevelSet(cfg.train_start_level, n)
    if levels.start_level + levels.num_levels > MAX_LEVEL or test.start_level + test.num_levels > MAX_LEVEL:
        raise UserError(
            f"levels beyond Procgen's range (up to {MAX_LEVEL:,}): lower held_out_start_level or held_out_num_levels"
        )
    if levels.overlaps(test):
        raise UserError(
            f"config key 'demo_num_levels': training demos on levels {levels} would meet the held-out "
            f"levels {test}; set held_out_start_level beyond them"
        )
    return levels


def val_levels(cfg: TrexConfig) -> LevelSet:
    """The validation set's own levels: from val_start_level, or right after the fresh levels that follow the
    held-out ones; refused where they would meet any training demos' levels or the held-out levels."""
    test = held_out(cfg)
    start = cfg.val_start_level
    if start is None:
        start = test.start_level + test.num_levels + FRESH_LEVELS
    levels = LevelSet(start, cfg.val_num_levels)
    if start + cfg.val_num_levels > MAX_LEVEL:
        raise UserError(f"validation levels beyond Procgen's range (up to {MAX_LEVEL:,}): set val_start_level lower")
    for n in (cfg.demo_num_levels, *cfg.sweep_demo_levels):
        for other, name in ((demo_levels(cfg, n), "training demos' levels"), (test, "held-out levels")):
            if levels.overlaps(other):
                raise UserError(
                    f"config key 'val_start_level': validation levels {levels} would meet the {name} {other}"
                )
    return levels
