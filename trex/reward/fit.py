"""Step 3 of T-REX: learn a reward from ranked demonstrations, and measure where it generalises.

    python trex/reward_model.py train -c configs/trex/coinrun.yaml   # one reward model
    python trex/reward_model.py sweep -c configs/trex/coinrun.yaml   # correlation vs number of demos and of levels

`train_reward_model` reads top to bottom:
1. `choose_demos`: `num_demos` of the folder's `train` demos (at random, or round-robin over return bins as the
   2020 study did, after dropping those above `max_return`), `val_fraction` of them kept aside for validation;
2. `create_training_data` (trex/reward/pairs.py): snippet pairs labelled by which demo ranks higher;
3. `RewardTrainer.fit` (below): the `RewardNet` (trex/reward/net.py) under the Bradley-Terry loss, early stopping on
   validation accuracy, the best weights kept;
4. `evaluate_demos` (trex/reward/evaluation.py): correlations of predicted and true returns, with 95% bootstrap
   intervals, on new episodes of the training demos' levels (`new_episodes`) and on held-out levels (`held_out`),
   beside the episode-length baseline;
5. reward_model.pt, metrics.json, summary.json, train_log.csv, TensorBoard events and plots in `run_dir`.
A rerun of a finished run keeps it; a different config on its folder is refused; an interrupted run trains again
from the start, with the same seeds, so its outputs are those of an uninterrupted run.
"""

from __future__ import annotations

import copy
import csv
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from toolkit.cli import UserError
from toolkit.config import config_dict, diff_configs, load_yaml, save_run_config
from toolkit.files import exclusive, write_json
from toolkit.logger import fmt, fmt_duration
from toolkit.tracking import TRACKING_KEYS, start_tracking
from trex.config import TrexConfig
from trex.demos.store import Demo, check_game, load_demos
from trex.level_sets import SCORED_SETS
from trex.results import LevelSetFigures, RewardMetrics, correlation, read_metrics, scored_set, write_metrics
from trex.reward.augment import augment
from trex.reward.evaluation import (
    PREDICT_BATCH,
    TrainingProfile,
    centred_figures,
    evaluate_demos,
    plot_cumulative,
    plot_predicted_vs_true,
    plot_reward_by_time,
    predict_rewards,
)
from trex.reward.net import FILE_NAME, RewardNet, load_reward_model, save_reward_model
from trex.reward.pairs import SnippetPairs, concat_obs, create_training_data, frame_chunks

# Keys that cannot change a reward model trained from the same demos.
IRRELEVANT = (
    "device",
    "torch_threads",
    "run_dir",
    "sweep_num_demos",
    "sweep_demo_levels",
    "sweep_seeds",
    "name",
    *TRACKING_KEYS,
)
VAL_PAIRS_MAX = 1000  # validation pairs, as the 2020 study's 1,000
METRICS = ("spearman", "kendall", "pearson")
# One-number figures of a level set's block beyond the correlations: what a reward must beat "time passes" by.
EXTRA_FIGURES = ("partial_spearman", "snippet_accuracy", "offset_shift", "within_level_spearman")
# The figures of one reward model in a table row: each correlation of the model, the length and time-only
# baselines and the centred returns, and the extra figures, on both level sets.
FIGURE_COLUMNS = tuple(
    f"{key}_{kind}{m}"
    for kind in ("", "length_baseline_", "centred_", "time_baseline_")
    for key in SCORED_SETS
    for m in METRICS
) + tuple(f"{key}_{f}" for f in EXTRA_FIGURES for key in SCORED_SETS)


def figure_columns(metrics: RewardMetrics) -> dict[str, float | None]:
    """The FIGURE_COLUMNS of a metrics.json (the centred figures recomputed from its per-demo returns; figures a
    file from before they existed lacks are None)."""
    out: dict[str, float | None] = {}
    for key in SCORED_SETS:
        block = scored_set(metrics, key)
        centred = centred_figures(block)
        for m in METRICS:
            out[f"{key}_{m}"] = correlation(block, m)
            out[f"{key}_length_baseline_{m}"] = correlation(block["length_baseline"], m)
            out[f"{key}_centred_{m}"] = centred[m]
            time_baseline = block.get("time_baseline")
            out[f"{key}_time_baseline_{m}"] = None if time_baseline is None else correlation(time_baseline, m)
        out[f"{key}_partial_spearman"] = block.get("partial_spearman", {}).get("value")
        out[f"{key}_snippet_accuracy"] = block.get("snippet_accuracy")
        out[f"{key}_offset_shift"] = block.get("offset", {}).get("shift")
        out[f"{key}_within_level_spearman"] = block.get("within_level", {}).get("model", {}).get("spearman")
    return {c: out[c] for c in FIGURE_COLUMNS}


@dataclass
class DemoSets:
    """A folder's demos by level set: to train on, new episodes on the same levels, held-out levels, and (with
    val_num_levels) validation levels of their own."""

    train: list[Demo]
    new_episodes: list[Demo]
    held_out: list[Demo]
    val: list[Demo]


# --------------------------------------------------------------------------- 1. which demos
def choose_demos(cfg: TrexConfig, demos: list[Demo], rng: np.random.Generator) -> tuple[list[Demo], list[Demo]]:
    """(training demos, validation demos): `num_demos` of `demos` (all of them when there are fewer), of which
    `val_fraction`, spread evenly over their range of returns, validate; none with val_num_levels, whose
    validation demos come from levels of their own."""
    if cfg.num_demos < 2:
        raise UserError(f"config key 'num_demos': {cfg.num_demos} is too few to train on (at least 2)")
    returns = np.array([d.record.ret for d in demos])
    cap = returns.min() + cfg.max_return * (returns.max() - returns.min())
    kept = np.flatnonzero(returns <= cap + 1e-9)
    if cfg.demo_selection == "random":
        pool = rng.permutation(kept)[: cfg.num_demos]
    else:
        pool = np.array(return_bins(returns, kept, cfg.num_demos, cfg.return_bins, rng), np.int64)
    n_val = 0 if cfg.val_num_levels else int(round(cfg.val_fraction * len(pool)))
    by_return = pool[np.argsort(returns[pool], kind="stable")]
    val = set(by_return[((np.arange(n_val) + 0.5) * len(pool) / max(n_val, 1)).astype(int)].tolist())
    return [demos[i] for i in pool if i not in val], [demos[i] for i in pool if i in val]


def return_bins(returns: np.ndarray, candidates: np.ndarray, n: int, bins: int, rng: np.random.Generator) -> list[int]:
    """The 2020 study's choice: `bins` equal-width bins between the lowest and highest return of `candidates`, then
    one random unused demo from each non-empty bin in turn, until `n` are chosen or none is left: a near-uniform
    spread of returns."""
    lo, hi = returns[candidates].min(), returns[candidates].max()
    width = (hi - lo) / bins if hi > lo else 1.0
    which = np.minimum(((returns[candidates] - lo) / width).astype(int), bins - 1)
    left = [list(rng.permutation(candidates[which == b])) for b in range(bins)]
    chosen: list[int] = []
    while len(chosen) < n and any(left):
        for members in left:
            if members and len(chosen) < n:
                chosen.append(int(members.pop()))
    return chosen


# --------------------------------------------------------------------------- 3. the trainer
@dataclass
class TrainResult:
    steps: int
    pairs_seen: int
    best_val_accuracy: float | None  # None when there were no validation pairs
    best_step: int
    stopped_early: bool
    wall_time_s: float
    train_time_s: float  # time in optimizer steps only, without validation
    pairs_per_s: float  # training pairs per second of train_time_s
    frames_per_s: float  # frames through forward+backward per second of train_time_s


class RewardTrainer:
    """Fits a `RewardNet` to snippet pairs with the Bradley-Terry loss, many pairs per step.

    A batch is one gather of all its snippets' frames and one forward pass; snippet returns are segment sums of the
    per-frame rewards, so snippets of different lengths need no padding.
    """

    def __init__(
        self,
        net: RewardNet,
        cfg: TrexConfig,
        device: torch.device,
        run_dir: str | Path | None = None,
        verbose: bool = True,
    ):
        self.net, self.cfg, self.device, self.verbose = net.to(device), cfg, device, verbose
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.amp = cfg.amp and device.type == "cuda"
        self.generator = torch.Generator().manual_seed(cfg.seed)  # the augmentations' draws
        self.steps = 0  # optimizer steps taken, for the message of a diverging loss

    def snippet_returns(
        self, frames: np.ndarray, offsets: np.ndarray, pairs: SnippetPairs, idx: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member returns [M, B, 2] of the pairs `idx`, and the per-frame rewards [M, F] behind them."""
        obs, seg = self._gather(frames, offsets, pairs, idx)
        return self._returns(obs, seg, len(idx))

    def _gather(
        self, frames: np.ndarray, offsets: np.ndarray, pairs: SnippetPairs, idx: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        flat, segment = pairs.frame_index(idx, offsets)
        obs = torch.from_numpy(frames[flat]).to(self.device, non_blocking=True)
        return obs, torch.from_numpy(segment).to(self.device)

    def _returns(
        self, obs: torch.Tensor, seg: torch.Tensor, num_pairs: int, member: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            rewards = self.net.member_rewards(obs, member).float()
        returns = rewards.new_zeros(rewards.shape[0], 2 * num_pairs).index_add_(1, seg, rewards)
        return returns.view(rewards.shape[0], num_pairs, 2), rewards

    def loss(self, returns: torch.Tensor, rewards: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Bradley-Terry cross-entropy of each member, plus L1 on the per-frame rewards (summed per pair, as T-REX)."""
        members, batch = returns.shape[:2]
        bt = F.cross_entropy(returns.reshape(members * batch, 2), labels.repeat(members))
        return bt + self.cfg.l1_reg * rewards.abs().sum() / (members * batch)

    @torch.no_grad()
    def accuracy(self, frames: np.ndarray, offsets: np.ndarray, pairs: SnippetPairs) -> float:
        """Share of pairs whose better snippet gets the higher predicted return (ensemble mean; ties count half)."""
        self.net.eval()
        score = 0.0
        for idx in frame_chunks(pairs, PREDICT_BATCH):
            returns = self.snippet_returns(frames, offsets, pairs, idx)[0].mean(0)
            score += _correct(returns, torch.from_numpy(pairs.label[idx]).to(self.device)).item()
        self.net.train()
        return score / len(pairs)

    def batch_loss(
        self, frames: np.ndarray, offsets: np.ndarray, pairs: SnippetPairs, idx: np.ndarray, member: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """(loss, returns [M, B, 2], labels, frames) of the pairs `idx` for every member, or for one `member`: each
        snippet augmented with its own draw (cfg.augment), plus the consistency term between two such views."""
        labels = torch.from_numpy(pairs.label[idx]).to(self.device)
        obs, seg = self._gather(frames, offsets, pairs, idx)
        returns, rewards = self._returns(augment(obs, seg, self.cfg.augment, self.generator), seg, len(idx), member)
        loss = self.loss(returns, rewards, labels)
        if self.cfg.augment_consistency > 0:
            other = self._returns(augment(obs, seg, self.cfg.augment, self.generator), seg, len(idx), member)[1]
            loss = loss + self.cfg.augment_consistency * (rewards - other).pow(2).mean()
        return loss, returns, labels, rewards.shape[1]

    def step(self, frames: np.ndarray, offsets: np.ndarray, pairs: SnippetPairs, idx: np.ndarray) -> dict:
        """One optimiser step on the pairs `idx` ([B], or [M, B]: each ensemble member's own pairs): its loss,
        correctly ranked pairs and frames seen."""
        if idx.ndim == 1:
            loss, returns, labels, seen = self.batch_loss(frames, offsets, pairs, idx)
            correct = _correct(returns.detach().mean(0), labels).item()
        else:
            parts = [self.batch_loss(frames, offsets, pairs, member_idx, m) for m, member_idx in enumerate(idx)]
            loss = torch.stack([p[0] for p in parts]).mean()
            correct = float(np.mean([_correct(p[1].detach()[0], p[2]).item() for p in parts]))
            seen = sum(p[3] for p in parts)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in self.net.parameters() if p.grad is not None]
        if not bool(torch.isfinite(loss) & torch.isfinite(torch.nn.utils.get_total_norm(grads))):
            raise UserError(
                f"the reward model diverged at step {self.steps + 1}: loss {loss.item():.4g}, or its gradient, is "
                f"not finite; the likely cause is a learning rate too high (learning_rate {self.cfg.learning_rate:g}); "
                "nothing was saved: lower learning_rate"
            )
        self.optimizer.step()
        self.steps += 1
        return {"loss": loss.item() * idx.shape[-1], "correct": correct, "frames": seen}

    def fit(
        self,
        frames: np.ndarray,
        offsets: np.ndarray,
        train: SnippetPairs,
        val: SnippetPairs | None,
        rng: np.random.Generator,
    ) -> TrainResult:
        """Train for at most cfg.epochs passes; validate every cfg.eval_interval pairs; stop after cfg.patience
        checks without a better validation accuracy; restore the best weights."""
        cfg = self.cfg
        total_steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
        log = _TrainLog(self.run_dir, cfg) if self.run_dir is not None else None
        best = _Best()
        step = pairs_seen = frames_seen = 0
        train_time, t0 = 0.0, time.time()
        window = {"loss": 0.0, "correct": 0.0, "pairs": 0}
        next_check = cfg.eval_interval
        self.net.train()
        stop = False
        # With ensemble_resample, member m trains on its own resample of the pairs (row m), in a shared order.
        resample = cfg.ensemble_resample and self.net.ensemble_size > 1
        members = rng.integers(0, len(train), (self.net.ensemble_size, len(train))) if resample else None
        for _epoch in range(cfg.epochs):
            if stop:
                break
            order = rng.permutation(len(train))
            if members is not None:
                order = members[:, order]
            for s in range(0, len(train), cfg.batch_size):
                ts = time.time()
                idx = order[..., s : s + cfg.batch_size]
                out = self.step(frames, offsets, train, idx)
                train_time += time.time() - ts
                batch = idx.shape[-1]
                window = {
                    "loss": window["loss"] + out["loss"],
                    "correct": window["correct"] + out["correct"],
                    "pairs": window["pairs"] + batch,
                }
                step, pairs_seen, frames_seen = step + 1, pairs_seen + batch, frames_seen + out["frames"]
                if pairs_seen < next_check and step < total_steps:
                    continue
                next_check += cfg.eval_interval
                val_acc = self.accuracy(frames, offsets, val) if val is not None and len(val) else None
                best.update(val_acc, step, self.net)
                row = {
                    "step": step,
                    "pairs": pairs_seen,
                    "loss": window["loss"] / window["pairs"],
                    "train_acc": window["correct"] / window["pairs"],
                    "val_acc": val_acc,
                    "best_val_acc": best.accuracy,
                    "pairs_per_s": pairs_seen / max(train_time, 1e-9),
                    "wall_s": time.time() - t0,
                }
                window = {"loss": 0.0, "correct": 0.0, "pairs": 0}
                if log is not None:
                    log.write(row)
                if self.verbose:
                    print(_progress(row, total_steps), flush=True)
                stop = val_acc is not None and best.checks_without_gain >= cfg.patience
                if stop:
                    break
        best.restore(self.net)
        if log is not None:
            log.close()
        self.net.eval()
        return TrainResult(
            step,
            pairs_seen,
            best.accuracy,
            best.step,
            stop,
            time.time() - t0,
            train_time,
            pairs_seen / max(train_time, 1e-9),
            frames_seen / max(train_time, 1e-9),
        )


class _Best:
    """Early stopping's memory: the best validation accuracy, its step and weights, and checks since."""

    def __init__(self):
        self.accuracy: float | None = None
        self.step, self.checks_without_gain, self.state = 0, 0, None

    def update(self, accuracy: float | None, step: int, net: RewardNet) -> None:
        if accuracy is None or self.accuracy is None or accuracy > self.accuracy:
            self.accuracy, self.step, self.checks_without_gain = accuracy, step, 0
            self.state = copy.deepcopy(net.state_dict())
        else:
            self.checks_without_gain += 1

    def restore(self, net: RewardNet) -> None:
        if self.state is not None:
            net.load_state_dict(self.state)


def _correct(returns: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Number of pairs [B, 2] ranked as labelled; a tie counts half."""
    diff = returns[:, 1] - returns[:, 0]
    sign = torch.where(labels == 1, diff, -diff)
    return (sign > 0).float().sum() + 0.5 * (sign == 0).float().sum()


def _progress(row: dict, total_steps: int) -> str:
    pairs_per_s = row["pairs_per_s"]
    eta = (total_steps - row["step"]) * row["pairs"] / row["step"] / pairs_per_s if pairs_per_s > 0 else math.nan
    done = 100 * row["step"] / total_steps
    return (
        f"step {row['step']:,}/{total_steps:,} ({done:.0f}%) | pairs/s {pairs_per_s:,.0f}"
        f" | loss {fmt(row['loss'], '.3f')} | train acc {fmt(row['train_acc'], '.3f')}"
        f" | val acc {fmt(row['val_acc'], '.3f')} | eta {fmt_duration(eta)}"
    )


class _TrainLog:
    """train_log.csv (one row per validation check) and TensorBoard scalars under run_dir/tb, both started anew:
    an interrupted run's partial logs are replaced, never appended to."""

    FIELDS = ("step", "pairs", "loss", "train_acc", "val_acc", "best_val_acc", "pairs_per_s", "wall_s")

    def __init__(self, run_dir: Path, cfg: TrexConfig):
        from torch.utils.tensorboard import SummaryWriter

        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
        self.file = (run_dir / "train_log.csv").open("w", newline="")
        self.csv = csv.DictWriter(self.file, self.FIELDS)
        self.csv.writeheader()
        self.tb = SummaryWriter(str(run_dir / "tb"))
        self.tracker = start_tracking(cfg, run_dir, config_dict(cfg), "reward", resumable=False)

    def write(self, row: dict) -> None:
        self.csv.writerow({k: "" if row[k] is None else row[k] for k in self.FIELDS})
        self.file.flush()
        scalars = {f"reward/{k}": row[k] for k in self.FIELDS[2:] if row[k] is not None}
        for key, value in scalars.items():
            self.tb.add_scalar(key, value, row["pairs"])
        self.tracker.log(scalars, row["pairs"])

    def close(self) -> None:
        self.file.close()
        self.tb.close()
        self.tracker.finish()


# --------------------------------------------------------------------------- one reward model, end to end
def train_reward_model(cfg: TrexConfig) -> RewardMetrics:
    """Train, evaluate and save one reward model in cfg.run_dir; returns the metrics.json content."""
    with exclusive(cfg.run_dir):
        done = finished_run(cfg)
        if done is not None:
            return done
        return fit_and_evaluate(cfg, load_demo_sets(cfg, Path(cfg.demo_dir)), verbose=True)


def load_demo_sets(cfg: TrexConfig, folder: Path) -> DemoSets:
    """The training demos of `folder` and its new_episodes demos; the held-out demos of the main demo folder."""
    main = Path(cfg.demo_dir)
    sets = DemoSets(
        load_demos(folder, "train"),
        load_demos(folder, "new_episodes"),
        load_demos(main, "held_out"),
        load_demos(main, "val") if cfg.val_num_levels else [],
    )
    if not sets.train:
        raise UserError(f"no training demos in {folder} (run 'trex/reward_model.py demos' first)")
    if cfg.val_num_levels and not sets.val:
        raise UserError(f"no validation demos in {main} (val_num_levels is set: run 'trex/reward_model.py demos')")
    check_game(
        [d.record for d in sets.train + sets.new_episodes + sets.held_out + sets.val],
        folder,
        cfg.env_name,
        cfg.distribution_mode,
        "set env_name and distribution_mode to match",
    )
    return sets


def reward_model_is_trained(cfg: TrexConfig) -> bool:
    """Whether cfg.run_dir holds a reward model trained and evaluated to the end (its metrics.json exists)."""
    return (Path(cfg.run_dir) / "metrics.json").is_file()


def finished_run(cfg: TrexConfig) -> RewardMetrics | None:
    """The metrics of a finished run of this very config in cfg.run_dir; refuse to overwrite a different one."""
    run_dir = Path(cfg.run_dir)
    model = run_dir / FILE_NAME
    if not model.exists():
        return None
    saved_path, metrics_path = run_dir / "config.yaml", run_dir / "metrics.json"
    saved = load_yaml(saved_path) if saved_path.is_file() else None
    differ = diff_configs(saved, config_dict(cfg), IRRELEVANT) if isinstance(saved, dict) else ["config.yaml"]
    if differ:
        raise UserError(
            f"{model} already exists from a different config (differs in: {', '.join(differ[:5])}); "
            "choose another --run_dir or remove it"
        )
    if not metrics_path.is_file():  # interrupted between saving the model and its evaluation: train it again
        print(f"{cfg.run_dir}: {model.name} has no metrics.json (an interrupted run); training again", flush=True)
        return None
    try:
        load_reward_model(model)
    except UserError as err:  # cut by a crash of the host: the same seeds train it again
        print(f"note: {err}; training it again", flush=True)
        return None
    print(f"{cfg.run_dir}: already trained with this config, keeping {model}", flush=True)
    return read_metrics(metrics_path)


def fit_and_evaluate(cfg: TrexConfig, demos: DemoSets, verbose: bool) -> RewardMetrics:
    """Steps 1-5 of the module docstring for one seed; returns metrics.json's content."""
    run_dir = Path(cfg.run_dir)
    t_start = time.time()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = cfg.setup()
    save_run_config(run_dir, config_dict(cfg))

    # 1-2. demos and snippet pairs
    train_demos, val_demos = choose_demos(cfg, demos.train, rng)
    if cfg.val_num_levels:
        val_demos = demos.val[: cfg.num_val_demos]

    def snippet_pairs(chosen: list[Demo], num_pairs: int) -> SnippetPairs:
        return create_training_data(
            chosen,
            num_pairs,
            cfg.min_snippet_length,
            cfg.max_snippet_length,
            cfg.frame_stride,
            cfg.progress_constraint,
            rng,
            cfg.rank_by,
        )

    pairs = snippet_pairs(train_demos, cfg.num_pairs)
    val_pairs = None
    rank = (lambda d: d.record.ret) if cfg.rank_by == "return" else (lambda d: d.record.noise)
    if len({rank(d) for d in val_demos}) >= 2:
        val_pairs = snippet_pairs(val_demos, min(cfg.num_pairs, VAL_PAIRS_MAX))
        val_pairs.demo += len(train_demos)  # they index the validation demos, stored after the training ones
    elif verbose:
        print(
            "note: the validation demos do not differ in return, so there is no early stopping "
            "(raise val_fraction or num_demos)",
            flush=True,
        )
    frames, offsets = concat_obs(train_demos + val_demos)

    # 3. the reward network
    height, width, channels = frames.shape[1:]
    net = RewardNet(cfg.reward_net, cfg.ensemble_size, (height, width, channels))
    if verbose:
        print(
            f"training a {cfg.reward_net} reward net (x{cfg.ensemble_size}) on {device}: {len(pairs):,} pairs from "
            f"{len(train_demos)} demos, {pairs.frames_per_pair():.0f} frames per pair, label noise "
            f"{pairs.label_noise:.3f}; validation on {len(val_demos)} demos -> {run_dir}",
            flush=True,
        )
    trainer = RewardTrainer(net, cfg, device, run_dir, verbose=verbose)
    result = trainer.fit(frames, offsets, pairs, val_pairs, rng)
    del frames
    train_rewards = predict_rewards(net, train_demos, device)
    profile = TrainingProfile.of(train_rewards)
    every_frame = np.concatenate(train_rewards)
    reward_stats = {"mean": profile.offset, "std": float(every_frame.std()), "frames": int(len(every_frame))}
    save_reward_model(
        run_dir / FILE_NAME,
        net,
        {
            "env_name": cfg.env_name,
            "distribution_mode": cfg.distribution_mode,
            "best_val_accuracy": result.best_val_accuracy,
            "num_train_demos": len(train_demos),
            "reward_stats": reward_stats,
            "config": config_dict(cfg),
        },
    )

    # 4. evaluation on new episodes of the training levels and on held-out levels
    evaluated = {key: evaluate_demos(net, getattr(demos, key), device, profile, seed=cfg.seed) for key in SCORED_SETS}
    for key in SCORED_SETS:
        evaluated[key][0]["snippet_accuracy"] = snippet_accuracy(cfg, trainer, getattr(demos, key))
    metrics: RewardMetrics = {
        "env_name": cfg.env_name,
        "distribution_mode": cfg.distribution_mode,
        "reward_net": cfg.reward_net,
        "ensemble_size": cfg.ensemble_size,
        "seed": cfg.seed,
        "new_episodes": cast(LevelSetFigures, evaluated["new_episodes"][0]),
        "held_out": cast(LevelSetFigures, evaluated["held_out"][0]),
        "label_noise": pairs.label_noise,
        "val_label_noise": None if val_pairs is None else val_pairs.label_noise,
        "best_val_accuracy": result.best_val_accuracy,
        "best_step": result.best_step,
        "steps": result.steps,
        "pairs_seen": result.pairs_seen,
        "stopped_early": result.stopped_early,
        "num_train_demos": len(train_demos),
        "num_val_demos": len(val_demos),
        "num_pairs": len(pairs),
        "train_demo_returns": [d.record.ret for d in train_demos],
        "reward_stats": reward_stats,
        "frames_per_pair": pairs.frames_per_pair(),
        "pairs_per_s": result.pairs_per_s,
        "frames_per_s": result.frames_per_s,
        "train_time_s": result.train_time_s,
        "wall_time_s": time.time() - t_start,
    }

    # 5. outputs
    write_outputs(run_dir, metrics, demos, evaluated, verbose)
    return metrics


def write_outputs(
    run_dir: Path, metrics: RewardMetrics, demos: DemoSets, evaluated: dict[str, tuple[dict, list]], verbose: bool
) -> None:
    """Step 5: metrics.json, summary.json and the plots of one reward model (`evaluated`: each scored level set's
    figures and per-frame predicted rewards)."""
    write_metrics(run_dir / "metrics.json", metrics)
    write_json(
        run_dir / "summary.json",
        {
            **figure_columns(metrics),
            "best_val_accuracy": metrics["best_val_accuracy"],
            "label_noise": metrics["label_noise"],
            "wall_time_s": metrics["wall_time_s"],
        },
    )
    sets = {
        SCORED_SETS[key]: (getattr(demos, key), rewards, m)
        for key, (m, rewards) in evaluated.items()
        if getattr(demos, key)
    }
    if sets:
        plot_predicted_vs_true(sets, run_dir / "predicted_vs_true.png")
        shown, rewards, _ = sets.get(SCORED_SETS["held_out"], next(iter(sets.values())))
        plot_cumulative(shown, rewards, run_dir / "cumulative_reward.png")
        plot_reward_by_time({k: v[1] for k, v in sets.items()}, run_dir / "reward_by_time.png")
    if verbose:
        t, tr = metrics["held_out"], metrics["new_episodes"]
        print(
            f"done in {metrics['wall_time_s']:.0f}s: spearman {fmt(tr['spearman'], '.3f')} on new training-level "
            f"demos, {fmt(t['spearman'], '.3f')} on held-out levels (length baseline "
            f"{fmt(tr['length_baseline']['spearman'], '.3f')}, {fmt(t['length_baseline']['spearman'], '.3f')}; "
            f"centred {fmt(tr['centred']['spearman'], '.3f')}, {fmt(t['centred']['spearman'], '.3f')}) "
            f"-> {run_dir / 'metrics.json'}",
            flush=True,
        )


def snippet_accuracy(cfg: TrexConfig, trainer: RewardTrainer, demos: list[Demo]) -> float | None:
    """Accuracy on `cfg.eval_pairs` equal-length snippet pairs of `demos`, labelled by their demos' true returns
    and drawn without the progress constraint: a figure a constant per-frame reward cannot move. Its own seed,
    so adding it changed no other figure."""
    if not cfg.eval_pairs or len({d.record.ret for d in demos}) < 2:
        return None
    rng = np.random.default_rng([cfg.seed, 1])
    pairs = create_training_data(
        demos, cfg.eval_pairs, cfg.min_snippet_length, cfg.max_snippet_length, cfg.frame_stride, False, rng
    )
    frames, offsets = concat_obs(demos)
    return trainer.accuracy(frames, offsets, pairs)
