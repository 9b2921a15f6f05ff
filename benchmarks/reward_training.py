"""Reward-model training speed: the 2020 study's loop vs our RewardTrainer vs the network's floor, on the same data.

    python benchmarks/reward_training.py --out bench.json [--demo_dir runs/demos] [--seconds 20] [--quality_pairs 400]

(a) 2020 loop: study2020 net, one pair per optimizer step, each snippet forwarded on its own, full-frame snippets of
    20-99 frames without subsampling (the study's train_reward.py: min 20, max 100, np.random.randint's open end),
    Adam lr 5e-5, weight decay 0.005, L1 0.001.
(b) RewardTrainer with the default TrexConfig (fast net, frame_stride 2, 20-60 frame windows, 32 pairs per step).
(c) floor: forward+backward+Adam of the default net on batches of FLOOR_BATCH frames, in frames/s.
floor_ratio = (b) frames/s / (c) frames/s; speedup = (b) pairs/s / (a) pairs/s.
(d) augmentation cost: (b) with each augmentation of trex/reward/augment.py (and shift with the consistency term),
    each run beside a plain run on the same pairs, alternating, so `augmentation[name]["ratio"]` = pairs/s with it /
    without it, measured side by side (1 = free; the target is at least 0.7).
Quality (unless --quality_pairs 0): held-out Spearman of the fast and the study2020 net, each trained by
RewardTrainer on the same number of pairs with its own snippet design. Without --demo_dir the data are synthetic
marker demos (trex/demos/synthetic.py), which say little about Procgen; pass real demos for that.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from toolkit.files import write_json
from trex.config import TrexConfig
from trex.demos.store import load_demos
from trex.demos.synthetic import marker_demos
from trex.reward.evaluation import TrainingProfile, evaluate_demos, predict_rewards
from trex.reward.net import RewardNet
from trex.reward.pairs import concat_obs, create_training_data
from trex.reward.trainer import RewardTrainer

FLOOR_BATCH = 1280
STUDY_2020_SNIPPETS = {"min_len": 20, "max_len": 99}
STUDY_2020 = {"lr": 5e-5, "weight_decay": 0.005, "l1": 0.001}


def loop_2020(frames, offsets, pairs, seconds: float) -> dict:
    """One pair per step, each snippet its own forward pass, as the 2020 code did."""
    torch.manual_seed(0)
    net = RewardNet("study2020")
    opt = torch.optim.Adam(net.parameters(), lr=STUDY_2020["lr"], weight_decay=STUDY_2020["weight_decay"])
    done = seen = 0
    t0 = time.time()
    while time.time() - t0 < seconds and done < len(pairs):
        flat, segment = pairs.frame_index(np.array([done]), offsets)
        r0 = net.member_rewards(torch.from_numpy(frames[flat[segment == 0]]))[0]
        r1 = net.member_rewards(torch.from_numpy(frames[flat[segment == 1]]))[0]
        logits = torch.stack([r0.sum(), r1.sum()])[None]
        loss = F.cross_entropy(logits, torch.from_numpy(pairs.label[done : done + 1]))
        loss = loss + STUDY_2020["l1"] * (r0.abs().sum() + r1.abs().sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
        done, seen = done + 1, seen + len(flat)
    wall = time.time() - t0
    return {"pairs_per_s": done / wall, "frames_per_s": seen / wall, "pairs": done, "frames_per_pair": seen / done}


def floor(architecture: str, seconds: float) -> dict:
    torch.manual_seed(0)
    net = RewardNet(architecture)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    obs = torch.randint(0, 256, (FLOOR_BATCH, 64, 64, 3), dtype=torch.uint8)
    net(obs).sum().backward()  # warm-up
    n, t0 = 0, time.time()
    while time.time() - t0 < seconds:
        opt.zero_grad()
        net(obs).sum().backward()
        opt.step()
        n += FLOOR_BATCH
    return {"frames_per_s": n / (time.time() - t0), "batch": FLOOR_BATCH}


def trainer_run(cfg: TrexConfig, train, test, num_pairs: int, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    pairs = create_training_data(
        train, num_pairs, cfg.min_snippet_length, cfg.max_snippet_length, cfg.frame_stride, True, rng
    )
    frames, offsets = concat_obs(train)
    net = RewardNet(cfg.reward_net)
    result = RewardTrainer(net, cfg, torch.device("cpu"), verbose=False).fit(frames, offsets, pairs, None, rng)
    profile = TrainingProfile.of(predict_rewards(net, train, "cpu"))
    quality: dict = dict(evaluate_demos(net, test, "cpu", profile).figures) if test else {}
    return {
        "pairs_per_s": result.pairs_per_s,
        "frames_per_s": result.frames_per_s,
        "pairs": result.pairs_seen,
        "frames_per_pair": pairs.frames_per_pair(),
    }, quality


AUGMENT_VARIANTS: dict[str, dict[str, Any]] = {
    "shift": {"augment": ["shift"]},
    "colour": {"augment": ["colour"]},
    "conv": {"augment": ["conv"]},
    "shift+colour": {"augment": ["shift", "colour"]},
    "shift, consistency 0.1": {"augment": ["shift"], "augment_consistency": 0.1},
}


def augmentation_cost(cfg: TrexConfig, train, num_pairs: int, repeats: int, variants: list[str]) -> dict:
    """(d): each augmentation's pairs/s over a plain run's, the two alternating `repeats` times on the same pairs
    (one pass over them each)."""
    cfg = dataclasses.replace(cfg, epochs=1)
    out = {}
    for name in variants:
        keys = AUGMENT_VARIANTS[name]
        plain, augmented = [], []
        for _ in range(repeats):
            plain.append(trainer_run(cfg, train, [], num_pairs)[0]["pairs_per_s"])
            augmented.append(trainer_run(dataclasses.replace(cfg, **keys), train, [], num_pairs)[0]["pairs_per_s"])
        out[name] = {
            "pairs_per_s": float(np.mean(augmented)),
            "plain_pairs_per_s": float(np.mean(plain)),
            "ratio": float(np.mean(augmented) / np.mean(plain)),
            "pairs": num_pairs,
        }
        print(f"(d) augmentation {name}: {out[name]['ratio']:.2f}x the plain trainer's pairs/s", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file for the figures")
    parser.add_argument("--demo_dir", default="", help="real demos (train and test level sets); synthetic if empty")
    parser.add_argument("--seconds", type=float, default=20.0, help="time per throughput measurement")
    parser.add_argument("--quality_pairs", type=int, default=400, help="pairs per quality run (0: skip)")
    parser.add_argument("--quality_seeds", type=int, default=3, help="seeds per quality comparison (mean reported)")
    parser.add_argument("--augment_repeats", type=int, default=2, help="plain/augmented alternations per variant")
    parser.add_argument(
        "--augmentations",
        default="",
        help=f"variants of (d), ';'-separated (default all: {'; '.join(AUGMENT_VARIANTS)})",
    )
    args = parser.parse_args(argv)
    if args.demo_dir:
        train, test = load_demos(args.demo_dir, "train"), load_demos(args.demo_dir, "held_out")
    else:
        rng = np.random.default_rng(0)
        train, test = marker_demos(24, rng, min_len=100, max_len=300), marker_demos(16, rng, "held_out", 100, 300)
    frames, offsets = concat_obs(train)

    study_pairs = create_training_data(
        train, 10_000, STUDY_2020_SNIPPETS["min_len"], STUDY_2020_SNIPPETS["max_len"], 1, True, np.random.default_rng(0)
    )
    a = loop_2020(frames, offsets, study_pairs, args.seconds)
    print(f"(a) 2020 loop: {a['pairs_per_s']:.1f} pairs/s, {a['frames_per_s']:.0f} frames/s", flush=True)

    cfg = dataclasses.replace(TrexConfig(), eval_interval=10**9)
    b_pairs = max(cfg.batch_size * 10, int(a["pairs_per_s"] * args.seconds * 8))
    b, _ = trainer_run(cfg, train, [], b_pairs)
    print(f"(b) RewardTrainer (defaults): {b['pairs_per_s']:.1f} pairs/s, {b['frames_per_s']:.0f} frames/s", flush=True)

    c = floor(cfg.reward_net, args.seconds)
    c_2020 = floor("study2020", args.seconds)
    print(
        f"(c) floor {cfg.reward_net}: {c['frames_per_s']:.0f} frames/s; study2020: {c_2020['frames_per_s']:.0f}",
        flush=True,
    )
    variants = [v for v in args.augmentations.split(";") if v] if args.augmentations else list(AUGMENT_VARIANTS)
    augmentation = augmentation_cost(cfg, train, b_pairs, args.augment_repeats, variants)
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
        "data": args.demo_dir or "synthetic marker demos (24 train, 16 test, 100-300 frames)",
        "floor_ratio": b["frames_per_s"] / c["frames_per_s"],
        "speedup": b["pairs_per_s"] / a["pairs_per_s"],
        "loop_2020": a,
        "reward_trainer": b,
        "floor": c,
        "floor_study2020": c_2020,
        "augmentation": augmentation,
    }

    if args.quality_pairs:
        old = dataclasses.replace(
            cfg,
            reward_net="study2020",
            frame_stride=1,
            min_snippet_length=STUDY_2020_SNIPPETS["min_len"],
            max_snippet_length=STUDY_2020_SNIPPETS["max_len"],
        )
        out["quality"] = {"pairs": args.quality_pairs, "seeds": args.quality_seeds}
        for name, qcfg in (("fast_default", cfg), ("study2020_2020_snippets", old)):
            runs = [trainer_run(qcfg, train, test, args.quality_pairs, seed) for seed in range(args.quality_seeds)]
            spearman = [q["spearman"] for _, q in runs]
            out["quality"][name] = {
                "held_out": [q for _, q in runs],
                "spearman_mean": float(np.mean(spearman)),
                "pairs_per_s": float(np.mean([speed["pairs_per_s"] for speed, _ in runs])),
            }
            print(
                f"quality {name}: held-out spearman {np.round(spearman, 3).tolist()}, mean {np.mean(spearman):.3f}",
                flush=True,
            )
    write_json(args.out, out)
    print(json.dumps({k: out[k] for k in ("floor_ratio", "speedup")}), flush=True)
    return out


if __name__ == "__main__":
    main()
