"""Step 3's own sweep: correlations by number of training demos and by number of levels they come from, over
seeds (the 2020 study's figure and its level-diversity axis), from one demo folder and its `levels_N` folders.

    python trex/reward_model.py sweep -c configs/trex/coinrun.yaml   # sweep.csv, sweep.json, sweep.png

Each point is `trex/reward/fit.py`'s run of one reward model in `<run_dir>/sweep/L<levels>_n<demos>_s<seed>`;
finished ones are kept, so a rerun resumes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from toolkit.cli import UserError
from toolkit.config import config_dict, save_run_config
from toolkit.files import exclusive, write_csv, write_json
from toolkit.logger import fmt
from trex.config import TrexConfig, demo_levels
from trex.level_sets import SCORED_SETS
from trex.results import RewardMetrics
from trex.reward.evaluation import figure_bounds, seed_interval
from trex.reward.fit import finished_run, fit_and_evaluate, load_demo_sets
from trex.reward.plots import plot_sweep
from trex.reward.table import FIGURE_COLUMNS, LABEL_COLUMNS, VALIDATION_COLUMNS, figure_columns

SWEEP_COLUMNS = (
    "name",
    "reward_net",
    "demo_levels",
    "num_demos",
    "seed",
    "best_val_accuracy",
    "run_dir",
    *FIGURE_COLUMNS,
    *VALIDATION_COLUMNS,
    *LABEL_COLUMNS,
)


def run_sweep(cfg: TrexConfig) -> dict:
    """Correlations by number of training demos and by number of levels they come from, over seeds (the 2020
    study's figure and its level-diversity axis); finished sub-runs are kept, so a rerun resumes."""
    with exclusive(cfg.run_dir):
        return _sweep(cfg)


def _sweep(cfg: TrexConfig) -> dict:
    run_dir = Path(cfg.run_dir)
    save_run_config(run_dir, config_dict(cfg))
    level_counts = {demo_levels(cfg).num_levels if cfg.demo_num_levels != 0 else 0: Path(cfg.demo_dir)}
    level_counts.update({n: Path(cfg.demo_dir) / f"levels_{n}" for n in cfg.sweep_demo_levels})
    rows = []
    for levels, folder in level_counts.items():
        demos = load_demo_sets(cfg, folder)
        too_many = [n for n in cfg.sweep_num_demos if n > len(demos.train)]
        if too_many:
            raise UserError(
                f"config key 'sweep_num_demos': {too_many[0]} training demos asked for, but {folder} "
                f"holds {len(demos.train)}"
            )
        for n in sorted(set(cfg.sweep_num_demos)):
            for s in range(cfg.sweep_seeds):
                sub = dataclasses.replace(
                    cfg, num_demos=n, seed=cfg.seed + s, run_dir=str(run_dir / "sweep" / f"L{levels}_n{n}_s{s}")
                )
                m = finished_run(sub) or fit_and_evaluate(sub, demos, verbose=False)
                rows.append(sweep_row(cfg, levels, n, sub, m))
                print(
                    f"sweep levels={levels or 'fresh'} n={n} seed={sub.seed}: spearman "
                    f"{fmt(m['new_episodes']['spearman'], '.3f')} training levels, "
                    f"{fmt(m['held_out']['spearman'], '.3f')} held-out (length baseline "
                    f"{fmt(m['held_out']['length_baseline']['spearman'], '.3f')})",
                    flush=True,
                )
    summary = sweep_summary(rows)
    write_json(
        run_dir / "sweep.json",
        {
            "env_name": cfg.env_name,
            "distribution_mode": cfg.distribution_mode,
            "name": cfg.name,
            "reward_net": cfg.reward_net,
            "summary": summary,
            "points": rows,
        },
    )
    write_csv(run_dir / "sweep.csv", rows, SWEEP_COLUMNS)
    plot_sweep(
        summary,
        run_dir / "sweep.png",
        f"{cfg.env_name} ({cfg.distribution_mode}), {cfg.sweep_seeds} seeds, mean and 95% interval",
    )
    print(f"sweep done -> {run_dir / 'sweep.csv'}, {run_dir / 'sweep.png'}", flush=True)
    return {"summary": summary, "points": rows}


def sweep_row(cfg: TrexConfig, levels: int, n: int, sub: TrexConfig, m: RewardMetrics) -> dict:
    return {
        "name": cfg.name,
        "reward_net": cfg.reward_net,
        "demo_levels": levels,
        "num_demos": n,
        "seed": sub.seed,
        "best_val_accuracy": m["best_val_accuracy"],
        "run_dir": sub.run_dir,
        **figure_columns(m),
    }


def sweep_summary(rows: list[dict]) -> list[dict]:
    """Mean and 95% interval over seeds of every figure, per (demo levels, number of demos)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["demo_levels"], r["num_demos"]), []).append(r)
    figures = [c for c in SWEEP_COLUMNS if c.startswith((*SCORED_SETS, "validation_", "labels_"))]
    return [
        {
            "demo_levels": levels,
            "num_demos": n,
            "seeds": len(rs),
            **{c: seed_interval([r[c] for r in rs], figure_bounds(c)) for c in figures},
        }
        for (levels, n), rs in groups.items()
    ]
