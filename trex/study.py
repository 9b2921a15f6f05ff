"""The whole study in one command: the four T-REX steps, the evaluation, a video and `report.md`.

    python -m trex.study -c configs/quickstart.yaml          # `make demo`: a small built-in default
    python -m trex.study -c configs/study/coinrun.yaml        # the reference protocol, for a GPU machine

Each step runs as the very command a user would type (printed, and listed in the report), from a config
file written into `<run_dir>/configs/`. A step whose outputs exist is skipped; an interrupted step resumes
(PPO from its newest checkpoint, demonstrations from the index). The report shows what was measured.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from baseline_agent.checkpoint import list_checkpoints, load_policy
from baseline_agent.envs import GAMES, MODES
from baseline_agent.evaluation import procgen_options, run_episodes, summarize_returns
from baseline_agent.ppo import PPOConfig, eval_levels, train_levels
from baseline_agent.scores import normalized_score
from toolkit.cli import UserError, run_main
from toolkit.config import build_config, config_dict, option, parse_config, save_run_config
from toolkit.files import exclusive, write_json, write_text
from toolkit.runtime import RuntimeConfig
from trex.config import TrexConfig
from trex.demo_store import read_index
from trex.train_policy import PolicyConfig

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class StudyConfig(RuntimeConfig):
    """One game's study. `ppo`, `trex` and `policy` hold the keys of each step's own config; the
    shared keys here (game, levels, seed, device) are passed to every step."""

    env_name: str = option("coinrun", "Procgen game", choices=GAMES)
    distribution_mode: str = option("easy", "Procgen distribution mode", choices=MODES)
    num_levels: int = option(200, "training levels of every step (held-out levels come right after)", min=1)
    start_level: int = option(0, "first training level", min=0)
    seed: int = option(0, "random seed of every step", min=0)
    run_dir: str = option("runs/study", "folder of the study: one sub-folder per step, report.md")
    ppo: dict = option({}, "step 1 keys (baseline_agent/train.py --help), e.g. {total_timesteps: 200000}")
    trex: dict = option({}, "steps 2-3 keys (trex/reward_model.py train --help)")
    policy: dict = option({}, "step 4 keys (trex/train_policy.py --help); PPO keys default to step 1's")
    eval_episodes: int = option(100, "episodes per evaluation (policy, demonstrators, random) and level set", min=1)
    video_steps: int = option(500, "length cap of the video's episode", min=1)


@dataclass
class Step:
    name: str
    command: list[str]
    done: bool


def _shared(cfg: StudyConfig) -> dict:
    return {"env_name": cfg.env_name, "distribution_mode": cfg.distribution_mode, "seed": cfg.seed,
            "device": cfg.device}


def step_configs(cfg: StudyConfig) -> tuple[PPOConfig, TrexConfig, PolicyConfig]:
    """Each step's validated config; a bad key names its section."""
    run = Path(cfg.run_dir)
    threads = {"torch_threads": cfg.torch_threads}
    sections = {
        "ppo": (PPOConfig, {**_shared(cfg), "num_levels": cfg.num_levels, "start_level": cfg.start_level,
                            **threads, **cfg.ppo, "run_dir": str(run / "ppo")}),
        "trex": (TrexConfig, {**_shared(cfg), **threads, "train_start_level": cfg.start_level,
                              "train_num_levels": cfg.num_levels, **cfg.trex,
                              "checkpoint_dir": str(run / "ppo" / "checkpoints"), "demo_dir": str(run / "demos"),
                              "run_dir": str(run / "reward")}),
    }
    out = {}
    for name, (cls, values) in sections.items():
        try:
            out[name] = build_config(cls, values)
        except UserError as err:
            raise UserError(f"section '{name}': {err}") from None
    ppo_keys = {k: v for k, v in config_dict(out["ppo"]).items() if k != "run_dir"}
    try:
        policy = build_config(PolicyConfig, {**ppo_keys, **cfg.policy, "run_dir": str(run / "policy"),
                                             "reward_model": str(run / "reward" / "reward_model.pt")})
    except UserError as err:
        raise UserError(f"section 'policy': {err}") from None
    return out["ppo"], out["trex"], policy


def _write_yaml(path: Path, cfg) -> Path:
    write_text(path, yaml.safe_dump(config_dict(cfg), sort_keys=False))
    return path


def _finished(summary_path: Path, total: int) -> bool:
    if not summary_path.is_file():
        return False
    return json.loads(summary_path.read_text()).get("total_timesteps", 0) >= total


def plan(cfg: StudyConfig) -> list[Step]:
    """The steps with their exact commands, each marked done when its outputs exist."""
    run = Path(cfg.run_dir)
    ppo, trex, policy = step_configs(cfg)
    cdir = run / "configs"
    ppo_yaml, trex_yaml, policy_yaml = (_write_yaml(cdir / "ppo.yaml", ppo), _write_yaml(cdir / "trex.yaml", trex),
                                        _write_yaml(cdir / "policy.yaml", policy))
    py = "python"
    records = read_index(trex.demo_dir) if Path(trex.demo_dir, "index.csv").is_file() else []
    n_train = sum(r.level_set == "train" for r in records)
    n_test = len(records) - n_train
    ckpts = list_checkpoints(Path(policy.run_dir) / "checkpoints")
    return [
        Step("1. demonstrators (PPO on the true reward)", [py, "baseline_agent/train.py", "-c", str(ppo_yaml)],
             _finished(Path(ppo.run_dir) / "summary.json", ppo.total_timesteps)),
        Step("2. ranked demonstrations", [py, "trex/reward_model.py", "demos", "-c", str(trex_yaml)],
             n_train >= trex.num_demos and n_test >= trex.num_test_demos),
        Step("3. reward model", [py, "trex/reward_model.py", "train", "-c", str(trex_yaml)],
             (Path(trex.run_dir) / "metrics.json").is_file()),
        Step("4. policy on the learned reward", [py, "trex/train_policy.py", "-c", str(policy_yaml)],
             _finished(Path(policy.run_dir) / "summary.json", policy.total_timesteps)),
        Step("5. video of the policy", [py, "rec_video.py", "--load_path", str(ckpts[-1]) if ckpts else
                                        str(Path(policy.run_dir) / "checkpoints" / "<newest>.pt"),
                                        "--reward_model", policy.reward_model, "--out", str(run / "policy.mp4"),
                                        "--max_steps", str(cfg.video_steps), "--seed", str(cfg.seed),
                                        "--torch_threads", str(cfg.torch_threads)],
             (run / "policy.mp4").is_file()),
    ]


def run_step(step: Step) -> float:
    """Run one step's command from the repository root, streaming its output; its wall time in seconds."""
    print(f"\n=== {step.name}\n$ {shlex.join(step.command)}", flush=True)
    start = time.time()
    proc = subprocess.run([sys.executable, *step.command[1:]], cwd=ROOT)
    if proc.returncode != 0:
        raise UserError(f"step '{step.name}' failed (exit {proc.returncode}); rerun `make demo` or the study to "
                        f"resume it, or run it alone: {shlex.join(step.command)}")
    return time.time() - start


def evaluate(cfg: StudyConfig, ppo: PPOConfig, policy: PolicyConfig) -> dict:
    """True returns of the T-REX policy, the final demonstrator and a random policy, on both level sets."""
    torch.manual_seed(cfg.seed)
    levels = {"train_levels": train_levels(ppo), "test_levels": eval_levels(ppo)}
    agents = {
        "trex_policy": list_checkpoints(Path(policy.run_dir) / "checkpoints")[-1],
        "demonstrator": list_checkpoints(Path(ppo.run_dir) / "checkpoints")[-1],
        "random": None,
    }
    out: dict = {"levels": {k: [v.start_level, v.num_levels] for k, v in levels.items()}}
    for name, path in agents.items():
        net, meta = load_policy(path) if path is not None else (None, {"config": config_dict(ppo)})
        out[name] = {"checkpoint": str(path) if path else None}
        for set_name, level_set in levels.items():
            eps = run_episodes(net, cfg.env_name, cfg.distribution_mode, level_set, cfg.eval_episodes,
                               min(cfg.eval_episodes, 64), cfg.seed + 7, **procgen_options(meta["config"]))
            stats = summarize_returns([e["ret"] for e in eps])
            stats["normalized_score"] = normalized_score(cfg.env_name, cfg.distribution_mode, stats["mean"])
            stats["mean_length"] = float(np.mean([e["length"] for e in eps]))
            out[name][set_name] = stats
    return out


def main(argv: list[str]) -> Path:
    cfg = parse_config(StudyConfig, argv, prog="python -m trex.study", description=__doc__.splitlines()[0])
    cfg.setup()
    with exclusive(cfg.run_dir):
        return run_study(cfg)


def run_study(cfg: StudyConfig) -> Path:
    run = Path(cfg.run_dir)
    ppo, trex, policy = step_configs(cfg)
    save_run_config(run, config_dict(cfg))
    timings_path = run / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    t_start = time.time()
    for i in range(len(plan(cfg))):
        step = plan(cfg)[i]  # planned afresh: a step's command names what the steps before it wrote
        if step.done:
            print(f"\n=== {step.name}: outputs exist, skipped ({shlex.join(step.command)})", flush=True)
            continue
        timings[step.name] = run_step(step)
        write_json(timings_path, timings)
    steps = plan(cfg)  # the commands with the final checkpoint named
    eval_path = run / "evaluation.json"
    print("\n=== evaluation on training and held-out levels", flush=True)
    t0 = time.time()
    results = evaluate(cfg, ppo, policy)
    timings["6. evaluation"] = time.time() - t0
    write_json(eval_path, results)
    write_json(timings_path, timings)
    from trex.report import write_report

    report = write_report(cfg, ppo, trex, policy, steps, results, timings)
    print(f"\nstudy done in {time.time() - t_start:.0f}s (this session) -> {report}", flush=True)
    return report


if __name__ == "__main__":
    run_main(main)
