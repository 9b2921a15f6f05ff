"""Step 1 end to end at a tiny size: outputs, checkpoints, determinism, resume after SIGKILL, refusals."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_configs import ppo_flags

from baseline_agent.checkpoint import list_checkpoints, load_checkpoint, load_policy
from baseline_agent.train import main as train_main
from toolkit.cli import UserError
from toolkit.logger import read_progress

ROOT = Path(__file__).resolve().parents[1]
TINY = ppo_flags(env_name="coinrun", update_epochs=2, hidden_size=32, save_interval=2, eval_interval=2)


def tiny(run_dir, steps=256, *extra):
    return [*TINY, "--total_timesteps", str(steps), "--run_dir", str(run_dir), *extra]


def test_run_writes_its_outputs_and_a_self_contained_checkpoint(tmp_path):
    run = tmp_path / "run"
    summary = train_main(tiny(run))
    for name in ("config.yaml", "versions.json", "progress.csv", "summary.json", "learning_curve.png"):
        assert (run / name).is_file(), name
    assert summary["total_timesteps"] == 256
    ckpts = list_checkpoints(run / "checkpoints")
    assert [p.name for p in ckpts] == ["step_0000000128.pt", "step_0000000256.pt"]
    state = load_checkpoint(ckpts[-1])  # weights_only=True inside
    assert state["step"] == 256 and state["update"] == 4
    assert state["model_spec"]["env_name"] == "coinrun" and state["model_spec"]["channels"] == [4, 8, 8]
    assert {"model", "optimizer", "normalizer", "config"} <= set(state)
    policy, meta = load_policy(ckpts[-1])
    obs = torch.randint(0, 255, (3, 64, 64, 3), dtype=torch.uint8)
    logits, _ = policy(obs)
    assert logits.shape == (3, 15) and meta["config"]["num_envs"] == 4
    rows = read_progress(run / "progress.csv")
    assert [int(r["misc/total_timesteps"]) for r in rows] == [64, 128, 192, 256]
    assert {"eprewmean", "eplenmean", "fps", "loss/policy_entropy", "loss/approxkl", "eval_eprewmean"} <= set(rows[0])
    assert json.loads((run / "summary.json").read_text())["env_name"] == "coinrun"
    before = (run / "summary.json").read_text()
    assert train_main(tiny(run)) == json.loads(before)  # a finished run is left as it is
    assert (run / "summary.json").read_text() == before
    assert len(read_progress(run / "progress.csv")) == 4


def test_same_seed_gives_identical_results_on_cpu(tmp_path):
    a = train_main(tiny(tmp_path / "a", 128))
    b = train_main(tiny(tmp_path / "b", 128))
    pa = load_checkpoint(list_checkpoints(tmp_path / "a/checkpoints")[-1])["model"]
    pb = load_checkpoint(list_checkpoints(tmp_path / "b/checkpoints")[-1])["model"]
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    ra, rb = read_progress(tmp_path / "a/progress.csv"), read_progress(tmp_path / "b/progress.csv")
    assert [r["loss/policy_loss"] for r in ra] == [r["loss/policy_loss"] for r in rb]
    assert a["train_return"] == b["train_return"]
    c = train_main(tiny(tmp_path / "c", 128, "--seed", "1"))
    pc = load_checkpoint(list_checkpoints(tmp_path / "c/checkpoints")[-1])["model"]
    assert not all(torch.equal(pa[k], pc[k]) for k in pa)
    assert c["total_timesteps"] == 128


def test_a_different_config_on_the_same_run_dir_is_refused(tmp_path):
    run = tmp_path / "run"
    train_main(tiny(run, 64))
    with pytest.raises(UserError, match="keys differ: learning_rate"):
        train_main(tiny(run, 64, "--learning_rate", "0.1"))
    # total_timesteps may grow: the run continues to the new total, appending to progress.csv
    train_main(tiny(run, 192))
    steps = [int(r["misc/total_timesteps"]) for r in read_progress(run / "progress.csv")]
    assert steps == [64, 128, 192]


TIMING = ("fps", "misc/time_elapsed")  # progress columns that measure the machine, not the run


def _computed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING and not k.startswith("time/")} for r in rows]


def test_sigkill_at_any_moment_resumes_exactly_where_it_stopped(tmp_path):
    """Killed and rerun, a run ends with the weights and logs of an uninterrupted run of the same seed."""
    run, whole = tmp_path / "run", tmp_path / "whole"
    args = [*tiny(run, 640), "--save_interval", "1"]
    train_main([*tiny(whole, 640), "--save_interval", "1"])
    cmd = [sys.executable, str(ROOT / "baseline_agent/train.py"), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while len(list_checkpoints(run / "checkpoints")) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere inside an update
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(list_checkpoints(run / "checkpoints")[-1])["step"]
    assert killed_at < 640, "the run finished before it could be killed; make it longer"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"resuming {run} from step {killed_at:,} (step_{killed_at:010d}.pt)\n" in done.stdout  # exact: no note
    rows = read_progress(run / "progress.csv")
    assert [int(r["misc/total_timesteps"]) for r in rows] == list(range(64, 641, 64))  # no duplicated rows
    assert _computed(rows) == _computed(read_progress(whole / "progress.csv"))
    final, reference = (load_checkpoint(list_checkpoints(r / "checkpoints")[-1]) for r in (run, whole))
    assert final["step"] == 640 and all(torch.equal(final["model"][k], reference["model"][k]) for k in final["model"])
    assert not list((run / "checkpoints").glob(".*.tmp"))
    assert [p.name for p in (run / "checkpoints").glob("*.resume.pt")] == ["step_0000000640.resume.pt"]


def test_rewards_are_scaled_by_the_return_discounted_at_the_reference_0_99(tmp_path):
    """The reference (train-procgen's VecNormalize(ob=False)) scales rewards by the std of the return discounted
    at 0.99 while PPO discounts at 0.999; the trainer's normaliser must follow the key, not gamma."""
    from baseline_agent.ppo import PPOConfig, PPOTrainer
    from toolkit.config import parse_config

    trainer = PPOTrainer(parse_config(PPOConfig, tiny(tmp_path / "r"), "train", ""))
    assert trainer.normalizer.gamma == 0.99 and trainer.cfg.gamma == 0.999
    trainer.logger.close()
