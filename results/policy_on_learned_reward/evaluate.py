"""Evaluate every finished policy of results/policy_on_learned_reward and a random one, then write the table, the
CSV and the figures. Each run's evaluation is kept in its folder (evaluation.json), so a rerun evaluates only what
is new.

    python results/policy_on_learned_reward/evaluate.py runs/pol results/policy_on_learned_reward

A run folder is <condition>_s<seed> (condition: true, survival, a reward transform, or strong400 / strong3200: raw,
on the reward models of results/reward_recipe's recipe strong_400 / strong_3200). A condition whose runs are gone
keeps its rows. Per policy and level set: 200 complete episodes (the policy samples its actions, as in training),
true return and episode length with 95% intervals. Per condition: the mean over seeds of those means, with a
Student-t interval over seeds; and each condition less the raw learned reward, paired by PPO seed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

from baseline_agent.checkpoint import load_policy
from baseline_agent.envs import LevelSet
from baseline_agent.evaluation import procgen_options, run_episodes, summarize_returns
from toolkit.figures import figure_row, save_figure
from toolkit.files import read_csv, write_csv, write_json, write_text
from toolkit.logger import fmt_interval, read_progress
from trex.reward.evaluation import seed_interval

EPISODES = 200
LEVEL_SETS = {"training levels (0-31)": LevelSet(0, 32), "held-out levels (1,000,000+)": LevelSet(1_000_000, 100_000)}
ORDER = ("random", "survival", "none", "sigmoid", "standardise", "strong400", "strong3200", "true")
LABELS = {
    "random": "random actions",
    "survival": "control: survival (+1 per step)",
    "none": "learned reward, raw",
    "sigmoid": "learned reward, sigmoid",
    "standardise": "learned reward, standardised",
    "strong400": "learned reward, raw: recipe strong_400",
    "strong3200": "learned reward, raw: recipe strong_3200",
    "true": "control: true reward",
}
RANDOM_SEEDS = (0, 1, 2)


def evaluate_run(folder: Path | None, seed: int) -> dict:
    """Returns and lengths of EPISODES episodes on each level set; folder None: uniform random actions."""
    torch.manual_seed(seed)
    net, config = None, {"env_name": "starpilot", "distribution_mode": "easy"}
    if folder is not None:
        net, meta = load_policy(folder / "checkpoints")
        config = meta["config"]
    out = {}
    for name, levels in LEVEL_SETS.items():
        eps = run_episodes(
            net,
            config["env_name"],
            config["distribution_mode"],
            levels,
            EPISODES,
            50,
            seed + 7,
            num_threads=1,
            **procgen_options(config),
        )
        out[name] = {"returns": [e["ret"] for e in eps], "lengths": [e["length"] for e in eps]}
    return out


def evaluations(runs: Path) -> dict[tuple[str, int], dict]:
    """(condition, seed) -> evaluation, of every finished run and of the random policy (cached on disk)."""
    found: dict[tuple[str, int], dict] = {}
    targets: list[tuple[str, int, Path | None, Path]] = [
        ("random", s, None, runs / f"random_s{s}" / "evaluation.json") for s in RANDOM_SEEDS
    ]
    for folder in sorted(runs.iterdir()):
        match = re.fullmatch(r"(\w+?)_s(\d+)", folder.name)
        if match and match[1] != "random" and (folder / "summary.json").is_file():
            targets.append((match[1], int(match[2]), folder, folder / "evaluation.json"))
    for condition, seed, folder, path in targets:
        if not path.is_file():
            print(f"evaluating {condition} seed {seed} ...", flush=True)
            write_json(path, evaluate_run(folder, seed))
        found[condition, seed] = json.loads(path.read_text())
    return found


def rows_of(found: dict[tuple[str, int], dict]) -> list[dict]:
    rows = []
    for (condition, seed), ev in sorted(found.items(), key=lambda kv: (ORDER.index(kv[0][0]), kv[0][1])):
        for level_set, block in ev.items():
            ret, length = summarize_returns(block["returns"]), summarize_returns(block["lengths"])
            rows.append(
                {
                    "condition": condition,
                    "seed": seed,
                    "level_set": level_set,
                    "episodes": ret["n"],
                    "return_mean": ret["mean"],
                    "return_ci95_low": ret["ci95_low"],
                    "return_ci95_high": ret["ci95_high"],
                    "length_mean": length["mean"],
                    "length_ci95_low": length["ci95_low"],
                    "length_ci95_high": length["ci95_high"],
                }
            )
    return rows


def table(rows: list[dict]) -> tuple[str, dict]:
    """The markdown table (per condition: mean over seeds with its interval) and the summary it shows."""
    summary: dict = {}
    for r in rows:
        summary.setdefault(r["condition"], {}).setdefault(r["level_set"], []).append(r)
    lines = [
        "| policy | seeds | " + " | ".join(f"return, {ls} | length, {ls}" for ls in LEVEL_SETS) + " |",
        "|---|---|" + "---|---|" * len(LEVEL_SETS),
    ]
    stats: dict = {}
    for condition in [c for c in ORDER if c in summary]:
        cells, n = [], 0
        for ls in LEVEL_SETS:
            rs = summary[condition].get(ls, [])
            n = len(rs)
            ret = seed_interval([r["return_mean"] for r in rs])
            length = seed_interval([r["length_mean"] for r in rs])
            stats.setdefault(condition, {})[ls] = {"return": ret, "length": length}
            cells += [fmt_interval(ret), fmt_interval(length)]
        lines.append(f"| {LABELS[condition]} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "Gain over random as a share of the true-reward policy's gain over random (mean over seeds):", ""]
    lines += ["| policy | " + " | ".join(LEVEL_SETS) + " |", "|---|" + "---|" * len(LEVEL_SETS)]
    for condition in [c for c in ORDER if c in stats and c not in ("random", "true")]:
        shares = []
        for ls in LEVEL_SETS:
            base, top = stats["random"][ls]["return"]["mean"], stats.get("true", {}).get(ls, {}).get("return", {})
            mine = stats[condition][ls]["return"]["mean"]
            ok = top and top.get("mean") is not None and top["mean"] != base
            shares.append(f"{(mine - base) / (top['mean'] - base):.0%}" if ok else "-")
        lines.append(f"| {LABELS[condition]} | " + " | ".join(shares) + " |")
    lines += paired_lines(summary)
    return "\n".join(lines) + "\n", stats


def paired_lines(summary: dict) -> list[str]:
    """Each condition less the raw learned reward (`none`), paired by PPO seed (the runs differ in their reward
    only): the seeds' differences and their mean with a Student-t interval over the seeds. The per-condition
    intervals above hold the seeds' spread of each condition alone; this one the spread of their differences."""
    if "none" not in summary:
        return []
    lines = ["", f"Paired by PPO seed, return less that of '{LABELS['none']}' (the same seed):", ""]
    lines += ["| policy | " + " | ".join(f"{ls}: per seed | mean [95%]" for ls in LEVEL_SETS) + " |"]
    lines += ["|---|" + "---|---|" * len(LEVEL_SETS)]
    base = {ls: {r["seed"]: r["return_mean"] for r in summary["none"].get(ls, [])} for ls in LEVEL_SETS}
    for condition in [c for c in ORDER if c in summary and c not in ("random", "none")]:
        cells = []
        for ls in LEVEL_SETS:
            mine = {r["seed"]: r["return_mean"] for r in summary[condition].get(ls, [])}
            diffs = [mine[s] - base[ls][s] for s in sorted(set(base[ls]) & set(mine))]
            cells += [", ".join(f"{d:+.2f}" for d in diffs), fmt_interval(seed_interval(diffs))]
        lines.append(f"| {LABELS[condition]} | " + " | ".join(cells) + " |")
    return lines


def curves(runs: Path, path: Path) -> None:
    """True return on the training stream and on the run's held-out curve against steps, mean over seeds."""
    plt, fig, axes = figure_row(2, width=6)
    for i, condition in enumerate(c for c in ORDER if c != "random"):
        folders = sorted(runs.glob(f"{condition}_s*"))
        for ax, column in zip(axes, ("eprewmean", "eval_eprewmean"), strict=True):
            series = []
            for folder in folders:
                rows = read_progress(folder / "progress.csv") if (folder / "progress.csv").is_file() else []
                pts = {int(float(r["misc/total_timesteps"])): float(r[column]) for r in rows if r.get(column)}
                series.append(pts)
            steps = sorted(set.intersection(*(set(s) for s in series))) if series else []
            if steps:
                mean = [np.mean([s[t] for s in series]) for t in steps]
                ax.plot(steps, mean, color=f"C{i}", label=f"{LABELS[condition]} ({len(series)} seeds)")
    for ax, title in zip(axes, ("training levels (0-31)", "held-out levels (32+, the runs' own curve)"), strict=True):
        ax.set_xlabel("environment steps")
        ax.set_ylabel("true return (mean of the last 100 episodes)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(plt, fig, path)


def main(runs: Path, out: Path) -> None:
    """Evaluates what runs/ holds; a condition with no run there keeps its rows of out/results.csv (its runs may be
    gone), and the curves, which need every run's progress, are then left as they were."""
    found = evaluations(runs)
    rows = rows_of(found)
    measured = {condition for condition, _ in found}
    earlier = read_csv(out / "results.csv")[0] if (out / "results.csv").is_file() else []
    kept = [r for r in earlier if r["condition"] not in measured]
    rows = sorted(kept + rows, key=lambda r: (ORDER.index(r["condition"]), r["seed"]))
    write_csv(out / "results.csv", rows, tuple(rows[0]))
    text, stats = table(rows)
    write_text(out / "table.md", text)
    write_json(out / "summary.json", stats)
    if kept:
        print(f"kept the rows of {sorted({r['condition'] for r in kept})} from {out / 'results.csv'}; curves unchanged")
    else:
        curves(runs, out / "curves.png")
    print(text)
    print(f"-> {out / 'table.md'}, {out / 'results.csv'}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
