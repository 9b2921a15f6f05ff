"""`RewardTrainer`: fits a `RewardNet` to snippet pairs under the T-REX loss (loss.py), many pairs per step, with
early stopping on validation accuracy (`EarlyStopping`) and a log of every validation check (`TrainLog`)."""

from __future__ import annotations

import copy
import csv
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from toolkit.cli import UserError
from toolkit.config import config_dict
from toolkit.logger import fmt, fmt_duration
from toolkit.tracking import start_tracking
from trex.config import TrexConfig
from trex.reward.augment import augment
from trex.reward.auxiliary import InverseDynamics, Transitions
from trex.reward.evaluation import PREDICT_BATCH
from trex.reward.loss import ranked_correctly, trex_loss, true_return_loss
from trex.reward.net import RewardNet, stack_frames
from trex.reward.pairs import SnippetPairs, frame_chunks

NEEDS_TRUTH = "supervision is true_returns: fit needs each frame's true reward"


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


class StepStats(NamedTuple):
    """One optimiser step: its loss summed over the batch's pairs, the pairs ranked as labelled, frames seen, and the
    share of its inverse-dynamics transitions whose action the head named (None without that loss)."""

    loss_sum: float
    correct: float
    frames: int
    inverse_right: float | None = None


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
        self.inverse = InverseDynamics(net).to(device) if cfg.inverse_dynamics > 0 else None
        params = list(net.parameters()) + ([] if self.inverse is None else list(self.inverse.parameters()))
        self.optimizer = torch.optim.Adam(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.dynamics_rng = np.random.default_rng([cfg.seed, 3])  # its draws, apart from the pairs' order
        self.amp = cfg.amp and device.type == "cuda"
        self.generator = torch.Generator().manual_seed(cfg.seed)  # the augmentations' draws
        self.steps = 0  # optimizer steps taken, for the message of a diverging loss

    # ------------------------------------------------------------------ the loop
    def fit(
        self,
        frames: np.ndarray,
        offsets: np.ndarray,
        train: SnippetPairs,
        val: SnippetPairs | None,
        rng: np.random.Generator,
        dynamics: Transitions | None = None,
        true_rewards: np.ndarray | None = None,
    ) -> TrainResult:
        """Train for at most cfg.epochs passes; validate every cfg.eval_interval pairs; stop after cfg.patience
        checks without a better validation accuracy; restore the best weights. `dynamics`: the transitions of the
        inverse-dynamics loss (needed where cfg.inverse_dynamics > 0); `true_rewards`: each frame's true reward, in
        the order of `frames` (needed where cfg.supervision is true_returns)."""
        cfg = self.cfg
        if self.inverse is not None and dynamics is None:
            raise ValueError("inverse_dynamics is on: fit needs the transitions it learns from")
        if cfg.supervision == "true_returns" and true_rewards is None:
            raise ValueError(NEEDS_TRUTH)
        total_steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
        log = TrainLog(self.run_dir, cfg) if self.run_dir is not None else None
        stopping = EarlyStopping(cfg.patience)
        window = _Window()
        step = pairs_seen = frames_seen = 0
        train_time, t0 = 0.0, time.time()
        next_check = cfg.eval_interval
        stopped = False
        self.net.train()
        for idx in self._batches(len(train), rng):
            ts = time.time()
            stats = self.step(frames, offsets, train, idx, dynamics, true_rewards)
            train_time += time.time() - ts
            window.add(stats, idx.shape[-1])
            step, pairs_seen, frames_seen = step + 1, pairs_seen + idx.shape[-1], frames_seen + stats.frames
            if pairs_seen < next_check and step < total_steps:
                continue
            next_check += cfg.eval_interval
            val_acc = self.accuracy(frames, offsets, val) if val is not None and len(val) else None
            stopping.update(val_acc, step, self.net)
            row = {
                "step": step,
                "pairs": pairs_seen,
                **window.take(),
                "val_acc": val_acc,
                "best_val_acc": stopping.accuracy,
                "pairs_per_s": pairs_seen / max(train_time, 1e-9),
                "wall_s": time.time() - t0,
            }
            if log is not None:
                log.write(row)
            if self.verbose:
                print(_progress(row, total_steps), flush=True)
            stopped = stopping.should_stop(val_acc)
            if stopped:
                break
        stopping.restore(self.net)
        if log is not None:
            log.close()
        self.net.eval()
        return TrainResult(
            step,
            pairs_seen,
            stopping.accuracy,
            stopping.step,
            stopped,
            time.time() - t0,
            train_time,
            pairs_seen / max(train_time, 1e-9),
            frames_seen / max(train_time, 1e-9),
        )

    def _batches(self, num_pairs: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """The pair indices of each batch, each epoch in a new order. With ensemble_resample, member m trains on
        its own resample of the pairs (row m of a [M, B] batch), in a shared order."""
        cfg = self.cfg
        resample = cfg.ensemble_resample and self.net.ensemble_size > 1
        members = rng.integers(0, num_pairs, (self.net.ensemble_size, num_pairs)) if resample else None
        for _epoch in range(cfg.epochs):
            order = rng.permutation(num_pairs)
            if members is not None:
                order = members[:, order]
            for s in range(0, num_pairs, cfg.batch_size):
                yield order[..., s : s + cfg.batch_size]

    # ------------------------------------------------------------------ one step
    def step(
        self,
        frames: np.ndarray,
        offsets: np.ndarray,
        pairs: SnippetPairs,
        idx: np.ndarray,
        dynamics: Transitions | None = None,
        true_rewards: np.ndarray | None = None,
    ) -> StepStats:
        """One optimiser step on the pairs `idx` ([B], or [M, B]: each ensemble member's own pairs), plus the
        inverse-dynamics loss on as many of the `dynamics` transitions where cfg.inverse_dynamics > 0."""
        if idx.ndim == 1:
            loss, returns, labels, seen = self.batch_loss(frames, offsets, pairs, idx, None, true_rewards)
            correct = ranked_correctly(returns.detach().mean(0), labels).item()
        else:
            parts = [
                self.batch_loss(frames, offsets, pairs, member_idx, m, true_rewards) for m, member_idx in enumerate(idx)
            ]
            loss = torch.stack([p[0] for p in parts]).mean()
            correct = float(np.mean([ranked_correctly(p[1].detach()[0], p[2]).item() for p in parts]))
            seen = sum(p[3] for p in parts)
        ranking_loss = loss.item()  # what the step reports: the T-REX (or oracle) loss, without the auxiliary term
        inverse_right = None
        if self.inverse is not None and dynamics is not None:
            aux, right = self.inverse.loss(self.net, frames, dynamics, idx.shape[-1], self.dynamics_rng)
            loss, inverse_right = loss + self.cfg.inverse_dynamics * aux, right.item()
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
        return StepStats(ranking_loss * idx.shape[-1], correct, seen, inverse_right)

    def batch_loss(
        self,
        frames: np.ndarray,
        offsets: np.ndarray,
        pairs: SnippetPairs,
        idx: np.ndarray,
        member: int | None = None,
        true_rewards: np.ndarray | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """(loss, returns [M, B, 2], labels, frames) of the pairs `idx` for every member, or for one `member`: each
        snippet augmented with its own draw (cfg.augment), plus the consistency term between two such views. Under
        supervision true_returns the loss is the oracle's: each snippet's true return (the sum of `true_rewards`
        over the frames the net sees) against its predicted one."""
        labels = torch.from_numpy(pairs.label[idx]).to(self.device)
        obs, seg, flat = self._gather(frames, offsets, pairs, idx)
        returns, rewards = self._returns(augment(obs, seg, self.cfg.augment, self.generator), seg, len(idx), member)
        if self.cfg.supervision == "true_returns":
            if true_rewards is None:
                raise ValueError(NEEDS_TRUTH)
            truth = torch.from_numpy(true_rewards[flat]).float().to(self.device)
            targets = truth.new_zeros(2 * len(idx)).index_add_(0, seg, truth)  # summed as `_returns` sums the net's
            loss = true_return_loss(returns, targets.view(len(idx), 2))
        else:
            loss = trex_loss(returns, rewards, labels, self.cfg.l1_reg)
        if self.cfg.augment_consistency > 0:
            other = self._returns(augment(obs, seg, self.cfg.augment, self.generator), seg, len(idx), member)[1]
            loss = loss + self.cfg.augment_consistency * (rewards - other).pow(2).mean()
        return loss, returns, labels, rewards.shape[1]

    def snippet_returns(
        self, frames: np.ndarray, offsets: np.ndarray, pairs: SnippetPairs, idx: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member returns [M, B, 2] of the pairs `idx`, and the per-frame rewards [M, F] behind them."""
        obs, seg, _ = self._gather(frames, offsets, pairs, idx)
        return self._returns(obs, seg, len(idx))

    def _gather(
        self, frames: np.ndarray, offsets: np.ndarray, pairs: SnippetPairs, idx: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """The frames of the pairs `idx` (stacked), the snippet each belongs to, and their flat indices."""
        flat, segment = pairs.frame_index(idx, offsets)
        first = offsets[pairs.demo[idx]].reshape(-1)[segment]  # where each frame's demo starts
        stacked = stack_frames(frames, flat, first, self.net.frame_stack)
        obs = torch.from_numpy(stacked).to(self.device, non_blocking=True)
        return obs, torch.from_numpy(segment).to(self.device), flat

    def _returns(
        self, obs: torch.Tensor, seg: torch.Tensor, num_pairs: int, member: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            rewards = self.net.member_rewards(obs, member).float()
        returns = rewards.new_zeros(rewards.shape[0], 2 * num_pairs).index_add_(1, seg, rewards)
        return returns.view(rewards.shape[0], num_pairs, 2), rewards

    @torch.no_grad()
    def accuracy(self, frames: np.ndarray, offsets: np.ndarray, pairs: SnippetPairs) -> float:
        """Share of pairs whose better snippet gets the higher predicted return (ensemble mean; ties count half)."""
        self.net.eval()
        score = 0.0
        for idx in frame_chunks(pairs, PREDICT_BATCH):
            returns = self.snippet_returns(frames, offsets, pairs, idx)[0].mean(0)
            score += ranked_correctly(returns, torch.from_numpy(pairs.label[idx]).to(self.device)).item()
        self.net.train()
        return score / len(pairs)


class EarlyStopping:
    """Early stopping's memory: the best validation accuracy, its step and weights, and the checks since."""

    def __init__(self, patience: int):
        self.patience = patience
        self.accuracy: float | None = None
        self.step, self.checks_without_gain = 0, 0
        self.state: dict | None = None

    def update(self, accuracy: float | None, step: int, net: RewardNet) -> None:
        if accuracy is None or self.accuracy is None or accuracy > self.accuracy:
            self.accuracy, self.step, self.checks_without_gain = accuracy, step, 0
            self.state = copy.deepcopy(net.state_dict())
        else:
            self.checks_without_gain += 1

    def should_stop(self, accuracy: float | None) -> bool:
        """Whether `patience` checks in a row have not beaten the best (never without validation pairs)."""
        return accuracy is not None and self.checks_without_gain >= self.patience

    def restore(self, net: RewardNet) -> None:
        if self.state is not None:
            net.load_state_dict(self.state)


class _Window:
    """The training loss and accuracy since the last validation check, and the inverse-dynamics head's."""

    def __init__(self):
        self.loss, self.correct, self.pairs = 0.0, 0.0, 0
        self.inverse: list[float] = []

    def add(self, stats: StepStats, pairs: int) -> None:
        self.loss, self.correct, self.pairs = (
            self.loss + stats.loss_sum,
            self.correct + stats.correct,
            self.pairs + pairs,
        )
        if stats.inverse_right is not None:
            self.inverse.append(stats.inverse_right)

    def take(self) -> dict[str, float | None]:
        """The window's mean loss and training accuracy per pair, and the inverse-dynamics head's mean share right
        per step (None without that loss); the window starts anew."""
        out = {
            "loss": self.loss / self.pairs,
            "train_acc": self.correct / self.pairs,
            "inverse_acc": float(np.mean(self.inverse)) if self.inverse else None,
        }
        self.loss, self.correct, self.pairs, self.inverse = 0.0, 0.0, 0, []
        return out


def _progress(row: dict, total_steps: int) -> str:
    pairs_per_s = row["pairs_per_s"]
    eta = (total_steps - row["step"]) * row["pairs"] / row["step"] / pairs_per_s if pairs_per_s > 0 else math.nan
    done = 100 * row["step"] / total_steps
    return (
        f"step {row['step']:,}/{total_steps:,} ({done:.0f}%) | pairs/s {pairs_per_s:,.0f}"
        f" | loss {fmt(row['loss'], '.3f')} | train acc {fmt(row['train_acc'], '.3f')}"
        f" | val acc {fmt(row['val_acc'], '.3f')} | eta {fmt_duration(eta)}"
    )


class TrainLog:
    """train_log.csv (one row per validation check) and TensorBoard scalars under run_dir/tb, both started anew:
    an interrupted run's partial logs are replaced, never appended to."""

    FIELDS = ("step", "pairs", "loss", "train_acc", "val_acc", "best_val_acc", "inverse_acc", "pairs_per_s", "wall_s")

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
