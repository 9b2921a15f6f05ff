"""What a reward model responds to: its reward per frame against time, with the true reward's events marked, and a
saliency map (the mean absolute gradient of the reward with respect to each pixel) on the demos of each level set,
side by side, so a user sees whether the net looks at enemies and shots or at the scrolling background, on training
levels and on held-out ones alike. Every reward model writes it (`what_the_reward_sees.png`); for one trained
before, `python trex/reward_model.py picture -c CONFIG --run_dir RUN_DIR`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from toolkit.figures import figure_row, save_figure
from trex.demos.store import Demo
from trex.reward.evaluation import frame_rewards
from trex.reward.net import RewardNet, stack_frames
from trex.reward.pairs import concat_obs

MAX_FRAMES = 2000  # frames a saliency map averages over, evenly spaced through the set's demos
CHUNK = 256  # frames per backward pass


def saliency_map(net: RewardNet, frames: np.ndarray, first: np.ndarray, device: torch.device | str) -> np.ndarray:
    """[H, W]: the mean over `frames` ([N, H, W, C] uint8, several demos' concatenated, `first[n]` the index of frame
    n's demo's first frame; at most MAX_FRAMES of them, evenly spaced) of the absolute gradient of the per-frame
    reward with respect to each pixel, summed over colour channels (and stacked frames), scaled to a maximum of 1
    (all zeros for a reward that no pixel moves)."""
    pick = np.linspace(0, len(frames) - 1, min(len(frames), MAX_FRAMES)).astype(np.int64)
    total = np.zeros(frames.shape[1:3], np.float64)
    for chunk in np.array_split(pick, max(1, -(-len(pick) // CHUNK))):
        stacked = stack_frames(frames, chunk, first[chunk], net.frame_stack)
        x = torch.from_numpy(stacked).to(device).float().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(x).sum(), x)
        total += grad.abs().sum(-1).sum(0).double().cpu().numpy()
    peak = total.max()
    return total / peak if peak > 0 else total


def plot_what_the_reward_sees(
    net: RewardNet, level_sets: dict[str, list[Demo]], path: str | Path, device: torch.device | str
) -> None:
    """For each level set: the learned reward per frame of its best and worst demo (by true return), the frames
    where the true reward paid marked; then each set's saliency map over its mean frame."""
    sets = {name: demos for name, demos in level_sets.items() if demos}
    if not sets:
        return
    plt, fig, axes = figure_row(2 * len(sets), width=4.2)
    for k, (name, demos) in enumerate(sets.items()):
        ax = axes[k]
        by_return = sorted(demos, key=lambda d: d.record.ret)
        for d in {id(x): x for x in (by_return[-1], by_return[0])}.values():
            (line,) = ax.plot(frame_rewards(net, d.obs, device), lw=0.8, label=f"return {d.record.ret:g}")
            for t in np.flatnonzero(d.rewards):
                ax.axvline(t, color=line.get_color(), alpha=0.35, lw=0.6)
        ax.set_title(f"{name}\nlearned reward per frame (lines: true reward paid)", fontsize=9)
        ax.set_xlabel("time step")
        ax.legend(fontsize=7)
        frames, offsets = concat_obs(demos)
        first = np.repeat(offsets, [len(d.obs) for d in demos])
        shown = axes[len(sets) + k]
        shown.imshow(frames.mean(0).mean(-1), cmap="gray")
        shown.imshow(saliency_map(net, frames, first, device), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
        shown.set_title(f"{name}\nwhere the reward looks (mean |gradient|)", fontsize=9)
        shown.axis("off")
    save_figure(plt, fig, path)
