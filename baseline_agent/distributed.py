"""Data-parallel PPO over torchrun (replacing baselines' MPI): one process per GPU or CPU rank.

Every rank owns its envs; gradients, reward-normaliser moments and logged statistics are averaged.
With one process (no torchrun) every helper here is the identity.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from toolkit.files import exclusive


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(use_cuda: bool) -> Dist:
    """Join the process group that torchrun describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        if use_cuda:  # NCCL picks the current device; each local rank owns one GPU
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        # CUDA tensors (gradients, parameters) go through NCCL, the small CPU ones (statistics) through gloo.
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if use_cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown(d: Dist) -> None:
    """Leave the process group together: a rank exiting while others still talk can abort in gloo's teardown."""
    if d.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], d: Dist) -> list[float]:
    if not d.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def average_gradients(params: list[torch.nn.Parameter], d: Dist) -> None:
    """All-reduce the gradients as one flat buffer and divide by the world size."""
    if not d.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= d.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_parameters(module: torch.nn.Module, d: Dist) -> None:
    if d.enabled:
        for p in module.state_dict().values():
            dist.broadcast(p, src=0)


def reduce_moments(d: Dist):
    """Combine (mean, var, count) of per-rank batches into the moments of their union."""

    def reduce(mean: float, var: float, count: float) -> tuple[float, float, float]:
        n, s, sq = all_reduce_sum([count, count * mean, count * (var + mean * mean)], d)
        m = s / n
        return m, max(sq / n - m * m, 0.0), n

    return reduce


def gather_to_main(obj, d: Dist) -> list | None:
    """Every rank's `obj` in rank order on rank 0 (None on the others); `[obj]` on one process."""
    if not d.enabled:
        return [obj]
    out = [None] * d.world_size if d.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def main_process_lock(run_dir: str | os.PathLike) -> contextlib.AbstractContextManager:
    """`exclusive(run_dir)` in the process that writes there: rank 0 under torchrun (its RANK), the only one
    otherwise; the other ranks never write there and take no lock."""
    return exclusive(run_dir) if int(os.environ.get("RANK", "0")) == 0 else contextlib.nullcontext()
