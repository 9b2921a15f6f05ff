"""`RewardTrainer`: fits a `RewardNet` to snippet pairs with the Bradley-Terry loss, many pairs per step.

A batch is one gather of all its snippets' frames and one forward pass; snippet returns are segment sums of the
per-frame rewards, so snippets of different lengths need no padding. Validation accuracy on pairs from held-out
demos drives early stopping, and the best weights are kept.
"""

from __future__ import annotations

import copy
import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from toolkit.logger import fmt, fmt_duration
from trex.config import TrexConfig
from trex.pairs import SnippetPairs
from trex.reward_net import RewardNet

EVAL_CHUNK = 256  # pairs per no-grad forward pass when measuring accuracy


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
    def __init__(self, net: RewardNet, cfg: TrexConfig, device: torch.device, run_dir: str | Path | None = None,
                 verbose: bool = True):
        self.net, self.cfg, self.device, self.verbose = net.to(device), cfg, device, verbose
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.amp = cfg.amp and device.type == "cuda"

    def snippet_returns(self, frames: np.ndarray, offsets: np.ndarray, pairs: SnippetPairs,
                        idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member returns [M, B, 2] of the pairs `idx`, and the per-frame rewards [M, F] behind them."""
        flat, segment = pairs.frame_index(idx, offsets)
        obs = torch.from_numpy(frames[flat]).to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            rewards = self.net.member_rewards(obs).float()
        seg = torch.from_numpy(segment).to(self.device)
        returns = rewards.new_zeros(rewards.shape[0], 2 * len(idx)).index_add_(1, seg, rewards)
        return returns.view(rewards.shape[0], len(idx), 2), rewards

    def loss(self, returns: torch.Tensor, rewards: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Bradley-Terry cross-entropy of each member, plus L1 on the per-frame rewards (per pair, as T-REX)."""
        members, batch = returns.shape[:2]
        bt = F.cross_entropy(returns.reshape(members * batch, 2), labels.repeat(members))
        return bt + self.cfg.l1_reg * rewards.abs().sum() / (members * batch)

    @torch.no_grad()
    def accuracy(self, frames: np.ndarray, offsets: np.ndarray, pairs: SnippetPairs) -> float:
        """Share of pairs whose better snippet gets the higher predicted return (ensemble mean; ties count half)."""
        self.net.eval()
        score = 0.0
        for s in range(0, len(pairs), EVAL_CHUNK):
            idx = np.arange(s, min(s + EVAL_CHUNK, len(pairs)))
            returns = self.snippet_returns(frames, offsets, pairs, idx)[0].mean(0)
            score += _correct(returns, torch.from_numpy(pairs.label[idx]).to(self.device)).item()
        self.net.train()
        return score / len(pairs)

    def fit(self, frames: np.ndarray, offsets: np.ndarray, train: SnippetPairs, val: SnippetPairs | None,
            rng: np.random.Generator) -> TrainResult:
        """Train for at most cfg.epochs passes; validate every cfg.eval_interval pairs; restore the best weights."""
        cfg = self.cfg
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        total_steps = cfg.epochs * steps_per_epoch
        log = _TrainLog(self.run_dir) if self.run_dir is not None else None
        best_acc, best_state, best_step, checks_without_gain = None, None, 0, 0
        step = pairs_seen = frames_seen = 0
        train_time, t0 = 0.0, time.time()
        window = {"loss": 0.0, "correct": 0.0, "pairs": 0}
        next_check, stopped = cfg.eval_interval, False
        self.net.train()
        for _epoch in range(cfg.epochs):
            order = rng.permutation(len(train))
            for s in range(0, len(train), cfg.batch_size):
                ts = time.time()
                idx = order[s:s + cfg.batch_size]
                labels = torch.from_numpy(train.label[idx]).to(self.device)
                returns, rewards = self.snippet_returns(frames, offsets, train, idx)
                loss = self.loss(returns, rewards, labels)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                window["loss"] += loss.item() * len(idx)
                window["correct"] += _correct(returns.detach().mean(0), labels).item()
                train_time += time.time() - ts
                window["pairs"] += len(idx)
                step, pairs_seen, frames_seen = step + 1, pairs_seen + len(idx), frames_seen + rewards.shape[1]
                if pairs_seen < next_check and step < total_steps:
                    continue
                next_check += cfg.eval_interval
                val_acc = self.accuracy(frames, offsets, val) if val is not None and len(val) else None
                if val_acc is None or best_acc is None or val_acc > best_acc:
                    best_acc, best_step, checks_without_gain = val_acc, step, 0
                    best_state = copy.deepcopy(self.net.state_dict())
                else:
                    checks_without_gain += 1
                row = {"step": step, "pairs": pairs_seen, "loss": window["loss"] / window["pairs"],
                       "train_acc": window["correct"] / window["pairs"], "val_acc": val_acc, "best_val_acc": best_acc,
                       "pairs_per_s": pairs_seen / max(train_time, 1e-9), "wall_s": time.time() - t0}
                window = {"loss": 0.0, "correct": 0.0, "pairs": 0}
                if log is not None:
                    log.write(row)
                if self.verbose:
                    print(_progress(row, total_steps), flush=True)
                if val_acc is not None and checks_without_gain >= cfg.patience:
                    stopped = True
                    break
            if stopped:
                break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        if log is not None:
            log.close()
        self.net.eval()
        return TrainResult(step, pairs_seen, best_acc, best_step, stopped, time.time() - t0, train_time,
                           pairs_seen / max(train_time, 1e-9), frames_seen / max(train_time, 1e-9))


def _correct(returns: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Number of pairs [B, 2] ranked as labelled; a tie counts half."""
    diff = returns[:, 1] - returns[:, 0]
    sign = torch.where(labels == 1, diff, -diff)
    return (sign > 0).float().sum() + 0.5 * (sign == 0).float().sum()


def _progress(row: dict, total_steps: int) -> str:
    pairs_per_s = row["pairs_per_s"]
    eta = (total_steps - row["step"]) * row["pairs"] / row["step"] / pairs_per_s if pairs_per_s > 0 else math.nan
    done = 100 * row["step"] / total_steps
    return (f"step {row['step']:,}/{total_steps:,} ({done:.0f}%) | pairs/s {pairs_per_s:,.0f}"
            f" | loss {fmt(row['loss'], '.3f')} | train acc {fmt(row['train_acc'], '.3f')}"
            f" | val acc {fmt(row['val_acc'], '.3f')} | eta {fmt_duration(eta)}")


class _TrainLog:
    """train_log.csv (one row per validation check) and TensorBoard scalars under run_dir/tb."""

    FIELDS = ("step", "pairs", "loss", "train_acc", "val_acc", "best_val_acc", "pairs_per_s", "wall_s")

    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        run_dir.mkdir(parents=True, exist_ok=True)
        self.file = (run_dir / "train_log.csv").open("w", newline="")
        self.csv = csv.DictWriter(self.file, self.FIELDS)
        self.csv.writeheader()
        self.tb = SummaryWriter(str(run_dir / "tb"))

    def write(self, row: dict) -> None:
        self.csv.writerow({k: "" if row[k] is None else row[k] for k in self.FIELDS})
        self.file.flush()
        for k in self.FIELDS[2:]:
            if row[k] is not None:
                self.tb.add_scalar(f"reward/{k}", row[k], row["pairs"])

    def close(self) -> None:
        self.file.close()
        self.tb.close()
