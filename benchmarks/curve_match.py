"""Learning curves of the plain PPO path and of the speed options, same config and seeds, side by side.

    python benchmarks/curve_match.py --out_dir runs/curve_match                      # small CPU check, minutes
    python benchmarks/curve_match.py --ppo_config configs/ppo/coinrun.yaml --total_timesteps 2000000 \\
        --seeds 0,1,2 --changes '{precision: bf16, env_groups: 2, compile: true}' --out_dir runs/curve_match_gpu

Each seed trains twice: the plain path (precision fp32, env_groups 1, compile false, update_chunk_size 0) and the
same config with `changes`. The speed options may only change speed: their curve must stay within the noise of
the plain one. Writes curves.png and curve_match.json: every run's training and held-out returns per update,
and per variant the mean return over the early and late windows, with the gap between the variants beside the
standard error of that gap across seeds (|gap| <= 2 standard errors is "within noise").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from baseline_agent.ppo import PPOConfig, PPOTrainer
from toolkit.cli import UserError, run_main
from toolkit.config import build_config, load_yaml, option, parse_config
from toolkit.figures import figure_row, save_figure
from toolkit.files import write_json
from toolkit.logger import STEP_KEY, read_progress

PLAIN = {"precision": "fp32", "env_groups": 1, "compile": False, "update_chunk_size": 0}

# The CPU default: test_ppo_learns' single coinrun level, where a small net learns within 16k steps.
SMALL = {
    "env_name": "coinrun",
    "start_level": 3,
    "num_levels": 1,
    "num_envs": 16,
    "num_steps": 64,
    "num_minibatches": 4,
    "update_epochs": 3,
    "channels": [8, 16, 16],
    "hidden_size": 64,
    "learning_rate": 1e-3,
    "gamma": 0.99,
    "total_timesteps": 16384,
    "eval_interval": 0,
    "save_interval": 100,
    "log_interval": 1000,
    "num_threads": 1,
}


@dataclass
class CurveConfig:
    ppo_config: str = option("", "PPO config YAML to train with ('' = a small single-level coinrun run for a CPU)")
    total_timesteps: int = option(0, "steps per run (0 = the PPO config's)", min=0)
    ppo_overrides: dict = option({}, "PPO keys set for both variants, over the PPO config (e.g. {eval_interval: 4})")
    seeds: list[int] = option([0, 1, 2], "seeds; each trains both variants", min=0)
    changes: dict = option(
        {"precision": "bf16", "env_groups": 2, "update_chunk_size": -1},
        "the speed options compared with the plain path",
    )
    early: float = option(0.25, "fraction of the updates, from the start, in the early window", min=0.0, max=1.0)
    late: float = option(0.25, "fraction of the updates, at the end, in the late window", min=0.0, max=1.0)
    device: str = option("auto", "auto (cuda when present), cpu, cuda or cuda:N")
    out_dir: str = option("runs/curve_match", "folder for the runs, curves.png and curve_match.json")


def window_mean(rows: list[dict], key: str, lo: float, hi: float) -> float | None:
    """The mean of `key` over the rows in [lo, hi) of the run, as fractions of its updates."""
    n = len(rows)
    vals = [
        float(r[key])
        for r in rows[int(lo * n) : max(int(hi * n), int(lo * n) + 1)]
        if r.get(key) not in (None, "", "nan")
    ]
    return float(np.mean(vals)) if vals else None


def compare(per_seed: dict[str, list[float | None]]) -> dict:
    """Mean per variant over seeds, the gap between the variants and its standard error across seeds."""
    means = {k: [v for v in vals if v is not None] for k, vals in per_seed.items()}
    (a, va), (b, vb) = means.items()
    out: dict[str, Any] = {f"{k}_mean": (float(np.mean(v)) if v else None) for k, v in means.items()}
    if va and vb:
        out["gap"] = float(np.mean(vb)) - float(np.mean(va))
        se = math.sqrt(
            (np.var(va, ddof=1) / len(va) if len(va) > 1 else 0.0)
            + (np.var(vb, ddof=1) / len(vb) if len(vb) > 1 else 0.0)
        )
        out["gap_standard_error"] = se
        out["within_noise"] = bool(abs(out["gap"]) <= 2 * se) if se > 0 else None
    return out


def plot(runs: dict, path: Path, title: str) -> None:
    plt, fig, (ax,) = figure_row(1, width=7)
    colours = {"plain": "tab:blue", "changed": "tab:orange"}
    for (variant, seed), rows in runs.items():
        pts = [(float(r[STEP_KEY]), float(r["eprewmean"])) for r in rows if r.get("eprewmean") not in ("", None)]
        if pts:
            ax.plot(
                *zip(*pts, strict=True),
                color=colours[variant],
                alpha=0.7,
                label=variant if seed == min(s for _, s in runs) else None,
            )
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean episode return (training levels)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    save_figure(plt, fig, path)


def summarize(cc: CurveConfig, runs: dict, summaries: dict) -> dict:
    """Windows, SPS and curves of the runs done so far (the seeds with both variants finished count)."""
    seeds = [s for s in cc.seeds if ("plain", s) in runs and ("changed", s) in runs]
    result: dict[str, Any] = {
        "config": dataclasses.asdict(cc),
        "plain": PLAIN,
        "changes": cc.changes,
        "seeds_done": seeds,
        "windows": {},
    }
    for window, (lo, hi) in {"early": (0.0, cc.early), "late": (1.0 - cc.late, 1.0)}.items():
        for key in ("eprewmean", "eval_eprewmean"):
            per_seed = {v: [window_mean(runs[v, s], key, lo, hi) for s in seeds] for v in ("plain", "changed")}
            result["windows"][f"{window}_{key}"] = {"per_seed": per_seed, **compare(per_seed)}
    result["sps"] = {v: [summaries[v, s]["sps"] for s in seeds] for v in ("plain", "changed")}
    result["runs"] = {
        f"{v}_seed{s}": [{k: r.get(k) for k in (STEP_KEY, "eprewmean", "eval_eprewmean")} for r in rows]
        for (v, s), rows in runs.items()
    }
    return result


def _cell(value: float | None) -> str:
    """A figure of the windows' table, 8 wide; '-' where a variant has none (no episode ended in the window)."""
    return f"{'-':>8s}" if value is None else f"{value:8.2f}"


def main(argv: list[str]) -> dict:
    cc = parse_config(CurveConfig, argv, prog="benchmarks/curve_match.py", description=__doc__.splitlines()[0])
    if not cc.seeds:
        raise UserError("config key 'seeds': give at least one seed")
    base = load_yaml(cc.ppo_config) if cc.ppo_config else dict(SMALL)
    if cc.total_timesteps:
        base["total_timesteps"] = cc.total_timesteps
    base.update({**cc.ppo_overrides, "device": cc.device})
    for key in ("changes", "ppo_overrides"):
        unknown = sorted(set(getattr(cc, key)) - {f.name for f in dataclasses.fields(PPOConfig)})
        if unknown:
            raise UserError(f"config key '{key}': {unknown[0]!r} is not a PPO config key")
    out = Path(cc.out_dir)
    variants = {"plain": {**base, **PLAIN}, "changed": {**base, **PLAIN, **cc.changes}}
    runs, summaries = {}, {}
    for seed in cc.seeds:
        for variant, values in variants.items():
            cfg = build_config(PPOConfig, {**values, "seed": seed, "run_dir": str(out / f"{variant}_seed{seed}")})
            shown = dict.fromkeys([*PLAIN, *cc.changes])
            print(f"--- {variant}, seed {seed}: " + ", ".join(f"{k} {getattr(cfg, k)}" for k in shown), flush=True)
            summaries[variant, seed] = PPOTrainer(cfg).train()
            runs[variant, seed] = read_progress(Path(cfg.run_dir) / "progress.csv")
            result = summarize(cc, runs, summaries)  # after every run, so that a cut-off check keeps what it has
            write_json(out / "curve_match.json", result)
            plot(runs, out / "curves.png", f"plain vs {cc.changes}, seeds {cc.seeds}")

    print(f"\n{'window':26s} {'plain':>8s} {'changed':>8s} {'gap':>8s} {'2 s.e.':>8s}  within noise")
    for name, w in result["windows"].items():
        if w.get("plain_mean") is None and w.get("changed_mean") is None:
            continue
        se = w.get("gap_standard_error")
        print(
            f"{name:26s} {_cell(w['plain_mean'])} {_cell(w['changed_mean'])} {_cell(w.get('gap'))} "
            f"{_cell(None if se is None else 2 * se)}  {w.get('within_noise')}"
        )
    print("SPS: " + ", ".join(f"{v} {np.mean(x):.0f}" for v, x in result["sps"].items() if x) + f" -> {out}")
    return result


if __name__ == "__main__":
    run_main(main)
