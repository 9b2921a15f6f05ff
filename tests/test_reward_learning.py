"""Reward learning end to end: correlations and intervals on constructed cases, demo choice by hand, a learning
test on synthetic marker demos, CPU determinism, the sweep over demos and levels, and the `train` command (outputs,
no silent overwrite, corrupt demos, a killed run rerun to the uninterrupted result)."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from trex.config import TrexConfig
from trex.demos.store import write_demos
from trex.demos.synthetic import as_written, marker_demos
from trex.reward.demo_count_curve import run_sweep
from trex.reward.evaluation import (
    TrainingProfile,
    bootstrap_ci,
    centred_figures,
    centred_returns,
    correlations,
    evaluate_demos,
    evaluate_returns,
    pair_accuracy,
    predict_rewards,
    seed_interval,
)
from trex.reward.fit import choose_demos, return_bins

ROOT = Path(__file__).resolve().parents[1]


def test_correlations_on_a_monotone_case():
    true, pred = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 4.0, 9.0, 16.0])
    c = correlations(true, pred)
    assert c["spearman"] == pytest.approx(1.0) and c["kendall"] == pytest.approx(1.0)
    assert c["pearson"] == pytest.approx(25 / math.sqrt(5 * 129))  # sum dx*dy / sqrt(sum dx^2 * sum dy^2)
    assert correlations(true, -pred)["kendall"] == pytest.approx(-1.0)
    assert correlations(true, np.ones(4)) == {"pearson": None, "spearman": None, "kendall": None}


def test_pair_accuracy_by_hand():
    # distinct-return pairs: (0,1) (0,2) (0,3) (1,2) (1,3); only (1,2) is ordered wrongly
    assert pair_accuracy([1, 2, 3, 3], [1, 3, 2, 5]) == pytest.approx(4 / 5)
    assert pair_accuracy([1, 2], [5, 5]) == pytest.approx(0.5)  # a predicted tie counts half
    assert pair_accuracy([2, 2], [1, 3]) is None


def test_bootstrap_interval_holds_the_estimate_and_a_perfect_ranking_has_no_width():
    rng = np.random.default_rng(0)
    true = rng.normal(size=60)
    noisy = true + rng.normal(size=60)
    ci = bootstrap_ci(true, noisy, np.random.default_rng(1))
    point = correlations(true, noisy)
    for k in ("pearson", "spearman", "kendall"):
        assert ci[k][0] < point[k] < ci[k][1] and ci[k][1] - ci[k][0] < 0.6
    assert bootstrap_ci(true, 2 * true + 1, np.random.default_rng(1))["spearman"] == [1.0, 1.0]
    assert bootstrap_ci(true[:2], true[:2], rng)["kendall"] is None  # too few demos to resample
    # several models on the same demos: the interval of their mean correlation, demos resampled alike for all
    assert bootstrap_ci(true, np.stack([true, -true]), np.random.default_rng(1))["spearman"] == [0.0, 0.0]
    assert bootstrap_ci(true, np.stack([noisy, noisy]), np.random.default_rng(1)) == ci


def test_centred_returns_ignore_a_constant_per_frame_reward_that_flips_the_plain_figure():
    """T-REX cannot see a constant added to every frame's reward; summed over episodes whose length tracks their
    return, its sign decides the plain correlation. The centred figures are the same whatever the constant."""
    true = np.array([0.0, 2.0, 3.0, 5.0, 8.0, 9.0])
    lengths = np.array([40.0, 60.0, 50.0, 90.0, 100.0, 120.0])
    learned = np.array([0.1, 0.6, 1.2, 0.9, 2.0, 1.7])  # what the frames' rewards add up to beyond a constant
    offset = 0.004  # the model's mean reward per frame on its training demos, beyond the constant
    by_hand = learned - lengths * offset
    np.testing.assert_allclose(centred_returns(learned, lengths, offset), by_hand)
    # the constant reaches the training demos' frames too, so their offset carries it
    plus, minus = (
        evaluate_returns(true, learned + 0.05 * lengths, lengths, TrainingProfile(offset + 0.05, np.zeros(0))),
        evaluate_returns(true, learned - 0.05 * lengths, lengths, TrainingProfile(offset - 0.05, np.zeros(0))),
    )
    assert plus["spearman"] > 0.9 and minus["spearman"] < -0.5  # the constant's sign flips the plain figure
    assert plus["centred"]["spearman"] == pytest.approx(minus["centred"]["spearman"])
    for k in ("pearson", "spearman", "kendall"):
        assert centred_figures(plus)[k] == pytest.approx(centred_figures(minus)[k])
        assert centred_figures(plus)[k] == pytest.approx(plus["centred"][k])
        np.testing.assert_allclose(plus["centred"]["ci95"][k], minus["centred"]["ci95"][k])
    assert plus["centred"]["spearman"] == pytest.approx(correlations(true, by_hand)["spearman"])
    assert plus["offset"]["shift"] == pytest.approx((learned + 0.05 * lengths).sum() / lengths.sum() - offset - 0.05)


def test_seed_interval_by_hand():
    got = seed_interval([0.5, 0.7, None, 0.9])  # mean 0.7, sd 0.2, t(0.975, 2) = 4.3027
    assert got["n"] == 3 and got["mean"] == pytest.approx(0.7)
    assert got["ci95_high"] - got["mean"] == pytest.approx(4.302653 * 0.2 / math.sqrt(3), rel=1e-5)
    assert seed_interval([0.4])["ci95_low"] is None and seed_interval([])["mean"] is None


def test_return_bins_pick_round_robin_over_equal_width_bins():
    returns = np.array([0.0, 0.5, 1.0, 9.0, 9.5, 10.0, 10.0, 4.0])  # bins [0,2.5) [2.5,5) [5,7.5) [7.5,10]
    picks = return_bins(returns, np.arange(8), 5, 4, np.random.default_rng(0))
    bins = [min(int(returns[i] // 2.5), 3) for i in picks]
    assert bins[:3] == [0, 1, 3] and bins[3:] == [0, 3]  # the empty third bin is skipped; 1 has one demo only
    assert len(set(picks)) == 5
    assert sorted(return_bins(returns, np.arange(8), 20, 4, np.random.default_rng(0))) == list(range(8))


def test_choose_demos_drops_returns_above_max_return_and_validates_across_the_range():
    demos = marker_demos(20, np.random.default_rng(3))
    rets = np.array([d.record.ret for d in demos])
    cfg = TrexConfig(num_demos=20, max_return=0.5, val_fraction=0.25, demo_selection="return_bins")
    train, val = choose_demos(cfg, demos, np.random.default_rng(0))
    cap = rets.min() + 0.5 * (rets.max() - rets.min())
    assert len(train) + len(val) == int((rets <= cap).sum()) and all(d.record.ret <= cap for d in train + val)
    assert not {id(d) for d in train} & {id(d) for d in val}
    assert len(val) == round(0.25 * (len(train) + len(val)))


def test_reward_net_learns_to_rank_held_out_marker_demos(fit_reward_net):
    """Return = number of frames with a bright marker; a trained net must rank unseen demos by it."""
    rng = np.random.default_rng(0)
    train, test = marker_demos(16, rng), marker_demos(16, rng, "held_out")
    cfg = TrexConfig(
        num_pairs=800,
        min_snippet_length=8,
        max_snippet_length=20,
        frame_stride=2,
        batch_size=32,
        learning_rate=3e-3,
        l1_reg=0.05,
        epochs=1,
    )
    net = fit_reward_net(cfg, train, 0)[0]
    metrics = evaluate_demos(net, test, "cpu", TrainingProfile.of(predict_rewards(net, train, "cpu"))).figures
    assert metrics["spearman"] > 0.8 or metrics["pair_accuracy"] > 0.8, metrics
    assert metrics["length_baseline"]["spearman"] < 0.5  # length alone does not explain these returns


def test_training_is_deterministic_on_cpu(fit_reward_net):
    train = marker_demos(4, np.random.default_rng(1), min_len=10, max_len=20)
    cfg = TrexConfig(num_pairs=48, min_snippet_length=4, max_snippet_length=8, batch_size=16, epochs=1)
    a, b = (fit_reward_net(cfg, train, 5)[0].state_dict() for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _demo_dir(path: Path, train: int, test: int, seed: int = 2) -> Path:
    """Synthetic demos: `train` to train on, and `test` each of new training-level episodes and held-out ones."""
    rng = np.random.default_rng(seed)
    write_demos(
        path,
        as_written(
            marker_demos(train, rng, min_len=12, max_len=30)
            + marker_demos(test, rng, "new_episodes", min_len=12, max_len=30)
            + marker_demos(test, rng, "held_out", min_len=12, max_len=30)
        ),
    )
    return path


TINY = [
    "--num_pairs",
    "64",
    "--batch_size",
    "16",
    "--epochs",
    "1",
    "--min_snippet_length",
    "4",
    "--max_snippet_length",
    "8",
    "--eval_interval",
    "32",
    "--num_demos",
    "10",
]


def _train_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "trex/reward_model.py", "train", *TINY, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_command_writes_metrics_and_never_overwrites_another_config(tmp_path):
    demos, run = _demo_dir(tmp_path / "demos", 10, 5), tmp_path / "run"
    done = _train_cli("--demo_dir", str(demos), "--run_dir", str(run))
    assert done.returncode == 0, done.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("new_episodes", "held_out"):
        assert {"pearson", "spearman", "kendall", "ci95", "pair_accuracy", "n_demos"} <= set(metrics[key])
        assert set(metrics[key]["length_baseline"]) == {"pearson", "spearman", "kendall", "ci95"}
        low, high = metrics[key]["ci95"]["spearman"]
        assert low <= metrics[key]["spearman"] <= high
    assert metrics["held_out"]["n_demos"] == metrics["new_episodes"]["n_demos"] == 5  # equal counts
    assert metrics["num_pairs"] == 64  # --num_pairs 64
    assert metrics["label_noise"] * 64 == round(metrics["label_noise"] * 64)  # a share of those 64 pairs
    for name in (
        "reward_model.pt",
        "train_log.csv",
        "config.yaml",
        "versions.json",
        "summary.json",
        "predicted_vs_true.png",
        "cumulative_reward.png",
        "reward_by_time.png",
        "what_the_reward_sees.png",
    ):
        assert (run / name).is_file(), name
    assert list((run / "tb").iterdir())
    labels = metrics["labels"]  # what each pair set can teach, the model's accuracy beside it
    assert labels["train"]["pairs"] == 64 and labels["train"]["against_label"] == metrics["label_noise"]
    assert 0 <= labels["train"]["model_accuracy"] <= 1 and 0 <= labels["train"]["clock_accuracy"] <= 1
    (run / "what_the_reward_sees.png").unlink()
    picture = subprocess.run(
        [sys.executable, "trex/reward_model.py", "picture", *TINY, "--demo_dir", str(demos), "--run_dir", str(run)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert picture.returncode == 0, picture.stderr
    assert (run / "what_the_reward_sees.png").is_file()
    model_bytes = (run / "reward_model.pt").read_bytes()
    other = _train_cli("--demo_dir", str(demos), "--run_dir", str(run), "--learning_rate", "0.01")
    assert other.returncode == 2 and other.stderr.strip().startswith("error:") and "reward_model.pt" in other.stderr
    assert "Traceback" not in other.stderr and (run / "reward_model.pt").read_bytes() == model_bytes
    (run / "metrics.json").unlink()  # as if killed between saving the model and evaluating it
    again = _train_cli("--demo_dir", str(demos), "--run_dir", str(run))
    assert again.returncode == 0, again.stderr
    assert json.loads((run / "metrics.json").read_text())["held_out"]["n_demos"] == 5


def test_train_command_refuses_a_corrupt_demo(tmp_path):
    demos = _demo_dir(tmp_path / "demos", 4, 2)
    victim = sorted(demos.glob("*.npz"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    done = _train_cli("--demo_dir", str(demos), "--run_dir", str(tmp_path / "run"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error:") and victim.name in done.stderr
    assert "Traceback" not in done.stderr


def test_sweep_crosses_demo_counts_with_level_counts_and_resumes(tmp_path):
    demos = _demo_dir(tmp_path / "demos", 8, 4)
    _demo_dir(tmp_path / "demos" / "levels_3", 8, 4, seed=5)  # training demos drawn from 3 levels
    cfg = TrexConfig(
        demo_dir=str(demos),
        run_dir=str(tmp_path / "sweep"),
        num_pairs=32,
        batch_size=16,
        epochs=1,
        min_snippet_length=4,
        max_snippet_length=8,
        sweep_num_demos=[5, 8],
        sweep_demo_levels=[3],
        sweep_seeds=2,
        seed=3,
        name="tiny",
    )
    result = run_sweep(cfg)
    assert [(p["demo_levels"], p["num_demos"], p["seed"]) for p in result["points"]] == [
        (200, 5, 3),
        (200, 5, 4),
        (200, 8, 3),
        (200, 8, 4),
        (3, 5, 3),
        (3, 5, 4),
        (3, 8, 3),
        (3, 8, 4),
    ]
    first = result["summary"][0]
    values = [p["held_out_spearman"] for p in result["points"][:2]]
    assert first["held_out_spearman"]["mean"] == pytest.approx(np.mean(values)) and first["seeds"] == 2
    rows = list(csv.DictReader((tmp_path / "sweep" / "sweep.csv").open()))
    assert len(rows) == 8 and rows[0]["name"] == "tiny" and float(rows[0]["held_out_spearman"]) == values[0]
    assert (tmp_path / "sweep" / "sweep.png").is_file() and (tmp_path / "sweep" / "sweep.json").is_file()
    assert (tmp_path / "sweep" / "sweep" / "L3_n8_s1" / "reward_model.pt").is_file()
    again = run_sweep(cfg)  # finished sub-runs are reused, not retrained
    assert again["points"] == result["points"]


def test_killed_training_rerun_gives_the_uninterrupted_model(tmp_path):
    demos = _demo_dir(tmp_path / "demos", 10, 5)
    args = ["--demo_dir", str(demos), "--num_pairs", "2000", "--eval_interval", "250", "--patience", "100"]
    whole = _train_cli(*args, "--run_dir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    cmd = [sys.executable, "trex/reward_model.py", "train", *TINY, *args, "--run_dir", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    log = tmp_path / "run" / "train_log.csv"
    deadline = time.time() + 120
    while (
        (not log.is_file() or len(log.read_text().splitlines()) < 3) and proc.poll() is None and time.time() < deadline
    ):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "metrics.json").exists(), "the run finished before it could be killed"
    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    timing = ("pairs_per_s", "frames_per_s", "train_time_s", "wall_time_s", "wall_s")
    strip = lambda m: {k: v for k, v in m.items() if k not in timing}
    got, want = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("run", "whole"))
    assert strip(got) == strip(want)
    a, b = (torch.load(tmp_path / d / "reward_model.pt", weights_only=True)["state_dict"] for d in ("run", "whole"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    read_log = lambda d: [
        {k: v for k, v in r.items() if k not in timing} for r in csv.DictReader((tmp_path / d / "train_log.csv").open())
    ]
    logs = [read_log("run"), read_log("whole")]
    assert logs[0] == logs[1]  # no duplicated rows from the killed attempt
    assert len(list((tmp_path / "run" / "tb").iterdir())) == 1  # one events file: the killed run's is gone
