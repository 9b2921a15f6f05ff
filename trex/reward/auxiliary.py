"""B-REX's inverse-dynamics loss (Brown et al. 2020): an auxiliary task on the reward net's encoder, predicting the
action taken between a frame and the next from their features, so the encoder learns what the agent controls from
frames no ranking labels. Off by default (`inverse_dynamics: 0`); the head is trained beside the reward net and not
saved with it. Temporal-distance losses are left out: they would teach the clock."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.cli import UserError
from trex.demos.store import Demo
from trex.reward.net import RewardNet

PROCGEN_ACTIONS = 15  # every Procgen game's action count
HIDDEN = 64


class Transitions(NamedTuple):
    """Frames t (flat indices into the concatenated frames) whose next frame t+1 is of the same demo, and the action
    taken on each."""

    frame: np.ndarray
    actions: np.ndarray


def transitions(offsets: np.ndarray, lengths: np.ndarray, actions: np.ndarray) -> Transitions:
    """The transitions of demos whose frames lie at `offsets` of the concatenated frames (not necessarily next to
    each other), with `lengths`; `actions`: the demos' actions one demo after the other. Actions outside Procgen's
    are refused."""
    if len(actions) != int(np.sum(lengths)):
        raise ValueError(f"{len(actions)} actions for demos of {int(np.sum(lengths))} frames")
    steps = [np.arange(n - 1) for n in lengths]
    firsts = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # each demo's first action in `actions`
    index = np.concatenate([o + t for o, t in zip(offsets, steps, strict=True)]).astype(np.int64)
    taken = np.concatenate([f + t for f, t in zip(firsts, steps, strict=True)]).astype(np.int64)
    if len(actions) and (actions.min() < 0 or actions.max() >= PROCGEN_ACTIONS):
        raise UserError(f"demo actions outside Procgen's 0-{PROCGEN_ACTIONS - 1}: cannot train inverse dynamics")
    return Transitions(index, actions[taken].astype(np.int64))


def demo_transitions(demos: list[Demo], offsets: np.ndarray, which: list[int]) -> Transitions:
    """The transitions of the demos numbered `which` in `demos`, whose frames lie at `offsets` of their
    concatenated frames (pairs.concat_obs)."""
    chosen = [demos[i] for i in which]
    lengths = np.array([len(d.obs) for d in chosen], np.int64)
    actions = np.concatenate([d.actions for d in chosen]) if chosen else np.zeros(0, np.int64)
    return transitions(offsets[which], lengths, actions)


class InverseDynamics(nn.Module):
    """One head per ensemble member: concatenated encoder features of frames t and t+1 -> action logits."""

    def __init__(self, net: RewardNet):
        super().__init__()
        with torch.no_grad():
            width = net.member_features(torch.zeros(1, *net.obs_shape, dtype=torch.uint8), 0).shape[1]
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * width, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, PROCGEN_ACTIONS))
            for _ in range(net.ensemble_size)
        )

    def loss(
        self, net: RewardNet, frames: np.ndarray, data: Transitions, batch: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean cross-entropy over members, share predicted right) on `batch` transitions drawn at random; both
        stay tensors, so a training step reads neither back from the device."""
        device = next(self.parameters()).device
        pick = rng.integers(0, len(data.frame), size=batch)
        t = data.frame[pick]
        both = torch.from_numpy(frames[np.concatenate([t, t + 1])]).to(device)
        target = torch.from_numpy(data.actions[pick]).to(device)
        losses, right = [], []
        for m, head in enumerate(self.heads):
            features = net.member_features(both, m)
            logits = head(torch.cat([features[:batch], features[batch:]], 1))
            losses.append(F.cross_entropy(logits, target))
            right.append((logits.detach().argmax(1) == target).float().mean())
        return torch.stack(losses).mean(), torch.stack(right).mean()
