"""Faults a long run meets, each provoked: a sidecar given as a checkpoint, a full disk, a crash of the host (a cut
checkpoint or reward model), a diverging loss, SIGTERM, an OOM kill and a cluster time limit. Each ends in one line
and keeps what was written before; a rerun of the same command resumes."""

import dataclasses
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_configs import ppo_flags

import toolkit.cli
import toolkit.files
from baseline_agent.checkpoint import list_checkpoints, load_checkpoint, resume_path, save_checkpoint
from baseline_agent.ppo import PPOTrainer
from baseline_agent.train import main as train_main
from toolkit.cli import UserError, exit_reason
from toolkit.files import atomic_write, torch_save, write_text
from toolkit.logger import read_progress

ROOT = Path(__file__).resolve().parents[1]
TINY = ppo_flags(env_name="coinrun", save_interval=1)


def tiny(run: Path, steps: int, *extra: str) -> list[str]:
    return [*TINY, "--total_timesteps", str(steps), "--run_dir", str(run), *extra]


def temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp")]


# --------------------------------------------------------------------------- a sidecar taken for a checkpoint
def test_a_resume_sidecar_given_as_a_checkpoint_is_refused_naming_the_checkpoint(tmp_path, tiny_checkpoints):
    ckpt = tiny_checkpoints(tmp_path / "run", steps=(100,))[0]
    state = load_checkpoint(ckpt)
    save_checkpoint(ckpt, {k: v for k, v in state.items() if k != "format"}, resume={"layout": {}, "ranks": []})
    sidecar = resume_path(ckpt)
    assert sorted(p.name for p in ckpt.parent.iterdir())[-1] == sidecar.name  # what `ls | tail -1` picks
    for script in ("test_policy.py", "rec_video.py"):
        proc = subprocess.run(
            [sys.executable, str(ROOT / script), "--load_path", str(sidecar), "--out", str(tmp_path / "o")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and f"use {ckpt} " in proc.stderr, proc.stderr
        assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- a full disk
def test_a_full_disk_stops_a_write_in_one_line_keeping_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "run" / "model.pt"
    torch_save(target, {"w": torch.ones(3)})
    before = target.read_bytes()

    def full(obj, f):  # what a full disk does to torch.save through a Python file: some bytes, then ENOSPC
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(UserError, match=rf"^the disk of {tmp_path / 'run'} is full: .* rerun the same command"):
        torch_save(target, {"w": torch.zeros(3)})
    assert target.read_bytes() == before and not temps(tmp_path)
    with pytest.raises(UserError, match="is full"):
        atomic_write(tmp_path / "run" / "x.csv", lambda tmp: Path("/dev/full").write_text("x" * 10_000))
    with pytest.raises(OSError, match="Permission"):  # other faults are not called a full disk
        atomic_write(tmp_path / "run" / "x.csv", lambda tmp: (_ for _ in ()).throw(PermissionError("Permission")))
    assert not temps(tmp_path)


def _mount_tmpfs_prefix() -> list[str] | None:
    """A command prefix that runs a shell in a private mount namespace where tmpfs can be mounted, or None."""
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        if shutil.which(prefix[0]) is None:
            continue
        probe = subprocess.run(
            [*prefix, "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d && umount $d"],
            capture_output=True,
        )
        if probe.returncode == 0:
            return prefix
    return None


def test_a_run_on_a_full_disk_stops_in_one_line_and_resumes_once_space_is_freed(tmp_path):
    """A real full file system (a small tmpfs): the run stops in one line, keeps its checkpoints, leaves no
    temporary file, and the same command resumes once space is freed."""
    prefix = _mount_tmpfs_prefix()
    if prefix is None:
        pytest.skip("no tmpfs can be mounted here (needs root or user namespaces): the full-disk run is not shown")
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    cmd = " ".join([sys.executable, str(ROOT / "baseline_agent/train.py"), *TINY, "--run_dir", f"{disk}/run"])
    script = f"""
        set -u
        mount -t tmpfs -o size=24m tmpfs {disk}
        {cmd} --total_timesteps 128 >/dev/null || exit 9
        free=$(df --output=avail -B1 {disk} | tail -1)
        head -c $((free - 96 * 1024)) /dev/zero > {disk}/filler 2>/dev/null
        {cmd} --total_timesteps 640 >{out}/first.out 2>{out}/first.err; echo $? > {out}/first.rc
        ls -a {disk}/run {disk}/run/checkpoints > {out}/after_full.txt
        rm {disk}/filler
        {cmd} --total_timesteps 640 >{out}/second.out 2>{out}/second.err; echo $? > {out}/second.rc
        ls -a {disk}/run/checkpoints > {out}/final.txt
    """
    out.mkdir()
    subprocess.run([*prefix, "bash", "-c", script], check=True, timeout=300, cwd=ROOT)
    err = (out / "first.err").read_text()
    assert (out / "first.rc").read_text().strip() == "2", err
    assert err.count("\n") == 1 and err.startswith(f"error: the disk of {disk}/run"), err
    assert "is full" in err and "rerun the same command to resume" in err
    listing = (out / "after_full.txt").read_text().split()
    assert "step_0000000128.pt" in listing and "step_0000000128.resume.pt" in listing
    assert not [n for n in listing if n.endswith(".tmp")], listing
    assert (out / "second.rc").read_text().strip() == "0", (out / "second.err").read_text()
    assert "resuming" in (out / "second.out").read_text()
    assert "step_0000000640.pt" in (out / "final.txt").read_text().split()


# --------------------------------------------------------------------------- a crash of the host
def test_every_write_is_flushed_to_disk_with_its_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(toolkit.files.os, "fsync", fsync)
    write_text(tmp_path / "a.txt", "a")
    assert synced[0].startswith(str(tmp_path / ".a.txt.")) and synced[1] == str(tmp_path)


def test_a_cut_newest_checkpoint_is_passed_over_for_the_one_before(tmp_path, capsys):
    run = tmp_path / "run"
    train_main(tiny(run, 128))
    newest = list_checkpoints(run / "checkpoints")[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # a power loss before the data reached the disk
    capsys.readouterr()
    summary = train_main(tiny(run, 192))
    printed = capsys.readouterr().out
    assert f"note: cannot read checkpoint {newest}" in printed and "resuming from step_0000000064.pt" in printed
    assert "resuming" in printed and "from step 64 " in printed
    assert summary["total_timesteps"] == 192
    for path in list_checkpoints(run / "checkpoints"):
        load_checkpoint(path)  # all readable: the cut one was written again
    assert [int(r["misc/total_timesteps"]) for r in read_progress(run / "progress.csv")] == [64, 128, 192]


REWARD_TINY = dict(num_pairs=64, batch_size=16, epochs=1, min_snippet_length=4, max_snippet_length=8)


def _reward_cfg(tmp_path: Path, **changes):
    from trex.config import TrexConfig
    from trex.demos.store import write_demos
    from trex.demos.synthetic import as_written, marker_demos

    demos = tmp_path / "demos"
    if not demos.is_dir():
        rng = np.random.default_rng(2)
        sets = [marker_demos(8, rng, min_len=12, max_len=30)]
        sets += [marker_demos(3, rng, level_set, min_len=12, max_len=30) for level_set in ("new_episodes", "held_out")]
        write_demos(demos, as_written(sum(sets, [])))
    values = {**REWARD_TINY, "eval_interval": 32, "num_demos": 8, "device": "cpu", **changes}
    return TrexConfig(demo_dir=str(demos), run_dir=str(tmp_path / "reward"), **values)


def test_a_cut_reward_model_is_trained_again_to_the_same_weights(tmp_path, capsys):
    from trex.reward.fit import train_reward_model

    cfg = _reward_cfg(tmp_path)
    first = train_reward_model(cfg)
    model = Path(cfg.run_dir) / "reward_model.pt"
    whole = model.read_bytes()
    model.write_bytes(whole[:200])  # cut by a power loss
    capsys.readouterr()
    again = train_reward_model(cfg)
    assert f"note: cannot read reward model {model}" in capsys.readouterr().out
    assert again["held_out"] == first["held_out"]
    a, b = (torch.load(p, weights_only=True)["state_dict"] for p in (model, _copy(whole, tmp_path)))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _copy(data: bytes, tmp_path: Path) -> Path:
    path = tmp_path / "whole.pt"
    path.write_bytes(data)
    return path


def test_a_diverging_reward_model_stops_in_one_line_and_saves_nothing(tmp_path):
    from trex.reward.fit import train_reward_model

    cfg = _reward_cfg(tmp_path, learning_rate=1e30)
    with pytest.raises(UserError, match=r"^the reward model diverged at step \d+: .* learning rate too high"):
        train_reward_model(cfg)
    assert not (Path(cfg.run_dir) / "reward_model.pt").exists()


# --------------------------------------------------------------------------- a diverging loss
def test_a_diverging_ppo_run_stops_in_one_line_before_a_checkpoint_holds_nan(tmp_path, monkeypatch):
    run = tmp_path / "run"
    save = PPOTrainer.save

    def save_then_diverge(self):  # a learning rate far too high from the second update on
        save(self)
        self.optimizer.param_groups[0]["lr"] = 1e4

    monkeypatch.setattr(PPOTrainer, "save", save_then_diverge)
    with pytest.raises(UserError, match=r"^PPO diverged at update 2: .* learning rate too high"):
        train_main(tiny(run, 256))
    found = list_checkpoints(run / "checkpoints")
    assert [p.name for p in found] == ["step_0000000064.pt"]
    assert all(torch.isfinite(v).all() for v in load_checkpoint(found[0])["model"].values())
    proc = subprocess.run(
        [sys.executable, str(ROOT / "baseline_agent/train.py"), *tiny(tmp_path / "r2", 64, "--learning_rate", "100")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: PPO diverged at update 1: ") and "learning_rate 100" in proc.stderr
    assert not list_checkpoints(tmp_path / "r2" / "checkpoints")


def test_a_checkpoint_holding_nan_is_never_written(tmp_path):
    with pytest.raises(UserError, match="non-finite"):
        save_checkpoint(tmp_path / "step_1.pt", {"model": {"w": torch.tensor([float("nan")])}, "step": 1})
    assert not (tmp_path / "step_1.pt").exists()


# --------------------------------------------------------------------------- SIGTERM
def test_sigterm_ends_a_run_at_once_in_one_line_and_the_rerun_resumes_exactly(tmp_path):
    run, whole = tmp_path / "run", tmp_path / "whole"
    train_main(tiny(whole, 384))
    cmd = [sys.executable, str(ROOT / "baseline_agent/train.py"), *tiny(run, 384)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(list_checkpoints(run / "checkpoints")) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.2)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)  # a plain `kill PID`: the process alone
    _, err = proc.communicate(timeout=30)
    assert time.time() - sent < 5, "SIGTERM took longer than a kill would"
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.count("\n") == 1 and err.startswith("terminated (SIGTERM)") and "rerun the same command" in err
    assert not temps(run)
    stopped_at = load_checkpoint(list_checkpoints(run / "checkpoints")[-1])["step"]
    assert stopped_at < 384, "the run finished before SIGTERM came; make it longer"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"resuming {run} from step {stopped_at:,} (step_{stopped_at:010d}.pt)\n" in done.stdout  # exact
    final, reference = (load_checkpoint(list_checkpoints(r / "checkpoints")[-1])["model"] for r in (run, whole))
    assert all(torch.equal(final[k], reference[k]) for k in final)


# --------------------------------------------------------------------------- the OOM killer
def test_a_sigkill_is_named_the_oom_killers_when_the_kernels_count_rose(tmp_path, monkeypatch):
    events = tmp_path / "memory.events"
    events.write_text("low 0\noom 1\noom_kill 3\n")
    monkeypatch.setattr(toolkit.cli, "OOM_COUNTERS", (str(tmp_path / "absent"), str(events)))
    assert toolkit.cli.oom_kills() == 3
    assert exit_reason(-9, 3).startswith("killed by SIGKILL (exit -9): when no one sent it")
    events.write_text("oom_kill 4\n")
    assert exit_reason(-9, 3) == "killed by the kernel's OOM killer: out of memory (exit -9)"
    assert exit_reason(-15, 3) == "killed by SIGTERM" and exit_reason(1, 3) == "exit 1"


# --------------------------------------------------------------------------- memory of no-grad passes
def test_validation_passes_are_bounded_by_frames_whatever_the_snippet_length():
    """The study2020 preset's snippets (up to 99 frames) and network: every no-grad pass of `accuracy` holds at
    most PREDICT_BATCH frames, where 256 pairs a pass held ~50k."""
    from toolkit.config import build_config, load_yaml
    from trex.config import TrexConfig
    from trex.reward.evaluation import PREDICT_BATCH
    from trex.reward.net import RewardNet
    from trex.reward.pairs import SnippetPairs, frame_chunks
    from trex.reward.trainer import RewardTrainer

    cfg = build_config(TrexConfig, load_yaml(ROOT / "configs/trex/study2020.yaml"))
    rng = np.random.default_rng(0)
    n = 600
    pairs = SnippetPairs(
        demo=rng.integers(0, 2, (n, 2)),
        start=np.zeros((n, 2), np.int64),
        length=rng.integers(cfg.min_snippet_length, cfg.max_snippet_length + 1, n),
        label=rng.integers(0, 2, n),
        frame_stride=cfg.frame_stride,
        label_noise=0.0,
    )
    chunks = frame_chunks(pairs, PREDICT_BATCH)
    assert np.array_equal(np.concatenate(chunks), np.arange(n))
    frames = np.zeros((200, 64, 64, 3), np.uint8)
    offsets = np.array([0, 100])
    net = RewardNet(cfg.reward_net, 1, (64, 64, 3))
    seen = []

    def member_rewards(obs: torch.Tensor, member: int | None = None) -> torch.Tensor:  # counts frames, no compute
        seen.append(len(obs))
        return torch.zeros(1, len(obs))

    net.member_rewards = member_rewards  # type: ignore[method-assign]
    trainer = RewardTrainer(net, dataclasses.replace(cfg, device="cpu"), torch.device("cpu"), verbose=False)
    trainer.accuracy(frames, offsets, pairs)
    assert sum(seen) == 2 * pairs.length.sum() and max(seen) <= PREDICT_BATCH and len(seen) == len(chunks)
