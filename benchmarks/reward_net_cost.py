"""What each reward network costs to train on this CPU: one step (forward, backward, Adam) over 1,120 frames (a batch
of 16 pairs of 35-frame snippets), every architecture measured side by side in one run, one thread, and its ratio
to `fast` (the default); `fast, frame_stack 2` reads each frame with the one before it (6 channels), its stacking
gather from a demo array included.

    python benchmarks/reward_net_cost.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from trex.reward.net import ARCHITECTURES, RewardNet, stack_frames

FRAMES = 1120


def seconds_per_step(net: RewardNet, frames: np.ndarray, index: np.ndarray, repeats: int = 3) -> float:
    """Mean seconds of one training step on the frames `index` of `frames`, gathered (and stacked) as training does."""
    optimiser = torch.optim.Adam(net.parameters())
    first = np.zeros_like(index)

    def step() -> None:
        optimiser.zero_grad()
        net(torch.from_numpy(stack_frames(frames, index, first, net.frame_stack))).sum().backward()
        optimiser.step()

    step()  # warm-up: oneDNN picks and caches its kernels
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4 * FRAMES, 64, 64, 3), dtype=np.uint8)  # a demo array to gather from
    index = np.sort(rng.choice(np.arange(1, len(frames)), FRAMES, replace=False))
    nets = {arch: RewardNet(arch) for arch in ARCHITECTURES}
    nets["fast, frame_stack 2"] = RewardNet("fast", frame_stack=2)
    seconds = {name: seconds_per_step(net, frames, index) for name, net in nets.items()}
    for name, s in seconds.items():
        print(f"{name:<19} {s:7.3f} s per step ({FRAMES} frames, 1 thread); / fast = {s / seconds['fast']:.1f}")


if __name__ == "__main__":
    main()
