"""Step 1's config and what other modules need of PPO without its trainer: the training and held-out levels,
the env a config describes, and whether a run has finished."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from baseline_agent.envs import (
    GAMES,
    MODES,
    NUM_ACTIONS,
    OBS_SHAPE,
    PROCGEN_OPTIONS,
    LevelSet,
    VecEnv,
    held_out_levels,
    make_procgen,
)
from toolkit.cli import UserError
from toolkit.config import option
from toolkit.runtime import RuntimeConfig
from toolkit.tracking import TRACKING_KEYS, TrackingConfig


@dataclass
class PPOConfig(RuntimeConfig, TrackingConfig):
    """Step 1: PPO on Procgen. Defaults are the Procgen paper's protocol (easy, 200 levels, 25M steps)."""

    env_name: str = option("coinrun", "Procgen game", choices=GAMES)
    distribution_mode: str = option("easy", "Procgen distribution mode", choices=MODES)
    num_levels: int = option(200, "number of training levels (0 = the whole level distribution)", min=0)
    start_level: int = option(0, "first training level seed", min=0)
    held_out_start_level: int | None = option(
        None, "first held-out level of the evaluation curve (none = right after the training levels)", min=0
    )
    held_out_num_levels: int = option(100_000, "number of held-out levels of the evaluation curve", min=0)
    use_backgrounds: bool = option(True, "Procgen: draw backgrounds")
    restrict_themes: bool = option(False, "Procgen: one theme per game")
    use_monochrome_assets: bool = option(False, "Procgen: monochrome rectangles instead of sprites")
    paint_vel_info: bool = option(False, "Procgen: paint the agent's velocity in the frame")
    center_agent: bool = option(True, "Procgen: centre the view on the agent")
    use_sequential_levels: bool = option(False, "Procgen: go to the next level instead of ending the episode")
    num_threads: int = option(0, "Procgen worker threads per process (0 = this process's share of the cores)", min=0)
    num_envs: int = option(64, "parallel environments per process", min=1)
    env_groups: int = option(
        1,
        "split the envs into groups stepped in turn: with 2, one half steps on procgen's "
        "threads while the other half's actions are inferred (same PPO; each group has its "
        "own env seed)",
        min=1,
    )
    num_steps: int = option(256, "steps per environment per update", min=1)
    num_minibatches: int = option(8, "minibatches per epoch", min=1)
    update_epochs: int = option(3, "epochs over each batch", min=1)
    update_chunk_size: int = option(
        -1,
        "samples per forward/backward pass within a minibatch, the same gradient "
        "in cache-sized pieces (0 = one pass; -1 = auto: 64 on CPU, 256 with bf16, "
        "one pass on GPU)",
        min=-1,
    )
    learning_rate: float = option(5e-4, "Adam learning rate (constant)", min=0.0)
    gamma: float = option(0.999, "discount of PPO's returns and advantages", min=0.0, max=1.0)
    gae_lambda: float = option(0.95, "GAE lambda", min=0.0, max=1.0)
    ent_coef: float = option(0.01, "entropy bonus coefficient", min=0.0)
    clip_range: float = option(0.2, "PPO clip range, for the policy ratio and the value", min=0.0)
    vf_coef: float = option(0.5, "value loss coefficient", min=0.0)
    max_grad_norm: float = option(0.5, "global gradient-norm clip", min=0.0)
    normalize_reward: bool = option(True, "divide rewards by the running std of the discounted return")
    reward_norm_gamma: float = option(
        0.99,
        "discount of the return whose running std scales rewards: 0.99 as the "
        "reference's VecNormalize(ob=False) default; set it to gamma to scale by the "
        "return PPO optimises",
        min=0.0,
        max=1.0,
    )
    channels: list[int] = option([16, 32, 32], "IMPALA CNN channels per stage", min=1)
    hidden_size: int = option(256, "IMPALA CNN dense layer width", min=1)
    total_timesteps: int = option(25_000_000, "environment steps to train for (all processes together)", min=1)
    save_interval: int = option(50, "updates between checkpoints (one is always saved at the end)", min=1)
    eval_interval: int = option(1, "updates between held-out evaluations (0 = never)", min=0)
    log_interval: int = option(1, "updates between progress lines", min=1)
    seed: int = option(0, "random seed (envs, network, sampling)", min=0)
    compile: bool = option(
        False,
        "torch.compile the rollout's forward pass (CUDA graphs on a GPU: mode reduce-overhead); the update stays eager",
    )
    precision: str = option(
        "fp32",
        "policy arithmetic: fp32, or bf16 (autocast for the policy's CNN trunk; its "
        "heads, losses, gradients, Adam and a learned reward stay float32)",
        choices=("fp32", "bf16"),
    )
    run_dir: str = option("runs/ppo", "folder for config, checkpoints, logs and summary", path="folder")

    def check(self) -> None:
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise UserError(
                f"config key 'num_minibatches': {self.num_minibatches} does not divide the batch "
                f"num_envs * num_steps = {self.num_envs * self.num_steps}"
            )
        if self.env_groups > self.num_envs:
            raise UserError(
                f"config key 'env_groups': {self.env_groups} groups need at least as many envs "
                f"(num_envs = {self.num_envs})"
            )
        super().check()


# update_chunk_size=-1 on CPU: chunks whose activations stay in cache beat one pass over a 2,048-sample minibatch;
# benchmarks/ppo_throughput.py times each chunk size (figures in docs/speed.md). A GPU wants the whole minibatch.
CPU_CHUNK_SIZE = {"fp32": 64, "bf16": 256}

# Env group g's seed is offset by g times this: far beyond the rank (10,000) and held-out (5,000) offsets.
GROUP_SEED_STRIDE = 1_000_003

# Keys that may change when a run is resumed: they change speed, not the algorithm (bf16 changes rounding only).
RESUMABLE_KEYS = (
    "total_timesteps",
    "device",
    "log_interval",
    "torch_threads",
    "num_threads",
    "update_chunk_size",
    "env_groups",
    "precision",
    "compile",
    *TRACKING_KEYS,
)


def env_threads() -> int:
    """Procgen threads for num_threads=0: the cores this process may use, shared with the other ranks on the
    node (torchrun's LOCAL_WORLD_SIZE); env stepping and the network take turns, so they need not split them."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def make_env(cfg: PPOConfig, levels: LevelSet, seed: int, num_envs: int, render: bool = False):
    """The Procgen env a PPOConfig describes, on the given level set."""
    return make_procgen(
        cfg.env_name,
        num_envs,
        levels,
        seed,
        cfg.distribution_mode,
        render=render,
        num_threads=cfg.num_threads or env_threads(),
        **{k: getattr(cfg, k) for k in PROCGEN_OPTIONS},
    )


def train_levels(cfg: PPOConfig) -> LevelSet:
    """The training levels."""
    return LevelSet(cfg.start_level, cfg.num_levels)


def eval_levels(cfg: PPOConfig) -> LevelSet:
    """The held-out levels of the evaluation curve: from held_out_start_level, else right after the training levels;
    with num_levels=0 and no held_out_start_level there are none, so the full distribution."""
    if cfg.held_out_start_level is not None:
        return LevelSet(cfg.held_out_start_level, cfg.held_out_num_levels)
    if cfg.num_levels == 0:
        return LevelSet(0, 0)
    return held_out_levels(train_levels(cfg), cfg.held_out_num_levels)


def run_is_finished(cfg: PPOConfig) -> bool:
    """Whether cfg.run_dir holds a run that reached cfg.total_timesteps (its summary.json says so)."""
    path = Path(cfg.run_dir) / "summary.json"
    return path.is_file() and json.loads(path.read_text()).get("total_timesteps", 0) >= cfg.total_timesteps


def make_env_groups(cfg: PPOConfig, slices: list[slice], levels: LevelSet, seed: int) -> list[VecEnv]:
    """One procgen env per env group (`slices` of the run's envs); group g is seeded `seed + GROUP_SEED_STRIDE * g`."""
    return [
        VecEnv(make_env(cfg, levels, seed + GROUP_SEED_STRIDE * g, sl.stop - sl.start)) for g, sl in enumerate(slices)
    ]


def model_spec(cfg: PPOConfig) -> dict:
    """What a checkpoint records to rebuild its policy network (baseline_agent/checkpoint.py: load_policy)."""
    return {
        "env_name": cfg.env_name,
        "distribution_mode": cfg.distribution_mode,
        "num_actions": NUM_ACTIONS,
        "channels": list(cfg.channels),
        "hidden_size": cfg.hidden_size,
        "obs_shape": list(OBS_SHAPE),
    }
