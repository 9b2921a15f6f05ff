"""Reward learning end to end: correlations on constructed cases, a learning test on synthetic marker demos,
CPU determinism, the sweep, and the `train` command (outputs, no silent overwrite, corrupt demos)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trex.config import TrexConfig
from trex.demo_store import write_demos
from trex.evaluation import correlations, evaluate_demos, pair_accuracy
from trex.pairs import concat_obs, create_training_data
from trex.reward_learning import run_sweep
from trex.reward_net import RewardNet
from trex.synthetic_demos import as_written, marker_demos
from trex.trainer import RewardTrainer

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


def _fit(cfg: TrexConfig, train, seed: int) -> RewardNet:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    pairs = create_training_data(train, cfg.num_pairs, cfg.min_snippet_length, cfg.max_snippet_length,
                                 cfg.frame_stride, True, rng)
    frames, offsets = concat_obs(train)
    net = RewardNet(cfg.reward_net, cfg.ensemble_size)
    RewardTrainer(net, cfg, torch.device("cpu"), verbose=False).fit(frames, offsets, pairs, None, rng)
    return net


def test_reward_net_learns_to_rank_held_out_marker_demos():
    """Return = number of frames with a bright marker; a trained net must rank unseen demos by it."""
    rng = np.random.default_rng(0)
    train, test = marker_demos(16, rng), marker_demos(16, rng, "test")
    cfg = TrexConfig(num_pairs=800, min_snippet_length=8, max_snippet_length=20, frame_stride=2, batch_size=32,
                     learning_rate=3e-3, l1_reg=0.05, epochs=1)
    metrics = evaluate_demos(_fit(cfg, train, 0), test, "cpu")[0]
    assert metrics["spearman"] > 0.8 or metrics["pair_accuracy"] > 0.8, metrics
    assert metrics["length_baseline"]["spearman"] < 0.5  # length alone does not explain these returns


def test_training_is_deterministic_on_cpu():
    train = marker_demos(4, np.random.default_rng(1), min_len=10, max_len=20)
    cfg = TrexConfig(num_pairs=48, min_snippet_length=4, max_snippet_length=8, batch_size=16, epochs=1)
    a, b = _fit(cfg, train, 5).state_dict(), _fit(cfg, train, 5).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _demo_dir(path: Path, train: int, test: int) -> Path:
    rng = np.random.default_rng(2)
    write_demos(path, as_written(marker_demos(train, rng, min_len=12, max_len=30)
                                 + marker_demos(test, rng, "test", min_len=12, max_len=30)))
    return path


TINY = ["--num_pairs", "64", "--batch_size", "16", "--epochs", "1", "--min_snippet_length", "4",
        "--max_snippet_length", "8", "--eval_interval", "32", "--num_demos", "10"]


def _train_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "trex/reward_model.py", "train", *TINY, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_train_command_writes_metrics_and_never_overwrites_another_config(tmp_path):
    demos, run = _demo_dir(tmp_path / "demos", 10, 5), tmp_path / "run"
    done = _train_cli("--demo_dir", str(demos), "--run_dir", str(run))
    assert done.returncode == 0, done.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("train_levels", "test_levels"):
        assert {"pearson", "spearman", "kendall", "pair_accuracy", "n_demos", "length_baseline"} <= set(metrics[key])
        assert set(metrics[key]["length_baseline"]) == {"pearson", "spearman", "kendall"}
    assert metrics["test_levels"]["n_demos"] == 5 and metrics["train_levels"]["n_demos"] == 2  # the validation demos
    assert 0.0 <= metrics["label_noise"] <= 1.0
    for name in ("reward_model.pt", "train_log.csv", "config.yaml", "versions.json", "summary.json",
                 "predicted_vs_true.png", "cumulative_reward.png", "reward_by_time.png"):
        assert (run / name).is_file(), name
    assert list((run / "tb").iterdir())
    model_bytes = (run / "reward_model.pt").read_bytes()
    other = _train_cli("--demo_dir", str(demos), "--run_dir", str(run), "--learning_rate", "0.01")
    assert other.returncode == 2 and other.stderr.strip().startswith("error:") and "reward_model.pt" in other.stderr
    assert "Traceback" not in other.stderr and (run / "reward_model.pt").read_bytes() == model_bytes
    (run / "metrics.json").unlink()  # as if killed between saving the model and evaluating it
    again = _train_cli("--demo_dir", str(demos), "--run_dir", str(run))
    assert again.returncode == 0, again.stderr
    assert json.loads((run / "metrics.json").read_text())["test_levels"]["n_demos"] == 5


def test_train_command_refuses_a_corrupt_demo(tmp_path):
    demos = _demo_dir(tmp_path / "demos", 4, 2)
    victim = sorted(demos.glob("*.npz"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    done = _train_cli("--demo_dir", str(demos), "--run_dir", str(tmp_path / "run"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error:") and victim.name in done.stderr
    assert "Traceback" not in done.stderr


def test_sweep_writes_its_figure(tmp_path):
    demos = _demo_dir(tmp_path / "demos", 8, 4)
    cfg = TrexConfig(demo_dir=str(demos), run_dir=str(tmp_path / "sweep"), num_pairs=32, batch_size=16, epochs=1,
                     min_snippet_length=4, max_snippet_length=8, sweep_num_demos=[5, 8], sweep_seeds=1, seed=3)
    result = run_sweep(cfg)
    assert [p["num_demos"] for p in result["summary"]] == [5, 8]
    assert [(p["num_demos"], p["seed"]) for p in result["points"]] == [(5, 3), (8, 3)]
    assert (tmp_path / "sweep" / "sweep.png").is_file() and (tmp_path / "sweep" / "sweep.json").is_file()
    assert (tmp_path / "sweep" / "sweep" / "n8_s0" / "reward_model.pt").is_file()
    again = run_sweep(cfg)  # finished sub-runs are reused, not retrained
    assert again["points"] == result["points"]
