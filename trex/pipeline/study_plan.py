"""A study's plan and its run: the step configs from one StudyConfig, the steps in order (each the very command a
user would type), the evaluation of every policy on both level sets, then `report.md` (`study_report.py`).
The command is `trex/study.py`."""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import yaml

from baseline_agent.checkpoint import list_checkpoints, load_policy
from baseline_agent.envs import LevelSet
from baseline_agent.evaluation import procgen_options, run_episodes, summarize_returns
from baseline_agent.ppo_config import train_levels
from baseline_agent.scores import normalized_score
from toolkit.cli import UserError
from toolkit.config import config_dict, load_yaml, save_run_config
from toolkit.files import write_json, write_text
from toolkit.tracking import start_tracking, tracking_keys
from trex.config import TrexConfig, held_out
from trex.pipeline.steps import (
    Step,
    build_section,
    config_step,
    control_configs,
    one_frame_reward,
    policy_config,
    ppo_config,
    run_step,
)
from trex.pipeline.study_layout import StepConfigs, StudyConfig, config_files, lever_dirs, reward_dirs
from trex.pipeline.study_report import reward_figures, write_report
from trex.results import StudyEvaluation, read_metrics, write_evaluation


def step_configs(cfg: StudyConfig) -> StepConfigs:
    """Each step's validated config; a bad key names its section. Every held-out figure, PPO's curves included,
    is on the trex keys' held-out levels."""
    run = Path(cfg.run_dir)
    shared = {
        "env_name": cfg.env_name,
        "distribution_mode": cfg.distribution_mode,
        "seed": cfg.seed,
        "device": cfg.device,
        "torch_threads": cfg.torch_threads,
        **tracking_keys(cfg, group=Path(cfg.run_dir).name),
    }
    trex_values = {
        **(load_yaml(cfg.trex_config) if cfg.trex_config else {}),
        **shared,
        "train_start_level": cfg.start_level,
        "train_num_levels": cfg.num_levels,
        **cfg.trex,
        "checkpoint_dir": str(run / "ppo" / "checkpoints"),
        "demo_dir": str(run / "demos"),
        "run_dir": str(reward_dirs(cfg)[0]),
    }
    trex = build_section(TrexConfig, trex_values, "section 'trex'")
    one_frame_reward(trex, "section 'trex'")
    ppo = ppo_config(shared, cfg.start_level, cfg.num_levels, cfg.ppo, trex, str(run / "ppo"))
    models = reward_dirs(cfg)[: 1 if cfg.policy_reward_models == "first" else None]
    policy = policy_config(ppo, cfg.policy, trex, [str(d / "reward_model.pt") for d in models], str(run / "policy"))
    survival = true_reward = None
    if cfg.controls:
        survival, true_reward = control_configs(
            policy, str(run / "controls" / "survival"), str(run / "controls" / "true_reward")
        )
    lever = None
    if cfg.lever:
        lever = build_section(
            TrexConfig, {**config_dict(trex), **cfg.lever, "run_dir": str(lever_dirs(cfg)[0])}, "section 'lever'"
        )
        from trex.demos.generate import tasks

        if tasks(lever) != tasks(trex):
            raise UserError("section 'lever': its keys would change the demonstrations; give step-3 keys only")
    return StepConfigs(ppo, trex, policy, lever, survival, true_reward)


def plan(cfg: StudyConfig, c: StepConfigs) -> list[Step]:
    """The steps with their exact commands, each after the ones whose outputs it reads; each knows whether its
    outputs exist. Pure: writes nothing."""
    run, files = Path(cfg.run_dir), config_files(cfg)
    ppo = config_step("1. demonstrators (PPO on the true reward)", "ppo", c.ppo, files["ppo"])
    demos = config_step("2. ranked demonstrations", "demos", c.trex, files["trex"], [ppo.name])
    steps = [ppo, demos]
    models = [("trex", "", c.trex, folder) for folder in reward_dirs(cfg)]
    if c.lever is not None:
        models += [("lever", " with the lever", c.lever, folder) for folder in lever_dirs(cfg)]
    for k, (section, label, trex, folder) in enumerate(models):
        seed = cfg.seed + k % cfg.reward_seeds
        step = config_step(
            f"3. reward model{label}, seed {seed}",
            "reward",
            dataclasses.replace(trex, seed=seed, run_dir=str(folder)),
            files[section],
            [demos.name],
        )
        step.command += ["--seed", str(seed), "--run_dir", str(folder)]
        steps.append(step)
    reward_steps = [s.name for s in steps[2:]]
    if cfg.sweep:
        sweep_dir = run / "reward" / "sweep"
        command = ["python", "trex/reward_model.py", "sweep", "-c", str(files["trex"]), "--run_dir", str(sweep_dir)]
        steps.append(
            Step(
                "3. sweep: correlation by number of demos and levels",
                "sweep",
                command,
                needs=[demos.name],
                output=sweep_dir / "sweep.csv",
            )
        )
    policy = config_step("4. policy on the learned reward", "policy", c.policy, files["policy"], reward_steps)
    steps.append(policy)
    if c.survival is not None and c.true_reward is not None:
        steps += [
            config_step("4. control: PPO on survival alone (+1 per step)", "policy", c.survival, files["survival"]),
            config_step("4. control: PPO on the true reward, same budget", "ppo", c.true_reward, files["true_reward"]),
        ]
    video_levels = held_out(c.trex)  # named, so that a policy trained on every level can be filmed too
    video = [
        "python",
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
    ]
    steps.append(Step("5. video of the policy", "video", video, needs=[policy.name], output=run / "policy.mp4"))
    return steps


def evaluation_levels(c: StepConfigs) -> dict[str, LevelSet]:
    """The final evaluation's level sets: the policy's training levels, and the held-out levels of every held-out
    figure (the demos' held-out levels, which PPO's held-out curves use too: `pipeline.held_out_keys`)."""
    return {"training_levels": train_levels(c.policy), "held_out": held_out(c.trex)}


def evaluate(cfg: StudyConfig, c: StepConfigs) -> StudyEvaluation:
    """True returns and episode lengths (mean, 95% interval) of the T-REX policy, the final demonstrator, a random
    policy and the controls, on the policy's training levels and the held-out levels."""
    torch.manual_seed(cfg.seed)
    levels = evaluation_levels(c)
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
    return cast(StudyEvaluation, out)


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
    write_evaluation(run / "evaluation.json", results)
    write_json(timings_path, timings)
    metrics = [read_metrics(d / "metrics.json") for d in reward_dirs(cfg)]
    reward: dict[str, Any] = {"figures": reward_figures(metrics), "metrics": metrics}
    if cfg.lever:
        lever = [read_metrics(d / "metrics.json") for d in lever_dirs(cfg)]
        reward["lever"] = {"keys": cfg.lever, "figures": reward_figures(lever), "metrics": lever}
    write_json(run / "reward.json", reward)
    report = write_report(cfg, configs, steps, results, reward, timings)
    with start_tracking(cfg, run, config_dict(cfg), "study", resumable=False) as tracker:
        tracker.log_report(report)
    print(f"\nstudy done in {time.time() - t_start:.0f}s of steps run now -> {report}", flush=True)
    return report
