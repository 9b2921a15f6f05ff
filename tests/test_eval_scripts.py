"""test_policy.py and rec_video.py end to end, as a user runs them (subprocess, from another folder)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from baseline_agent.checkpoint import save_checkpoint
from baseline_agent.envs import NUM_ACTIONS, OBS_SHAPE, LevelSet
from baseline_agent.evaluation import run_episodes
from baseline_agent.models import Policy
from trex.reward.net import RewardNet, load_reward_model, save_reward_model

ROOT = Path(__file__).resolve().parents[1]
GAME = "chaser"
TRAIN = {"start_level": 0, "num_levels": 50}


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args, "--torch_threads", "1", "--device", "cpu"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    policy = Policy(NUM_ACTIONS, [4, 8, 8], 32, OBS_SHAPE)
    path = tmp_path_factory.mktemp("run") / "step_0000000512.pt"
    spec = {
        "env_name": GAME,
        "distribution_mode": "easy",
        "num_actions": NUM_ACTIONS,
        "channels": [4, 8, 8],
        "hidden_size": 32,
        "obs_shape": list(OBS_SHAPE),
    }
    save_checkpoint(
        path,
        {
            "model": policy.state_dict(),
            "step": 512,
            "model_spec": spec,
            "config": {"env_name": GAME, "distribution_mode": "easy", **TRAIN},
        },
    )
    return path


def reward_model(path: Path, game: str) -> Path:
    torch.manual_seed(1)
    save_reward_model(path, RewardNet("fast", 1), {"env_name": game, "distribution_mode": "easy"})
    return path


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def assert_one_error_line(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")


def test_same_seed_reproduces_the_mean_on_unseen_levels(ckpt, tmp_path):
    args = ("--load_path", str(ckpt), "--num_episodes", "6", "--num_envs", "3", "--seed", "4")
    first = run("test_policy.py", *args, "--out", "a.json", cwd=tmp_path)
    second = run("test_policy.py", *args, "--out", "b.json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    rets = [ep["ret"] for ep in a["episodes"]]
    assert len(rets) == 6
    assert a["summary"]["return"]["mean"] == pytest.approx(np.mean(rets))
    assert a["summary"]["return"]["mean"] == b["summary"]["return"]["mean"]
    assert all(ep["level_seed"] >= TRAIN["num_levels"] for ep in a["episodes"])  # held out by default
    assert a["levels"] == {"start_level": 50, "num_levels": 100_000}
    assert f"{a['summary']['return']['mean']:.3f}" in first.stdout


def test_learned_return_per_episode_matches_the_reward_model(ckpt, tmp_path):
    model_path = reward_model(tmp_path / "reward_model.pt", GAME)
    proc = run(
        "test_policy.py",
        "--load_path",
        str(ckpt),
        "--num_episodes",
        "3",
        "--num_envs",
        "3",
        "--reward_model",
        str(model_path),
        "--out",
        "r.json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    episodes = json.loads((tmp_path / "r.json").read_text())["episodes"]
    policy = Policy(NUM_ACTIONS, [4, 8, 8], 32, OBS_SHAPE)
    policy.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    expected = run_episodes(
        policy.eval(), GAME, "easy", LevelSet(50, 100_000), 3, 3, seed=0, reward_fn=load_reward_model(model_path)[0]
    )
    assert [ep["ret"] for ep in episodes] == [ep["ret"] for ep in expected]
    assert [ep["learned_ret"] for ep in episodes] == pytest.approx([ep["learned_ret"] for ep in expected], rel=1e-4)


def test_bad_inputs_give_one_error_line(ckpt, tmp_path):
    assert_one_error_line(run("test_policy.py", "--load_path", str(tmp_path / "missing.pt"), cwd=tmp_path))
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    assert_one_error_line(run("test_policy.py", "--load_path", str(tmp_path / "corrupt.pt"), cwd=tmp_path))
    other = reward_model(tmp_path / "coinrun_model.pt", "coinrun")
    proc = run(
        "test_policy.py", "--load_path", str(ckpt), "--num_episodes", "1", "--reward_model", str(other), cwd=tmp_path
    )
    assert_one_error_line(proc)
    assert "coinrun" in proc.stderr
    assert_one_error_line(run("rec_video.py", "--load_path", str(tmp_path / "missing.pt"), cwd=tmp_path))
    assert not (tmp_path / "video.mp4").exists()


def test_demo_video_has_one_frame_per_step(tmp_path):
    obs = np.random.default_rng(0).integers(0, 256, (37, 64, 64, 3), dtype=np.uint8)
    np.savez_compressed(tmp_path / "demo.npz", obs=obs, actions=np.zeros(37, np.int64), rewards=np.ones(37, np.float32))
    proc = run("rec_video.py", "--demo", "demo.npz", "--out", "demo.mp4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    frames = decoded_frames(tmp_path / "demo.mp4")
    assert len(frames) == 37 and frames[0].shape == (512, 512, 3)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_demo_video_overlays_the_learned_return_of_its_frames(tmp_path):
    obs = np.random.default_rng(1).integers(0, 256, (21, 64, 64, 3), dtype=np.uint8)
    np.savez_compressed(
        tmp_path / "demo.npz", obs=obs, actions=np.zeros(21, np.int64), rewards=np.zeros(21, np.float32)
    )
    model_path = reward_model(tmp_path / "reward_model.pt", GAME)
    proc = run(
        "rec_video.py",
        "--demo",
        "demo.npz",
        "--out",
        "demo.mp4",
        "--reward_model",
        str(model_path),
        "--env_name",
        GAME,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    model, _ = load_reward_model(model_path)
    with torch.no_grad():
        by_hand = float(model(torch.from_numpy(obs)).double().sum())
    assert f"learned return {by_hand:.2f}" in proc.stdout, proc.stdout


def test_policy_video_grid_is_capped_at_max_steps(ckpt, tmp_path):
    proc = run(
        "rec_video.py",
        "--load_path",
        str(ckpt),
        "--out",
        "v.mp4",
        "--num_screens",
        "2",
        "--view",
        "obs",
        "--max_steps",
        "60",
        "--seed",
        "3",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    policy = Policy(NUM_ACTIONS, [4, 8, 8], 32, OBS_SHAPE)
    policy.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    episodes = run_episodes(policy.eval(), GAME, "easy", LevelSet(50, 100_000), 2, 2, seed=3, max_steps=60)
    frames = decoded_frames(tmp_path / "v.mp4")
    assert len(frames) == max(ep["length"] for ep in episodes)  # one frame per step until both screens finish
    assert frames[0].shape == (512, 1024, 3)
    assert f"{len(frames)} frames" in proc.stdout
