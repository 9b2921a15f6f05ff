"""`report.md` of a study: what each step measured, as measured, with the figures beside it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from baseline_agent.ppo import PPOConfig
from baseline_agent.scores import reference_table
from toolkit.files import write_text
from toolkit.logger import fmt
from trex.config import TrexConfig
from trex.train_policy import PolicyConfig


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _rel(path: Path, run: Path) -> str:
    return str(path.relative_to(run)) if path.is_relative_to(run) else str(path)


def _img(path: Path, run: Path, alt: str) -> str:
    return f"![{alt}]({_rel(path, run)})" if path.is_file() else f"*({alt}: not produced)*"


def _returns_table(results: dict) -> list[str]:
    rows = ["| policy | level set | mean return | 95% CI | normalised score | mean length | episodes |",
            "|---|---|---|---|---|---|---|"]
    names = {"trex_policy": "T-REX policy (learned reward only)", "demonstrator": "final demonstrator (true reward)",
             "random": "uniform random actions"}
    for key, label in names.items():
        for level_set in ("train_levels", "test_levels"):
            s = results[key][level_set]
            ci = f"[{fmt(s.get('ci95_low'))}, {fmt(s.get('ci95_high'))}]"
            rows.append(f"| {label} | {level_set.replace('_', ' ')} | {fmt(s['mean'])} | {ci} | "
                        f"{fmt(s.get('normalized_score'))} | {fmt(s.get('mean_length'), '.0f')} | {s['n']} |")
    return rows


def _correlation_table(metrics: dict) -> list[str]:
    rows = ["| level set | demos | Spearman | Kendall | Pearson | pair accuracy | length baseline Spearman | "
            "length baseline Kendall | length baseline Pearson |", "|---|---|---|---|---|---|---|---|---|"]
    for key in ("train_levels", "test_levels"):
        m = metrics.get(key)
        if not m:
            continue
        b = m["length_baseline"]
        rows.append(f"| {key.replace('_', ' ')} | {m['n_demos']} | {fmt(m['spearman'])} | {fmt(m['kendall'])} | "
                    f"{fmt(m['pearson'])} | {fmt(m['pair_accuracy'])} | {fmt(b['spearman'])} | {fmt(b['kendall'])} | "
                    f"{fmt(b['pearson'])} |")
    return rows


def _demo_ranges(demo_summary: dict) -> list[str]:
    rows = ["| level set | demos | min return | mean | max |", "|---|---|---|---|---|"]
    for name, s in demo_summary.get("level_sets", {}).items():
        if s and s.get("count"):
            rows.append(f"| {name} | {s['count']} | {fmt(s['min'])} | {fmt(s['mean'])} | {fmt(s['max'])} |")
    return rows


def write_report(cfg, ppo: PPOConfig, trex: TrexConfig, policy: PolicyConfig, steps, results: dict,
                 timings: dict) -> Path:
    run = Path(cfg.run_dir)
    ppo_dir, reward_dir, policy_dir = Path(ppo.run_dir), Path(trex.run_dir), Path(policy.run_dir)
    metrics = _load(reward_dir / "metrics.json")
    demos = _load(Path(trex.demo_dir) / "summary.json")
    ref = reference_table().get(cfg.env_name, {})
    test = results["trex_policy"]["test_levels"]
    lines = [
        f"# T-REX on Procgen {cfg.env_name} ({cfg.distribution_mode}): study report",
        "",
        f"Run folder `{run}`; training levels {cfg.start_level}..{cfg.start_level + cfg.num_levels - 1}, held-out "
        f"levels from {cfg.start_level + cfg.num_levels} on (disjoint by construction); seed {cfg.seed}. Every "
        "figure below was measured by this run; nothing is filled in by hand.",
        "",
        "## Headline",
        "",
        f"- Reward model on held-out-level demos: Spearman {fmt(metrics.get('test_levels', {}).get('spearman'))} "
        f"(episode-length baseline {fmt(metrics.get('test_levels', {}).get('length_baseline', {}).get('spearman'))}).",
        f"- Policy trained on the learned reward alone, true return on held-out levels: {fmt(test['mean'])} "
        f"(random policy {fmt(results['random']['test_levels']['mean'])}, demonstrator "
        f"{fmt(results['demonstrator']['test_levels']['mean'])}).",
        "",
        "## 1. Demonstrators (PPO on the true reward)",
        "",
        f"{ppo.total_timesteps:,} environment steps, {ppo.num_envs} envs x {ppo.num_steps} steps per update, IMPALA "
        f"CNN channels {ppo.channels}, {ppo.hidden_size} units. Published PPO at 25M steps (Cobbe et al. 2020, "
        f"easy, 200 levels): {fmt(ref.get('ppo_easy200_train_25m'))} on training levels, "
        f"{fmt(ref.get('ppo_easy200_test_25m'))} on unseen levels.",
        "",
        _img(ppo_dir / "learning_curve.png", run, "demonstrator learning curve"),
        "",
        "Demonstrations (step 2), returns by level set:",
        "",
        *_demo_ranges(demos),
        "",
        "## 2-3. The learned reward",
        "",
        f"Correlation between predicted and true returns of demonstrations the reward model never trained on. "
        f"Label noise of the training pairs (snippet returns disagreeing with the label): "
        f"{fmt(metrics.get('label_noise'))}.",
        "",
        *_correlation_table(metrics),
        "",
        _img(reward_dir / "predicted_vs_true.png", run, "predicted vs true return"),
        _img(reward_dir / "cumulative_reward.png", run, "cumulative predicted vs true reward"),
        _img(reward_dir / "reward_by_time.png", run, "mean predicted reward by time step"),
        "",
        "## 4. Policy on the learned reward, evaluated on the true reward",
        "",
        *_returns_table(results),
        "",
        _img(policy_dir / "learning_curve.png", run, "policy learning curve, learned and true return"),
        "",
        f"Video: [{_rel(run / 'policy.mp4', run)}]({_rel(run / 'policy.mp4', run)})" if (run / "policy.mp4").is_file()
        else "Video: not produced.",
        "",
        "## Commands",
        "",
        "This run, step by step (each skips or resumes from what exists):",
        "",
        "```",
        *[shlex.join(s.command) for s in steps],
        "```",
        "",
        "At full scale (the reference protocol, a GPU recommended): `python -m trex.study -c "
        f"configs/study/{cfg.env_name}.yaml` if that file exists, or per step:",
        "",
        "```",
        f"python baseline_agent/train.py -c configs/ppo/reference.yaml --env_name {cfg.env_name} "
        f"--run_dir runs/ppo_{cfg.env_name}",
        f"python trex/reward_model.py demos -c configs/trex/{cfg.env_name}.yaml",
        f"python trex/reward_model.py train -c configs/trex/{cfg.env_name}.yaml",
        f"python trex/train_policy.py -c configs/ppo/reference.yaml --env_name {cfg.env_name} "
        f"--reward_model runs/reward_{cfg.env_name}/reward_model.pt --run_dir runs/policy_{cfg.env_name}",
        f"python test_policy.py --load_path runs/policy_{cfg.env_name}/checkpoints/<newest>.pt "
        f"--reward_model runs/reward_{cfg.env_name}/reward_model.pt",
        "```",
        "",
        "## Wall time of each step (this machine)",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {name} | {sec:.0f} |" for name, sec in timings.items()],
        "",
    ]
    path = run / "report.md"
    write_text(path, "\n".join(lines))
    return path
