"""The study's config and its run folder's layout: what `trex/study.py` writes and `study_report.py` reads.

<run_dir>/configs/<step>.yaml   each step's config (ppo, trex, policy, lever, survival, true_reward)
<run_dir>/ppo/                  step 1: the demonstrators
<run_dir>/demos/                step 2: ranked demonstrations
<run_dir>/reward/seed_<k>/      step 3: one reward model per seed (reward/lever/seed_<k>/: the lever's)
<run_dir>/policy/               step 4: the policy on the learned reward (controls/survival, controls/true_reward)
<run_dir>/policy.mp4, evaluation.json, reward.json, timings.json, report.md
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from baseline_agent.envs import GAMES, MODES
from baseline_agent.ppo_config import PPOConfig
from toolkit.config import option
from toolkit.runtime import RuntimeConfig
from toolkit.tracking import TrackingConfig
from trex.config import TrexConfig
from trex.policy.config import PolicyConfig


@dataclass
class StudyConfig(RuntimeConfig, TrackingConfig):
    """One game's study. `ppo`, `trex` and `policy` hold the keys of each step's own config; the
    shared keys here (game, levels, seed, device, threads) are passed to every step."""

    env_name: str = option("coinrun", "Procgen game", choices=GAMES)
    distribution_mode: str = option("easy", "Procgen distribution mode", choices=MODES)
    num_levels: int = option(
        200,
        "the demonstrators' and the policy's training levels (0 = every level; then set "
        "trex: {held_out_start_level, demo_num_levels})",
        min=0,
    )
    start_level: int = option(0, "first training level", min=0)
    seed: int = option(0, "random seed of every step", min=0)
    run_dir: str = option("runs/study", "folder of the study: one sub-folder per step, report.md", path="folder")
    ppo: dict = option({}, "step 1 keys (baseline_agent/train.py --help), e.g. {total_timesteps: 200000}")
    trex_config: str = option(
        "",
        "YAML file of steps 2-3 keys to start from (e.g. configs/trex/study2020.yaml, the "
        "2020 study's settings); the keys above and the trex mapping override it",
        path="file",
    )
    trex: dict = option({}, "steps 2-3 keys (trex/reward_model.py train --help)")
    policy: dict = option({}, "step 4 keys (trex/train_policy.py --help); PPO keys default to step 1's")
    lever: dict = option(
        {},
        "steps-3 keys of a second set of reward models trained on the same demos with the same seeds and "
        "reported beside the first, e.g. {augment: [shift]} (empty = none)",
    )
    reward_seeds: int = option(
        3,
        "reward models trained on the same demo folder, seeds seed, seed+1, ...: the report "
        "gives each figure's mean and 95% interval over them; the policy learns from the first",
        min=1,
    )
    policy_reward_models: str = option(
        "first",
        "the reward models the policy learns from: first (the first seed's) or all (every seed's, their "
        "transformed rewards averaged)",
        choices=("first", "all"),
    )
    controls: bool = option(
        True,
        "also train the two controls a learned-reward policy must beat, with the policy's budget, network and "
        "levels: PPO on survival alone (+1 per step) and PPO on the true reward",
    )
    sweep: bool = option(False, "also run step 3's sweep (correlation by number of demos and of levels)")
    eval_episodes: int = option(100, "episodes per evaluation (policy, demonstrators, random) and level set", min=1)
    video_steps: int = option(500, "length cap of the video's episode", min=1)


@dataclass
class StepConfigs:
    ppo: PPOConfig
    trex: TrexConfig
    policy: PolicyConfig
    lever: TrexConfig | None = None  # the second set of reward models (StudyConfig.lever), if any
    survival: PolicyConfig | None = None  # the controls (StudyConfig.controls): +1 per step,
    true_reward: PPOConfig | None = None  # and the true reward, at the policy's budget


def reward_dirs(cfg: StudyConfig) -> list[Path]:
    """One folder per reward-model seed; the first one's model trains the policy."""
    return [Path(cfg.run_dir) / "reward" / f"seed_{cfg.seed + k}" for k in range(cfg.reward_seeds)]


def lever_dirs(cfg: StudyConfig) -> list[Path]:
    """One folder per seed of the reward models trained with the lever's keys."""
    return [Path(cfg.run_dir) / "reward" / "lever" / f"seed_{cfg.seed + k}" for k in range(cfg.reward_seeds)]


def config_files(cfg: StudyConfig) -> dict[str, Path]:
    cdir = Path(cfg.run_dir) / "configs"
    names = ("ppo", "trex", "policy", *(("lever",) if cfg.lever else ()))
    names += ("survival", "true_reward") if cfg.controls else ()
    return {name: cdir / f"{name}.yaml" for name in names}
