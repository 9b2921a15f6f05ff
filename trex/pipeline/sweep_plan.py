"""A sweep's grid: its config (`SweepConfig`) and its expansion into the step commands of steps 1-4, each with its
own run folder (`expand`); `launchers.py` runs them, `sweep_report.py` collects them. The command is
`trex/sweep.py`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from baseline_agent.envs import GAMES, MODES
from baseline_agent.ppo_config import PPOConfig
from toolkit.cli import UserError
from toolkit.config import config_dict, load_yaml, option, save_run_config
from toolkit.runtime import RuntimeConfig
from toolkit.tracking import TrackingConfig, tracking_keys
from trex.config import TrexConfig
from trex.pipeline.steps import (
    STAGES,
    Step,
    build_section,
    config_step,
    control_configs,
    one_frame_reward,
    policy_config,
    ppo_config,
    write_step_configs,
)

# TrexConfig keys that say which demos exist: a reward job takes them from its demos job, whatever its preset says.
DEMO_KEYS = (
    "env_name",
    "distribution_mode",
    "train_start_level",
    "train_num_levels",
    "demo_num_levels",
    "held_out_start_level",
    "held_out_num_levels",
    "checkpoint_dir",
    "checkpoints",
    "num_held_out_demos",
    "checkpoint_sampling",
    "noise_levels",
    "greedy",
    "max_episode_steps",
    "num_envs",
    "demo_dir",
)
SECTIONS = ("ppo", "trex", "policy")  # the step sections a game's `per_game` entry may add keys to
SLURM_KEYS = ("partition", "timeout_min", "gpus_per_node", "cpus_per_task", "mem_gb", "max_requeues")
MAX_REQUEUES = 3  # requeues of a job cut off by its time limit or a preemption, before it counts as failed


@dataclass
class SweepConfig(RuntimeConfig, TrackingConfig):
    """A grid of T-REX runs. `ppo`, `trex` and `policy` hold each step's own keys for every run of the grid."""

    name: str = option("sweep", "the sweep's name, in its report and Slurm job names")
    run_dir: str = option(
        "runs/sweep", "folder of the sweep: configs/, logs/, one folder per job and stage", path="folder"
    )
    games: list[str] = option(["starpilot"], "Procgen games", choices=GAMES)
    distribution_mode: str = option("easy", "Procgen distribution mode", choices=MODES)
    num_levels: int = option(200, "the demonstrators' training levels (0 = every level)", min=0)
    start_level: int = option(0, "first training level", min=0)
    demonstrator_seeds: list[int] = option([0], "seeds of step 1, one demonstrator run each", min=0)
    demonstrators: dict = option(
        {},
        "shipped demonstrators, game: folder as a result ships it (checkpoints/, summary.json); a game named here "
        "has no step-1 job and its demos read those checkpoints",
    )
    demo_levels: list[int] = option(
        [],
        "numbers of distinct levels the training demos come from (0 = a fresh level "
        "per demo); empty = the trex keys' own",
        min=0,
    )
    presets: dict = option({"default": ""}, "reward presets, name: YAML file of step-3 keys ('' = the defaults)")
    num_demos: list[int] = option([12, 25, 50, 100], "numbers of training demos", min=2)
    seeds: list[int] = option([0, 1, 2], "seeds of steps 3 and 4 (reward models and policies)", min=0)
    steps: list[str] = option(
        ["ppo", "demos", "reward"],
        "stages to run (policy: a PPO run on each reward model; control: PPO on the true reward and on survival "
        "at the policy's budget, per game, demonstrator seed and seed)",
        choices=STAGES,
    )
    ppo: dict = option({}, "step 1 keys for every demonstrator (baseline_agent/train.py --help)")
    trex: dict = option({}, "step 2-3 keys for every demo folder and reward model (trex/reward_model.py train --help)")
    policy: dict = option(
        {}, "step 4 keys for every policy (trex/train_policy.py --help); PPO keys default to step 1's"
    )
    per_game: dict = option(
        {},
        "keys for one game's runs over the sections' own, game: {ppo: {...}, trex: {...}, policy: {...}} (a "
        "budget or a ranking of its own); a preset's keys still win",
    )
    launcher: str = option(
        "local", "where the jobs run: local (this machine) or slurm (through submitit)", choices=("local", "slurm")
    )
    max_parallel: int = option(2, "jobs at once with the local launcher", min=1)
    slurm: dict = option(
        {},
        "Slurm resources: {default: {partition, timeout_min, gpus_per_node, cpus_per_task, "
        "mem_gb, max_requeues (default 3)}, ppo: {...}, demos: {...}, reward: {...}, policy: {...}, "
        "array_parallelism: N}",
    )
    collect: bool = option(False, "gather the finished runs into sweep_results.csv, figures and sweep_report.md")
    eval_episodes: int = option(
        100, "episodes of each final policy, control and random actions on the held-out levels (the report)", min=1
    )

    def check(self) -> None:
        super().check()
        for game, folder in self.demonstrators.items():
            if game not in GAMES or not isinstance(folder, str):
                raise UserError(f"config key 'demonstrators': '{game}' is not a Procgen game naming a folder")
            if not (Path(folder) / "checkpoints").is_dir():
                raise UserError(f"config key 'demonstrators': {folder} has no checkpoints folder ({game})")
        for game, sections in self.per_game.items():
            if game not in GAMES or not isinstance(sections, dict):
                raise UserError(f"config key 'per_game': '{game}' is not a Procgen game naming its sections")
            for name, values in sections.items():
                if name not in SECTIONS or not isinstance(values, dict):
                    raise UserError(
                        f"config key 'per_game': '{name}' of {game} is not one of: {', '.join(SECTIONS)} "
                        "(each a mapping)"
                    )
        if self.demonstrators and len(self.demonstrator_seeds) > 1:
            raise UserError(
                "config key 'demonstrator_seeds': shipped demonstrators are one run per game; give one seed"
            )
        for stage, values in self.slurm.items():
            if stage == "array_parallelism":
                continue
            if stage not in ("default", *STAGES) or not isinstance(values, dict):
                raise UserError(
                    f"config key 'slurm': '{stage}' is not one of: default, {', '.join(STAGES)}, "
                    "array_parallelism (each stage a mapping)"
                )
            unknown = sorted(set(values) - set(SLURM_KEYS))
            if unknown:
                raise UserError(f"config key 'slurm': '{unknown[0]}' is not one of: {', '.join(SLURM_KEYS)}")
            requeues = values.get("max_requeues", 0)
            if not isinstance(requeues, int) or isinstance(requeues, bool) or requeues < 0:
                raise UserError(f"config key 'slurm': max_requeues of '{stage}' must be a whole number >= 0")


# --------------------------------------------------------------------------- the grid
def expand(cfg: SweepConfig) -> list[Step]:
    """Every job of the grid, in stage order; pure (writes nothing)."""
    run = Path(cfg.run_dir)
    presets = {name: load_yaml(path) if path else {} for name, path in cfg.presets.items()}
    jobs: list[Step] = []
    for game in cfg.games:
        shared = {
            "env_name": game,
            "distribution_mode": cfg.distribution_mode,
            "device": cfg.device,
            "torch_threads": cfg.torch_threads,
            **tracking_keys(cfg, group=cfg.name),  # one W&B group per grid
        }
        for dseed in cfg.demonstrator_seeds:
            tag = f"{game}_d{dseed}"
            trex_values = {
                **shared,
                "train_start_level": cfg.start_level,
                "train_num_levels": cfg.num_levels,
                **section(cfg, "trex", game),
                "seed": dseed,
                "num_demos": max(cfg.num_demos),
                "checkpoint_dir": str(demonstrator_dir(cfg, game, tag) / "checkpoints"),
            }
            level_choices: list[int | None] = [*cfg.demo_levels] or [None]
            demo_folders: dict[str, TrexConfig] = {}  # by the folder's tag
            for levels in level_choices:
                ltag = f"{tag}_L{'own' if levels is None else levels}"
                values = {**trex_values, "demo_dir": str(run / "demos" / ltag)}
                if levels is not None:
                    values["demo_num_levels"] = levels
                demo_folders[ltag] = build_section(TrexConfig, values, "section 'trex'")
            ppo_shared = {**shared, "seed": dseed}
            first = next(iter(demo_folders.values()))  # every folder has the same held-out levels
            ppo = ppo_config(
                ppo_shared, cfg.start_level, cfg.num_levels, section(cfg, "ppo", game), first, str(run / "ppo" / tag)
            )
            ppo_job = config_step(
                f"ppo_{tag}",
                "ppo",
                ppo,
                step_config_path(cfg, f"ppo_{tag}"),
                grid={"game": game, "demonstrator_seed": dseed},
            )
            shipped = game in cfg.demonstrators
            if not shipped:
                jobs.append(ppo_job)
            for ltag, demos in demo_folders.items():
                needs = [] if shipped else [ppo_job.name]
                demo_job = config_step(f"demos_{ltag}", "demos", demos, step_config_path(cfg, f"demos_{ltag}"), needs)
                jobs.append(demo_job)
                cell = {"game": game, "demonstrator_seed": dseed, "demo_levels": demo_level_count(demos)}
                jobs += reward_and_policy_jobs(cfg, shared, presets, ppo, demos, demo_job.name, ltag, cell)
            jobs += control_jobs(cfg, ppo, first, tag, {"game": game, "demonstrator_seed": dseed})
    stages = set(cfg.steps)
    kept = [j for j in jobs if j.stage in stages]
    names = {j.name for j in kept}
    for j in kept:  # a stage left out of `steps` is taken as done (its outputs must exist)
        j.needs = [n for n in j.needs if n in names]
    return sorted(kept, key=lambda j: STAGES.index(j.stage))


def section(cfg: SweepConfig, name: str, game: str) -> dict:
    """A step section's keys for `game`'s runs: the section's own, then the game's `per_game` keys over them."""
    return {**getattr(cfg, name), **cfg.per_game.get(game, {}).get(name, {})}


def demonstrator_dir(cfg: SweepConfig, game: str, tag: str) -> Path:
    """The folder of a game's demonstrators: the shipped one the config names, else step 1's run of `tag`."""
    return Path(cfg.demonstrators[game]) if game in cfg.demonstrators else Path(cfg.run_dir) / "ppo" / tag


def step_config_path(cfg: SweepConfig, name: str) -> Path:
    """Where the job `name` reads its config from."""
    return Path(cfg.run_dir) / "configs" / f"{name}.yaml"


def demo_level_count(demos: TrexConfig) -> int:
    """The number of distinct levels a demo folder's training demos come from (0 = a fresh one per demo)."""
    return demos.demo_num_levels if demos.demo_num_levels is not None else demos.train_num_levels


def reward_and_policy_jobs(
    cfg: SweepConfig,
    shared: dict,
    presets: dict[str, dict],
    ppo: PPOConfig,
    demos: TrexConfig,
    demo_job: str,
    ltag: str,
    cell: dict,
) -> list[Step]:
    """The reward model of every preset, number of demos and seed on one demo folder, each with its policy."""
    run = Path(cfg.run_dir)
    jobs = []
    for preset, preset_values in presets.items():
        for n in cfg.num_demos:
            for seed in cfg.seeds:
                rtag = f"{ltag}_{preset}_n{n}_s{seed}"
                values = {
                    **shared,
                    **section(cfg, "trex", cell["game"]),
                    **preset_values,
                    **{k: getattr(demos, k) for k in DEMO_KEYS},
                    "num_demos": n,
                    "seed": seed,
                    "name": preset,
                    "run_dir": str(run / "reward" / rtag),
                }
                reward = build_section(TrexConfig, values, f"preset '{preset}'")
                if "policy" in cfg.steps:
                    one_frame_reward(reward, f"preset '{preset}'")
                grid = {**cell, "preset": preset, "num_demos": n, "seed": seed}
                path = step_config_path(cfg, f"reward_{rtag}")
                jobs.append(config_step(f"reward_{rtag}", "reward", reward, path, [demo_job], grid))
                models = [str(Path(reward.run_dir) / "reward_model.pt")]
                policy = policy_config(
                    ppo, section(cfg, "policy", cell["game"]), demos, models, str(run / "policy" / rtag), seed=seed
                )
                path = step_config_path(cfg, f"policy_{rtag}")
                jobs.append(config_step(f"policy_{rtag}", "policy", policy, path, [f"reward_{rtag}"], grid))
    return jobs


def control_jobs(cfg: SweepConfig, ppo: PPOConfig, demos: TrexConfig, tag: str, cell: dict) -> list[Step]:
    """The controls of one demonstrator's policies, one pair per seed: PPO on the true reward and on survival alone
    (+1 per step), at the policy section's budget, network and levels (steps.control_configs)."""
    run, jobs = Path(cfg.run_dir), []
    for seed in cfg.seeds:
        names = {kind: f"{kind}_{tag}_s{seed}" for kind in ("survival", "true_reward")}
        folders = {kind: str(run / "controls" / name) for kind, name in names.items()}
        keys = section(cfg, "policy", cell["game"])
        base = policy_config(ppo, keys, demos, [], folders["survival"], seed=seed, reward="survival")
        survival, true_reward = control_configs(base, folders["survival"], folders["true_reward"])
        for kind, config, script in (("survival", survival, "policy"), ("true_reward", true_reward, "ppo")):
            path = step_config_path(cfg, f"control_{names[kind]}")
            grid = {**cell, "seed": seed, "control": kind}
            jobs.append(config_step(f"control_{names[kind]}", "control", config, path, grid=grid, script=script))
    return jobs


def write_configs(cfg: SweepConfig, jobs: list[Step]) -> None:
    save_run_config(cfg.run_dir, config_dict(cfg))
    write_step_configs(jobs)
