"""Evaluate a saved policy: N complete episodes on unseen levels (by default), with a 95% CI of the return.

python test_policy.py --load_path runs/ppo/checkpoints/step_0025000000.pt --out eval.json
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from baseline_agent.checkpoint import load_policy
from baseline_agent.envs import GAMES, MODES, LevelSet
from baseline_agent.evaluation import default_levels, procgen_options, run_episodes, summarize_returns
from baseline_agent.scores import normalized_score
from toolkit.cli import UserError, run_main
from toolkit.config import config_dict, option, parse_config
from toolkit.files import exclusive_file, write_json
from toolkit.runtime import RuntimeConfig
from trex.policy.learned_reward import load_learned_reward


@dataclass
class EvalConfig(RuntimeConfig):
    """Which checkpoint, which levels, how many episodes."""

    load_path: str = option(
        "",
        "checkpoint file to evaluate (step_XXXXXXXXXX.pt), or a checkpoints folder: its newest",
        path="file_or_folder",
    )
    env_name: str = option("", "Procgen game (empty = the checkpoint's own)", choices=("", *GAMES))
    distribution_mode: str = option("", "distribution mode (empty = the checkpoint's own)", choices=("", *MODES))
    start_level: int | None = option(
        None,
        "first level seed (none = the levels right after the checkpoint's training levels, unseen in training)",
        min=0,
    )
    num_levels: int = option(100_000, "number of levels from start_level (0 = the whole distribution)", min=0)
    num_episodes: int = option(100, "complete episodes to run", min=1)
    num_envs: int = option(32, "parallel environments", min=1)
    greedy: bool = option(False, "take the most likely action instead of sampling")
    seed: int = option(0, "random seed (envs and action sampling)", min=0)
    reward_model: str = option("", "reward_model.pt whose learned return is reported beside the true one", path="file")
    out: str = option("", "JSON file for every episode and the summary (empty = print only)", path="new_file")


def _line(name: str, s: dict) -> str:
    ci = "n/a" if s["ci95_low"] is None else f"[{s['ci95_low']:.3f}, {s['ci95_high']:.3f}]"
    return (
        f"{name:<15} mean {s['mean']:.3f}  median {s['median']:.3f}  std {s['std']:.3f}  95% CI {ci}  "
        f"min {s['min']:.3f}  max {s['max']:.3f}"
    )


def main(argv: list[str]) -> None:
    cfg = parse_config(EvalConfig, argv, "test_policy.py", __doc__.splitlines()[0])
    if not cfg.load_path:
        raise UserError("config key 'load_path': name the checkpoint to evaluate")
    with exclusive_file(cfg.out) if cfg.out else contextlib.nullcontext():
        evaluate(cfg)


def evaluate(cfg: EvalConfig) -> None:
    """Run the episodes, print the summary, and write every episode to cfg.out if set."""
    device = cfg.setup()
    policy, meta = load_policy(cfg.load_path, device)
    spec, run_cfg = meta["model_spec"], meta["config"]
    env_name = cfg.env_name or spec["env_name"]
    mode = cfg.distribution_mode or spec["distribution_mode"]
    levels: LevelSet = default_levels(run_cfg, cfg.start_level, cfg.num_levels)
    reward_fn = load_learned_reward(cfg.reward_model, env_name, mode, device) if cfg.reward_model else None

    episodes = run_episodes(
        policy,
        env_name,
        mode,
        levels,
        cfg.num_episodes,
        cfg.num_envs,
        cfg.seed,
        cfg.greedy,
        device,
        reward_fn,
        **procgen_options(run_cfg),
    )
    returns = [ep["ret"] for ep in episodes]
    summary: dict[str, Any] = {
        "return": summarize_returns(returns),
        "length": summarize_returns([ep["length"] for ep in episodes]),
    }
    summary["normalized_score"] = normalized_score(env_name, mode, float(summary["return"]["mean"]))
    if reward_fn is not None:
        learned = [ep["learned_ret"] for ep in episodes]
        summary["learned_return"] = summarize_returns(learned)
        both_vary = np.std(learned) > 0 and np.std(returns) > 0
        summary["learned_true_correlation"] = float(np.corrcoef(learned, returns)[0, 1]) if both_vary else None

    end = "all" if levels.num_levels == 0 else levels.start_level + levels.num_levels
    print(
        f"{meta['path']}: step {meta['step']}, {env_name} {mode}, levels [{levels.start_level}, {end}), "
        f"{len(episodes)} episodes, {'greedy' if cfg.greedy else 'sampled'} actions, seed {cfg.seed}"
    )
    print(_line("return", summary["return"]))
    score = summary["normalized_score"]
    print(f"{'normalised':<15} {'n/a (no published range)' if score is None else f'{score:.3f}'}")
    print(_line("length", summary["length"]))
    if reward_fn is not None:
        print(_line("learned return", summary["learned_return"]))
        corr = summary["learned_true_correlation"]
        print(f"{'corr(learned, true)':<15} {'n/a' if corr is None else f'{corr:.3f}'}")
    if cfg.out:
        write_json(
            cfg.out,
            {
                "checkpoint": meta["path"],
                "step": meta["step"],
                "env_name": env_name,
                "distribution_mode": mode,
                "levels": {"start_level": levels.start_level, "num_levels": levels.num_levels},
                "config": config_dict(cfg),
                "summary": summary,
                "episodes": episodes,
            },
        )
        print(f"wrote {cfg.out}")


if __name__ == "__main__":
    run_main(main)
