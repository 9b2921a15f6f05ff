"""What bf16 autocast costs on this CPU: one forward and backward pass of the reference IMPALA policy on 64 frames,
fp32 and bf16 measured side by side in one run, and their ratio.

    python benchmarks/bf16_cost.py
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/bf16_cost.py   # as on an AVX2-only CPU
"""

from __future__ import annotations

import time

import torch

from baseline_agent.envs import NUM_ACTIONS, OBS_SHAPE
from baseline_agent.models import Policy
from toolkit.runtime import native_bf16


def seconds_per_pass(policy: Policy, frames: torch.Tensor, bf16: bool, repeats: int = 3) -> float:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for _ in range(2):  # warm-up: oneDNN picks and caches its kernels
            policy(frames)[0].float().sum().backward()
        start = time.perf_counter()
        for _ in range(repeats):
            policy(frames)[0].float().sum().backward()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    policy = Policy(NUM_ACTIONS, obs_shape=OBS_SHAPE)
    frames = torch.randint(0, 256, (64, *OBS_SHAPE), dtype=torch.uint8)
    fp32, bf16 = seconds_per_pass(policy, frames, False), seconds_per_pass(policy, frames, True)
    print(
        f"torch kernels {torch.backends.cpu.get_cpu_capability()}, native bf16 {native_bf16()}: "
        f"fp32 {fp32:.3f} s, bf16 {bf16:.3f} s per pass (64 frames, 1 thread); bf16 / fp32 = {bf16 / fp32:.1f}"
    )


if __name__ == "__main__":
    main()
