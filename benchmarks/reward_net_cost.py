"""What each reward network costs to train on this CPU: one step (forward, backward, Adam) over 1,120 frames (a batch
of 16 pairs of 35-frame snippets), every architecture measured side by side in one run, one thread, and its ratio
to `fast` (the default).

    python benchmarks/reward_net_cost.py
"""

from __future__ import annotations

import time

import torch

from trex.reward.net import ARCHITECTURES, RewardNet

FRAMES = 1120


def seconds_per_step(net: RewardNet, frames: torch.Tensor, repeats: int = 3) -> float:
    optimiser = torch.optim.Adam(net.parameters())

    def step() -> None:
        optimiser.zero_grad()
        net(frames).sum().backward()
        optimiser.step()

    step()  # warm-up: oneDNN picks and caches its kernels
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    frames = torch.randint(0, 256, (FRAMES, 64, 64, 3), dtype=torch.uint8)
    seconds = {arch: seconds_per_step(RewardNet(arch), frames) for arch in ARCHITECTURES}
    for arch, s in seconds.items():
        print(f"{arch:<11} {s:7.3f} s per step ({FRAMES} frames, 1 thread); / fast = {s / seconds['fast']:.1f}")


if __name__ == "__main__":
    main()
