"""Step 3 end to end: `train_reward_model` (`reward_model.py train`) and `run_sweep` (`reward_model.py sweep`).

Which demos a run uses: a seeded random choice of `num_demos` training-level demos (all of them when the demo folder
holds fewer) forms the pool; `val_fraction` of the pool, spread evenly over its range of returns, is held out for
validation (early stopping) and the rest yields the training pairs. "Training levels" metrics cover every
training-level demo whose frames no gradient step saw: the validation demos and any demos outside the pool.
"Held-out levels" metrics cover the demos of the test level set.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from toolkit.cli import UserError
from toolkit.config import config_dict, diff_configs, load_yaml, save_run_config
from toolkit.files import exclusive, write_json
from toolkit.logger import fmt
from trex.config import TrexConfig
from trex.demo_store import Demo, check_game, load_demos
from trex.evaluation import evaluate_demos, plot_cumulative, plot_predicted_vs_true, plot_reward_by_time, plot_sweep
from trex.pairs import concat_obs, create_training_data
from trex.reward_net import FILE_NAME, RewardNet, save_reward_model
from trex.trainer import RewardTrainer

# Keys that cannot change a reward model trained from the same demos.
_IRRELEVANT = ("device", "run_dir", "sweep_num_demos", "sweep_seeds")
VAL_PAIRS_MAX = 1000


def train_reward_model(cfg: TrexConfig) -> dict:
    """Train, evaluate and save one reward model in cfg.run_dir; returns the metrics.json content."""
    with exclusive(cfg.run_dir):
        done = _finished_run(cfg)
        if done is not None:
            return done
        train, test = _load(cfg)
        return _train_and_evaluate(cfg, train, test, verbose=True)


def run_sweep(cfg: TrexConfig) -> dict:
    """Held-out correlation as a function of the number of training demos, over seeds (the 2020 study's figure)."""
    with exclusive(cfg.run_dir):
        return _sweep(cfg)


def _sweep(cfg: TrexConfig) -> dict:
    train, test = _load(cfg)
    too_many = [n for n in cfg.sweep_num_demos if n > len(train)]
    if too_many:
        raise UserError(f"config key 'sweep_num_demos': {too_many[0]} training demos asked for, but {cfg.demo_dir} "
                        f"holds {len(train)}")
    run_dir = Path(cfg.run_dir)
    save_run_config(run_dir, config_dict(cfg))
    points = []
    for n in sorted(set(cfg.sweep_num_demos)):
        for s in range(cfg.sweep_seeds):
            sub_dir = str(run_dir / "sweep" / f"n{n}_s{s}")
            sub = dataclasses.replace(cfg, num_demos=n, seed=cfg.seed + s, run_dir=sub_dir)
            metrics = _finished_run(sub) or _train_and_evaluate(sub, train, test, verbose=False)
            points.append({"num_demos": n, "seed": sub.seed, "run_dir": sub.run_dir,
                           "best_val_accuracy": metrics["best_val_accuracy"],
                           "train_levels": metrics["train_levels"], "test_levels": metrics["test_levels"]})
            t = metrics["test_levels"]
            print(f"sweep n={n} seed={sub.seed}: held-out spearman {fmt(t['spearman'], '.3f')} "
                  f"pearson {fmt(t['pearson'], '.3f')} "
                  f"(length baseline spearman {fmt(t['length_baseline']['spearman'], '.3f')})", flush=True)
    summary = [_sweep_point(n, [p for p in points if p["num_demos"] == n]) for n in sorted(set(cfg.sweep_num_demos))]
    result = {"env_name": cfg.env_name, "distribution_mode": cfg.distribution_mode, "reward_net": cfg.reward_net,
              "summary": summary, "points": points}
    write_json(run_dir / "sweep.json", result)
    plot_sweep(summary, run_dir / "sweep.png", f"{cfg.env_name} ({cfg.distribution_mode}), {cfg.sweep_seeds} seeds")
    print(f"sweep done -> {run_dir / 'sweep.json'}, {run_dir / 'sweep.png'}", flush=True)
    return result


# --------------------------------------------------------------------------- one run
def _load(cfg: TrexConfig) -> tuple[list[Demo], list[Demo]]:
    train, test = load_demos(cfg.demo_dir, "train"), load_demos(cfg.demo_dir, "test")
    if not train:
        raise UserError(f"no training-level demos in {cfg.demo_dir} (run 'trex/reward_model.py demos' first)")
    check_game([d.record for d in train + test], cfg.demo_dir, cfg.env_name, cfg.distribution_mode,
               "set env_name and distribution_mode to match")
    return train, test


def _finished_run(cfg: TrexConfig) -> dict | None:
    """The metrics of a finished run of this very config in cfg.run_dir; refuse to overwrite a different one."""
    run_dir = Path(cfg.run_dir)
    model = run_dir / FILE_NAME
    if not model.exists():
        return None
    saved_path, metrics_path = run_dir / "config.yaml", run_dir / "metrics.json"
    saved = load_yaml(saved_path) if saved_path.is_file() else None
    differ = diff_configs(saved, config_dict(cfg), _IRRELEVANT) if isinstance(saved, dict) else ["config.yaml"]
    if differ:
        raise UserError(f"{model} already exists from a different config (differs in: {', '.join(differ[:5])}); "
                        "choose another --run_dir or remove it")
    if not metrics_path.is_file():  # interrupted between saving the model and its evaluation: train it again
        print(f"{cfg.run_dir}: {model.name} has no metrics.json (an interrupted run); training again", flush=True)
        return None
    print(f"{cfg.run_dir}: already trained with this config, keeping {model}", flush=True)
    return json.loads(metrics_path.read_text())


def _split(cfg: TrexConfig, train_all: list[Demo], rng: np.random.Generator) -> tuple[list, list, list]:
    """(training demos, validation demos, unused training-level demos), see the module docstring."""
    if cfg.num_demos < 2:
        raise UserError(f"config key 'num_demos': {cfg.num_demos} is too few to train on (at least 2)")
    order = rng.permutation(len(train_all))
    pool, unused = order[:cfg.num_demos], order[cfg.num_demos:]
    n_val = int(round(cfg.val_fraction * len(pool)))
    by_return = pool[np.argsort([train_all[i].record.ret for i in pool], kind="stable")]
    val_ranks = ((np.arange(n_val) + 0.5) * len(pool) / max(n_val, 1)).astype(int)
    val = set(by_return[val_ranks].tolist())
    return ([train_all[i] for i in pool if i not in val], [train_all[i] for i in pool if i in val],
            [train_all[i] for i in unused])


def _train_and_evaluate(cfg: TrexConfig, train_all: list[Demo], test: list[Demo], verbose: bool) -> dict:
    run_dir = Path(cfg.run_dir)
    t_start = time.time()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = cfg.setup()
    save_run_config(run_dir, config_dict(cfg))

    train_demos, val_demos, unused = _split(cfg, train_all, rng)
    pairs = create_training_data(train_demos, cfg.num_pairs, cfg.min_snippet_length, cfg.max_snippet_length,
                                 cfg.frame_stride, cfg.progress_constraint, rng, cfg.rank_by)
    val_pairs = None
    rank = (lambda d: d.record.ret) if cfg.rank_by == "return" else (lambda d: d.record.noise)
    if len({rank(d) for d in val_demos}) >= 2:
        val_pairs = create_training_data(val_demos, min(cfg.num_pairs, VAL_PAIRS_MAX), cfg.min_snippet_length,
                                         cfg.max_snippet_length, cfg.frame_stride, cfg.progress_constraint, rng,
                                         cfg.rank_by)
        val_pairs.demo += len(train_demos)  # they index the validation demos, stored after the training ones
    elif verbose:
        print("note: the validation demos do not differ in return, so there is no early stopping "
              "(raise val_fraction or num_demos)", flush=True)
    frames, offsets = concat_obs(train_demos + val_demos)

    net = RewardNet(cfg.reward_net, cfg.ensemble_size, tuple(frames.shape[1:]))
    if verbose:
        print(f"training a {cfg.reward_net} reward net (x{cfg.ensemble_size}) on {device}: {len(pairs):,} pairs from "
              f"{len(train_demos)} demos, {pairs.frames_per_pair():.0f} frames per pair, label noise "
              f"{pairs.label_noise:.3f}; validation on {len(val_demos)} demos -> {run_dir}", flush=True)
    trainer = RewardTrainer(net, cfg, device, run_dir, verbose=verbose)
    result = trainer.fit(frames, offsets, pairs, val_pairs, rng)
    del frames
    save_reward_model(run_dir / FILE_NAME, net, {
        "env_name": cfg.env_name, "distribution_mode": cfg.distribution_mode,
        "best_val_accuracy": result.best_val_accuracy, "num_train_demos": len(train_demos),
        "config": config_dict(cfg)})

    train_levels, train_rewards = evaluate_demos(net, val_demos + unused, device)
    test_levels, test_rewards = evaluate_demos(net, test, device)
    metrics = {"env_name": cfg.env_name, "distribution_mode": cfg.distribution_mode, "reward_net": cfg.reward_net,
               "ensemble_size": cfg.ensemble_size, "train_levels": train_levels, "test_levels": test_levels,
               "label_noise": pairs.label_noise,
               "val_label_noise": None if val_pairs is None else val_pairs.label_noise,
               "best_val_accuracy": result.best_val_accuracy, "best_step": result.best_step, "steps": result.steps,
               "pairs_seen": result.pairs_seen, "stopped_early": result.stopped_early,
               "num_train_demos": len(train_demos), "num_val_demos": len(val_demos), "num_pairs": len(pairs),
               "frames_per_pair": pairs.frames_per_pair(), "pairs_per_s": result.pairs_per_s,
               "frames_per_s": result.frames_per_s, "train_time_s": result.train_time_s,
               "wall_time_s": time.time() - t_start}
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "summary.json", {
        "held_out_spearman": test_levels["spearman"], "held_out_pearson": test_levels["pearson"],
        "held_out_length_baseline_spearman": test_levels["length_baseline"]["spearman"],
        "train_levels_spearman": train_levels["spearman"], "best_val_accuracy": result.best_val_accuracy,
        "label_noise": pairs.label_noise, "wall_time_s": metrics["wall_time_s"]})

    sets = {"training levels (unseen demos)": (val_demos + unused, train_rewards, train_levels),
            "held-out levels": (test, test_rewards, test_levels)}
    sets = {k: v for k, v in sets.items() if v[0]}
    if sets:
        plot_predicted_vs_true(sets, run_dir / "predicted_vs_true.png")
        demos, rewards, _ = sets.get("held-out levels", next(iter(sets.values())))
        plot_cumulative(demos, rewards, run_dir / "cumulative_reward.png")
        plot_reward_by_time({k: v[1] for k, v in sets.items()}, run_dir / "reward_by_time.png")
    if verbose:
        print(f"done in {metrics['wall_time_s']:.0f}s: held-out spearman {fmt(test_levels['spearman'], '.3f')} "
              f"(length baseline {fmt(test_levels['length_baseline']['spearman'], '.3f')}), training-level spearman "
              f"{fmt(train_levels['spearman'], '.3f')} -> {run_dir / 'metrics.json'}", flush=True)
    return metrics


def _sweep_point(n: int, runs: list[dict]) -> dict:
    def stat(key: str, metric: str) -> dict:
        values = [r["test_levels"][metric] if key == "reward_model" else r["test_levels"]["length_baseline"][metric]
                  for r in runs]
        values = [v for v in values if v is not None]
        return {"mean": float(np.mean(values)) if values else None, "std": float(np.std(values)) if values else None}

    return {"num_demos": n, "seeds": len(runs),
            **{key: {m: stat(key, m) for m in ("pearson", "spearman", "kendall")}
               for key in ("reward_model", "length_baseline")}}
