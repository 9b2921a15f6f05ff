"""The whole study in one command: the four T-REX steps, the evaluation, a video and `report.md`.

    python -m trex.study -c configs/quickstart.yaml          # `make demo`: a small built-in default
    python -m trex.study -c configs/study/coinrun.yaml        # the reference protocol, for a GPU machine

Each step runs as the very command a user would type (printed, and listed in the report), from a config
file written into `<run_dir>/configs/`. A step whose outputs exist is skipped; an interrupted step resumes exactly
(PPO from its newest checkpoint and env state, demos from their last finished round, a reward model from the start
with the same seeds), so a study killed at any moment and rerun ends as an uninterrupted one. The report shows what
was measured.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from baseline_agent.checkpoint import list_checkpoints, load_policy
from baseline_agent.envs import GAMES, MODES
from baseline_agent.evaluation import procgen_options, run_episodes, summarize_returns
from baseline_agent.ppo import PPOConfig, train_levels
from baseline_agent.scores import normalized_score
from toolkit.cli import UserError, exit_reason, oom_kills, run_main
from toolkit.config import build_config, config_dict, load_yaml, option, parse_config, save_run_config
from toolkit.files import exclusive, write_json, write_text
from toolkit.runtime import RuntimeConfig
from toolkit.tracking import TrackingConfig, start_tracking, tracking_keys
from trex.config import TrexConfig, held_out
from trex.demo_store import read_index
from trex.train_policy import PolicyConfig

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class StudyConfig(RuntimeConfig, TrackingConfig):
    """One game's study. `ppo`, `trex` and `policy` hold the keys of each step's own config; the
    shared keys here (game, levels, seed, device, threads) are passed to every step."""

    env_name: str = option("coinrun", "Procgen game", choices=GAMES)
    distribution_mode: str = option("easy", "Procgen distribution mode", choices=MODES)
    num_levels: int = option(
        200,
        "the demonstrators' and the policy's training levels (0 = every level; then set "
        "trex: {test_start_level, demo_num_levels})",
        min=0,
    )
    start_level: int = option(0, "first training level", min=0)
    seed: int = option(0, "random seed of every step", min=0)
    run_dir: str = option("runs/study", "folder of the study: one sub-folder per step, report.md")
    ppo: dict = option({}, "step 1 keys (baseline_agent/train.py --help), e.g. {total_timesteps: 200000}")
    trex_config: str = option(
        "",
        "YAML file of steps 2-3 keys to start from (e.g. configs/trex/study2020.yaml, the "
        "2020 study's settings); the keys above and the trex mapping override it",
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


@dataclass
class Step:
    name: str
    command: list[str]
    done: Callable[[], bool]  # whether its outputs exist, asked when the step is due


def reward_dirs(cfg: StudyConfig) -> list[Path]:
    """One folder per reward-model seed; the first one's model trains the policy."""
    return [Path(cfg.run_dir) / "reward" / f"seed_{cfg.seed + k}" for k in range(cfg.reward_seeds)]


def lever_dirs(cfg: StudyConfig) -> list[Path]:
    """One folder per seed of the reward models trained with the lever's keys."""
    return [Path(cfg.run_dir) / "reward" / "lever" / f"seed_{cfg.seed + k}" for k in range(cfg.reward_seeds)]


def step_configs(cfg: StudyConfig) -> StepConfigs:
    """Each step's validated config; a bad key names its section."""
    run = Path(cfg.run_dir)
    shared = {
        "env_name": cfg.env_name,
        "distribution_mode": cfg.distribution_mode,
        "seed": cfg.seed,
        "device": cfg.device,
        "torch_threads": cfg.torch_threads,
        **tracking_keys(cfg, group=Path(cfg.run_dir).name),
    }
    sections = {
        "ppo": (
            PPOConfig,
            {
                **shared,
                "num_levels": cfg.num_levels,
                "start_level": cfg.start_level,
                **cfg.ppo,
                "run_dir": str(run / "ppo"),
            },
        ),
        "trex": (
            TrexConfig,
            {
                **(load_yaml(cfg.trex_config) if cfg.trex_config else {}),
                **shared,
                "train_start_level": cfg.start_level,
                "train_num_levels": cfg.num_levels,
                **cfg.trex,
                "checkpoint_dir": str(run / "ppo" / "checkpoints"),
                "demo_dir": str(run / "demos"),
                "run_dir": str(reward_dirs(cfg)[0]),
            },
        ),
    }
    out: dict[str, Any] = {}
    for name, (cls, values) in sections.items():
        try:
            out[name] = build_config(cls, values)
        except UserError as err:
            raise UserError(f"section '{name}': {err}") from None
    ppo_keys = {k: v for k, v in config_dict(out["ppo"]).items() if k != "run_dir"}
    models = reward_dirs(cfg)[: 1 if cfg.policy_reward_models == "first" else None]
    try:
        policy = build_config(
            PolicyConfig,
            {
                **ppo_keys,
                **cfg.policy,
                "run_dir": str(run / "policy"),
                "reward_model": [str(d / "reward_model.pt") for d in models],
            },
        )
    except UserError as err:
        raise UserError(f"section 'policy': {err}") from None
    survival = true_reward = None
    if cfg.controls:
        policy_keys = config_dict(policy)
        survival = build_config(
            PolicyConfig, {**policy_keys, "reward": "survival", "run_dir": str(run / "controls" / "survival")}
        )
        ppo_fields = set(config_dict(out["ppo"]))
        true_reward = build_config(
            PPOConfig,
            {
                **{k: v for k, v in policy_keys.items() if k in ppo_fields},
                "run_dir": str(run / "controls" / "true_reward"),
            },
        )
    lever = None
    if cfg.lever:
        try:
            lever = build_config(
                TrexConfig, {**config_dict(out["trex"]), **cfg.lever, "run_dir": str(lever_dirs(cfg)[0])}
            )
        except UserError as err:
            raise UserError(f"section 'lever': {err}") from None
        from trex.demos import tasks

        if tasks(lever) != tasks(out["trex"]):
            raise UserError("section 'lever': its keys would change the demonstrations; give step-3 keys only")
    return StepConfigs(out["ppo"], out["trex"], policy, lever, survival, true_reward)


def config_files(cfg: StudyConfig) -> dict[str, Path]:
    cdir = Path(cfg.run_dir) / "configs"
    names = ("ppo", "trex", "policy", *(("lever",) if cfg.lever else ()))
    names += ("survival", "true_reward") if cfg.controls else ()
    return {name: cdir / f"{name}.yaml" for name in names}


def _finished(summary_path: Path, total: int) -> bool:
    if not summary_path.is_file():
        return False
    return json.loads(summary_path.read_text()).get("total_timesteps", 0) >= total


def _demos_done(trex: TrexConfig) -> bool:
    from trex.demos import tasks

    todo = tasks(trex)
    counts = {folder: Counter(r.level_set for r in read_index(folder)) for folder in {t.folder for t in todo}}
    return all(counts[t.folder][t.level_set] >= t.count for t in todo)


def plan(cfg: StudyConfig, c: StepConfigs) -> list[Step]:
    """The steps with their exact commands; each knows whether its outputs exist. Pure: writes nothing."""
    run, files, py = Path(cfg.run_dir), {k: str(v) for k, v in config_files(cfg).items()}, "python"
    steps = [
        Step(
            "1. demonstrators (PPO on the true reward)",
            [py, "baseline_agent/train.py", "-c", files["ppo"]],
            lambda: _finished(Path(c.ppo.run_dir) / "summary.json", c.ppo.total_timesteps),
        ),
        Step(
            "2. ranked demonstrations",
            [py, "trex/reward_model.py", "demos", "-c", files["trex"]],
            lambda: _demos_done(c.trex),
        ),
    ]
    models = [("trex", "", folder) for folder in reward_dirs(cfg)]
    models += [("lever", " with the lever", folder) for folder in (lever_dirs(cfg) if cfg.lever else [])]
    for k, (section, label, folder) in enumerate(models):
        seed = cfg.seed + k % cfg.reward_seeds
        steps.append(
            Step(
                f"3. reward model{label}, seed {seed}",
                [
                    py,
                    "trex/reward_model.py",
                    "train",
                    "-c",
                    files[section],
                    "--seed",
                    str(seed),
                    "--run_dir",
                    str(folder),
                ],
                (folder / "metrics.json").is_file,
            )
        )
    if cfg.sweep:
        sweep_dir = run / "reward" / "sweep"
        steps.append(
            Step(
                "3. sweep: correlation by number of demos and levels",
                [py, "trex/reward_model.py", "sweep", "-c", files["trex"], "--run_dir", str(sweep_dir)],
                lambda: (sweep_dir / "sweep.csv").is_file(),
            )
        )
    video_levels = held_out(c.trex)  # named, so that a policy trained on every level can be filmed too
    steps += [
        Step(
            "4. policy on the learned reward",
            [py, "trex/train_policy.py", "-c", files["policy"]],
            lambda: _finished(Path(c.policy.run_dir) / "summary.json", c.policy.total_timesteps),
        ),
    ]
    if c.survival is not None and c.true_reward is not None:
        survival, true_reward = c.survival, c.true_reward
        steps += [
            Step(
                "4. control: PPO on survival alone (+1 per step)",
                [py, "trex/train_policy.py", "-c", files["survival"]],
                lambda: _finished(Path(survival.run_dir) / "summary.json", survival.total_timesteps),
            ),
            Step(
                "4. control: PPO on the true reward, same budget",
                [py, "baseline_agent/train.py", "-c", files["true_reward"]],
                lambda: _finished(Path(true_reward.run_dir) / "summary.json", true_reward.total_timesteps),
            ),
        ]
    steps += [
        Step(
            "5. video of the policy",
            [
                py,
                "rec_video.py",
                "--load_path",
                str(Path(c.policy.run_dir) / "checkpoints"),
                "--reward_model",
                c.policy.reward_model[0],
                "--out",
                str(run / "policy.mp4"),
                "--max_steps",
                str(cfg.video_steps),
                "--seed",
                str(cfg.seed),
                "--start_level",
                str(video_levels.start_level),
                "--num_levels",
                str(video_levels.num_levels),
                "--torch_threads",
                str(cfg.torch_threads),
            ],
            lambda: (run / "policy.mp4").is_file(),
        ),
    ]
    return steps


def run_step(step: Step) -> float:
    """Run one step's command from the repository root, streaming its output; its wall time in seconds."""
    print(f"\n=== {step.name}\n$ {shlex.join(step.command)}", flush=True)
    start, kills = time.time(), oom_kills()
    proc = subprocess.run([sys.executable, *step.command[1:]], cwd=ROOT)
    if proc.returncode != 0:
        raise UserError(
            f"step '{step.name}' failed ({exit_reason(proc.returncode, kills)}); rerun `make demo` or the study to "
            f"resume it, or run it alone: {shlex.join(step.command)}"
        )
    return time.time() - start


def evaluate(cfg: StudyConfig, c: StepConfigs) -> dict:
    """True returns and episode lengths (mean, 95% interval) of the T-REX policy, the final demonstrator, a random
    policy and the controls, on the policy's training levels and the held-out levels."""
    torch.manual_seed(cfg.seed)
    levels = {"train_levels": train_levels(c.policy), "test_levels": held_out(c.trex)}
    agents: dict[str, Path | None] = {
        "trex_policy": list_checkpoints(Path(c.policy.run_dir) / "checkpoints")[-1],
        "demonstrator": list_checkpoints(Path(c.ppo.run_dir) / "checkpoints")[-1],
        "random": None,
    }
    for name, control in (("survival_control", c.survival), ("true_reward_ppo", c.true_reward)):
        if control is not None:
            agents[name] = list_checkpoints(Path(control.run_dir) / "checkpoints")[-1]
    out: dict = {"levels": {k: [v.start_level, v.num_levels] for k, v in levels.items()}}
    for name, path in agents.items():
        net, meta = load_policy(path) if path is not None else (None, {"config": config_dict(c.ppo)})
        out[name] = {"checkpoint": str(path) if path else None}
        for set_name, level_set in levels.items():
            eps = run_episodes(
                net,
                cfg.env_name,
                cfg.distribution_mode,
                level_set,
                cfg.eval_episodes,
                min(cfg.eval_episodes, 64),
                cfg.seed + 7,
                **procgen_options(meta["config"]),
            )
            stats = summarize_returns([e["ret"] for e in eps])
            stats["normalized_score"] = normalized_score(cfg.env_name, cfg.distribution_mode, stats["mean"])
            stats["mean_length"] = float(np.mean([e["length"] for e in eps]))
            stats["length"] = summarize_returns([e["length"] for e in eps])
            out[name][set_name] = stats
    return out


def main(argv: list[str]) -> Path:
    cfg = parse_config(StudyConfig, argv, prog="python -m trex.study", description=__doc__.splitlines()[0])
    cfg.setup()
    with exclusive(cfg.run_dir):
        return run_study(cfg)


def run_study(cfg: StudyConfig) -> Path:
    run = Path(cfg.run_dir)
    configs = step_configs(cfg)
    save_run_config(run, config_dict(cfg))
    for name, path in config_files(cfg).items():
        write_text(path, yaml.safe_dump(config_dict(getattr(configs, name)), sort_keys=False))
    timings_path = run / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    t_start = time.time()
    steps = plan(cfg, configs)
    for step in steps:
        if step.done():
            print(f"\n=== {step.name}: outputs exist, skipped ({shlex.join(step.command)})", flush=True)
            continue
        timings[step.name] = run_step(step)
        write_json(timings_path, timings)
    print("\n=== evaluation on training and held-out levels", flush=True)
    t0 = time.time()
    results = evaluate(cfg, configs)
    timings["6. evaluation"] = time.time() - t0
    write_json(run / "evaluation.json", results)
    write_json(timings_path, timings)
    from trex.report import reward_figures, write_report

    metrics = [json.loads((d / "metrics.json").read_text()) for d in reward_dirs(cfg)]
    reward: dict[str, Any] = {"figures": reward_figures(metrics), "metrics": metrics}
    if cfg.lever:
        lever = [json.loads((d / "metrics.json").read_text()) for d in lever_dirs(cfg)]
        reward["lever"] = {"keys": cfg.lever, "figures": reward_figures(lever), "metrics": lever}
    write_json(run / "reward.json", reward)
    report = write_report(cfg, configs, steps, results, reward, timings)
    with start_tracking(cfg, run, config_dict(cfg), "study", resumable=False) as tracker:
        tracker.log_report(report)
    print(f"\nstudy done in {time.time() - t_start:.0f}s of steps run now -> {report}", flush=True)
    return report


if __name__ == "__main__":
    run_main(main)
