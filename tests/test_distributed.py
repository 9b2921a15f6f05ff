"""Data-parallel PPO under torchrun, 2 CPU ranks over gloo: the real trainer, the real launcher.

Each rank trains on its own envs, so its rollouts differ; only averaged gradients keep the parameters
identical, bit for bit. The run advances by the sum of the ranks' batches, only rank 0 writes, and a
second launch on the same run_dir resumes from rank 0's checkpoint on every rank.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from baseline_agent.checkpoint import list_checkpoints, load_checkpoint
from toolkit.logger import read_progress

# Runs on every rank: train, then save what this rank ends with (test-only, into the test's folder).
WORKER = """
import sys
import numpy as np
import torch
from toolkit.config import parse_config
from baseline_agent.ppo import PPOConfig, PPOTrainer

out, argv = sys.argv[1], sys.argv[2:]
trainer = PPOTrainer(parse_config(PPOConfig, argv, prog="worker", description="test worker"))
start = [p.detach().clone() for p in trainer.policy.parameters()]
trainer.train()
torch.save({"start": start, "end": [p.detach() for p in trainer.policy.parameters()],
            "obs": torch.from_numpy(np.concatenate(trainer.obs)), "step": trainer.step, "update": trainer.update},
           f"{out}/rank{trainer.dist.rank}.pt")
"""

NUM_ENVS, NUM_STEPS = 2, 16  # 32 steps per rank per update, 64 for the run


def _launch(tmp: Path, run_dir: Path, total_timesteps: int) -> list[dict]:
    worker = tmp / "worker.py"
    worker.write_text(WORKER)
    for old in tmp.glob("rank*.pt"):
        old.unlink()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(worker),
        str(tmp),
        "--env_name",
        "coinrun",
        "--num_envs",
        str(NUM_ENVS),
        "--num_steps",
        str(NUM_STEPS),
        "--num_minibatches",
        "2",
        "--update_epochs",
        "2",
        "--update_chunk_size",
        "8",
        "--channels",
        "4,8,8",
        "--hidden_size",
        "16",
        "--env_groups",
        "2",
        "--eval_interval",
        "1",
        "--save_interval",
        "1",
        "--num_threads",
        "1",
        "--torch_threads",
        "1",
        "--device",
        "cpu",
        "--total_timesteps",
        str(total_timesteps),
        "--run_dir",
        str(run_dir),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(2)]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_two_ranks_stay_identical_sum_their_batches_and_resume(tmp_path):
    run_dir = tmp_path / "run"
    ranks = _launch(tmp_path, run_dir, total_timesteps=128)
    assert _same(ranks[0]["start"], ranks[1]["start"])
    assert not _same(ranks[0]["start"], ranks[0]["end"]), "no update happened"
    assert not torch.equal(ranks[0]["obs"], ranks[1]["obs"]), "ranks share their env seeds"
    assert _same(ranks[0]["end"], ranks[1]["end"]), "parameters drifted apart across ranks"

    # Effective batch: 2 updates of 2 ranks x 32 steps each.
    global_batch = 2 * NUM_ENVS * NUM_STEPS
    assert [r["update"] for r in ranks] == [2, 2]
    assert [r["step"] for r in ranks] == [2 * global_batch] * 2
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == [
        f"step_{global_batch:010d}.pt",
        f"step_{2 * global_batch:010d}.pt",
    ]
    assert [int(row["misc/total_timesteps"]) for row in read_progress(run_dir / "progress.csv")] == [
        global_batch,
        2 * global_batch,
    ]
    ckpt = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])
    assert _same(list(ckpt["model"].values()), ranks[0]["end"])
    assert len(list((run_dir / "tb").glob("events.*"))) == 1, "a rank other than 0 wrote TensorBoard logs"

    # Resume: both ranks start from rank 0's newest checkpoint and go one update further.
    resumed = _launch(tmp_path, run_dir, total_timesteps=3 * global_batch)
    for r in resumed:
        assert _same(r["start"], ranks[0]["end"])
        assert r["step"] == 3 * global_batch
    assert _same(resumed[0]["end"], resumed[1]["end"])
    assert not _same(resumed[0]["end"], ranks[0]["end"])
    assert [int(row["misc/total_timesteps"]) for row in read_progress(run_dir / "progress.csv")] == [
        global_batch,
        2 * global_batch,
        3 * global_batch,
    ]
