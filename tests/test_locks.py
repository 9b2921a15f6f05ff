"""One writer per run folder: a second process is refused in one line, exit 2, and writes nothing; the OS
releases the lock of a killed holder, so a rerun resumes normally."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_configs import ppo_flags

from baseline_agent.checkpoint import list_checkpoints, load_checkpoint
from toolkit.cli import UserError
from toolkit.files import atomic_write, exclusive, exclusive_file

ROOT = Path(__file__).resolve().parents[1]
TINY = ppo_flags(env_name="coinrun")


def snapshot(folder: Path) -> dict:
    """Every file below `folder` with its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_second_run_is_refused_untouched_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    run = tmp_path / "run"
    train = [
        sys.executable,
        str(ROOT / "baseline_agent/train.py"),
        *TINY,
        "--save_interval",
        "1",
        "--run_dir",
        str(run),
    ]
    holder = subprocess.Popen(
        [*train, "--total_timesteps", "1000000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while not list_checkpoints(run / "checkpoints") and time.time() < deadline and holder.poll() is None:
        time.sleep(0.05)
    os.killpg(holder.pid, signal.SIGSTOP)  # frozen mid-run: the folder changes only if the second process writes
    try:
        before = snapshot(run)
        second = subprocess.run([*train, "--total_timesteps", "1000000"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert second.stderr == (
            f"error: {run} is in use by another process (pid {holder.pid}); wait for it to end "
            "or choose another output folder\n"
        )
        assert snapshot(run) == before
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    step = load_checkpoint(list_checkpoints(run / "checkpoints")[-1])["step"]
    rerun = subprocess.run([*train, "--total_timesteps", str(step + 128)], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming {run} from step {step:,}" in rerun.stdout
    assert load_checkpoint(list_checkpoints(run / "checkpoints")[-1])["step"] == step + 128


def _entry_points(folder: Path, tiny_checkpoints) -> dict:
    """Each entry point that writes a folder or file, pointed at `folder`: (main, argv, what it locks)."""
    from baseline_agent.train import main as train_main
    from test_policy import main as eval_main
    from trex.reward.net import RewardNet, save_reward_model
    from trex.reward_model import main as reward_main
    from trex.study import main as study_main
    from trex.train_policy import main as policy_main

    ckpt = str(tiny_checkpoints(folder.parent / "ppo")[-1])
    model = folder.parent / "reward_model.pt"
    save_reward_model(model, RewardNet(), {"env_name": "coinrun", "distribution_mode": "easy"})
    study = folder.parent / "study.yaml"
    study.write_text(f"run_dir: {folder}\n")
    from rec_video import main as video_main

    return {
        "train.py": (train_main, [*TINY, "--run_dir", str(folder)], folder),
        "train_policy.py": (policy_main, [*TINY, "--reward_model", str(model), "--run_dir", str(folder)], folder),
        "reward_model.py demos": (reward_main, ["demos", "--checkpoints", ckpt, "--demo_dir", str(folder)], folder),
        "reward_model.py train": (reward_main, ["train", "--run_dir", str(folder)], folder),
        "reward_model.py sweep": (reward_main, ["sweep", "--run_dir", str(folder)], folder),
        "trex.study": (study_main, ["-c", str(study)], folder),
        "test_policy.py --out": (eval_main, ["--load_path", ckpt, "--out", str(folder / "e.json")], folder / "e.json"),
        "rec_video.py --out": (video_main, ["--load_path", ckpt, "--out", str(folder / "v.mp4")], folder / "v.mp4"),
    }


@pytest.mark.parametrize(
    "name",
    [
        "train.py",
        "train_policy.py",
        "reward_model.py demos",
        "reward_model.py train",
        "reward_model.py sweep",
        "trex.study",
        "test_policy.py --out",
        "rec_video.py --out",
    ],
)
def test_every_entry_point_refuses_a_folder_in_use_before_writing(tmp_path, tiny_checkpoints, name):
    folder = tmp_path / "busy"
    main, argv, locked = _entry_points(folder, tiny_checkpoints)[name]
    hold = exclusive(folder) if locked == folder else exclusive_file(locked)
    with hold:
        before = snapshot(folder)
        with pytest.raises(UserError, match=rf"^{locked} is in use by another process \(pid {os.getpid()}\)"):
            main(argv)
        assert snapshot(folder) == before


def test_taking_a_folder_lock_removes_writes_cut_off_by_a_kill_but_not_another_steps(tmp_path):
    """A kill inside `atomic_write` leaves its temporary file; the next holder of the folder's lock removes it, in
    the folder and its subfolders, except in a subfolder that has its own lock (another step's)."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "reward").mkdir()
    (run / "reward" / ".lock").touch()
    cut_off = [run / ".summary.json.ab12.tmp", run / "checkpoints" / ".step_0000000256.pt.cd34.tmp"]
    others = [run / "reward" / ".metrics.json.ef56.tmp", run / "notes.tmp", run / "checkpoints" / "step_0000000256.pt"]
    for path in cut_off + others:
        path.write_text("x")
    with exclusive(run):
        atomic_write(run / "summary.json", lambda tmp: Path(tmp).write_text("{}"))
    assert [p.exists() for p in cut_off] == [False, False]
    assert [p.exists() for p in others] == [True, True, True] and (run / "summary.json").read_text() == "{}"
    with exclusive_file(tmp_path / "out.mp4"):  # a file's lock cleans nothing
        pass
    assert all(p.exists() for p in others)
