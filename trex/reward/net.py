"""`RewardNet`: a per-frame CNN reward r(frame); a snippet's return is the sum of its frames' rewards.

The architectures:
- `study2020`: the network of the 2020 Procgen study (its trex/train_reward.py `RewardNet`): conv 3x3/32 ->
  max-pool 4 stride 2 -> leaky ReLU, twice, conv 3x3/32 -> leaky ReLU, fc 3872 -> 64, leaky ReLU, fc 1, fed
  raw 0-255 pixels as that study did.
- `trex_atari`: the T-REX Atari network (Brown et al. 2019: 4 convs of 16 filters, 7x7/3, 5x5/2, 3x3/1, 3x3/1,
  leaky ReLU, fc 64 -> 1), which the 2020 study's file keeps commented out; here on 3-channel 64x64 frames.
- `fast` (default): a 4x4 stride-4 "patchify" first convolution, so the costly full-resolution layer reads each
  pixel once, and ReLU (cheaper than leaky ReLU on CPU); about a quarter of trex_atari's multiply-adds per frame.
  Its fully connected layer has separate weights for each screen position.
- `pooled`: position-invariant: `fast`'s patchify convolution, two 3x3 convolutions (32 filters, the first of
  stride 2) to an 8x8 map, a reward for each of its cells (1x1 convolutions 32 -> 64 -> 1, the same weights at
  every position), averaged over the map; an explosion scores the same wherever on the screen it happens.
- `impala`: the Procgen paper's IMPALA trunk (three conv-maxpool-two-residual-block sequences, 16/32/32 channels,
  baseline_agent/models.py's own), then the head of the others (fc 64, leaky ReLU, fc 1); Cobbe et al. (2020)
  found larger networks generalise better on Procgen. About 45x `fast`'s time per training step on a CPU
  (benchmarks/reward_net_cost.py).
`trex_atari`, `fast`, `pooled` and `impala` see pixels scaled to [0, 1].

`frame_stack` k > 1 (a step-3 lever, off by default): the reward of frame t reads frames t-k+1 .. t, stacked along
the channels, oldest first (`stack_frames`), so a net can see what moved, appeared or burst since the step before;
StarPilot draws an explosion on every hit and pays on a kill. Step 4 and the Gymnasium wrappers score one frame per
step and refuse such a model in one line.

An ensemble averages independently initialised members; each member is trained on its own loss.
The reward model file holds tensors and plain values only and loads with `weights_only=True`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from baseline_agent.models import ConvSequence
from toolkit.cli import UserError
from toolkit.files import torch_save

FORMAT = "trex-reward-model/1"
ARCHITECTURES = ("fast", "study2020", "trex_atari", "pooled", "impala")
# study2020 saw raw 0-255 values
PIXEL_SCALE = {"fast": 1 / 255, "study2020": 1.0, "trex_atari": 1 / 255, "pooled": 1 / 255, "impala": 1 / 255}
FILE_NAME = "reward_model.pt"


def stack_frames(frames: np.ndarray, index: np.ndarray, first: np.ndarray, depth: int) -> np.ndarray:
    """uint8 [B, H, W, depth*C]: frame `index[b]` of the concatenated `frames` with the depth-1 frames before it,
    oldest first, along the channels. Before its demo's first frame (`first[b]`, the index it starts at) the first
    frame repeats: an episode's first step has no past. depth 1 is the frames themselves."""
    if depth == 1:
        return frames[index]
    return np.concatenate([frames[np.maximum(index - lag, first)] for lag in range(depth - 1, -1, -1)], axis=-1)


def _member(architecture: str, obs_shape: tuple[int, int, int], frame_stack: int) -> nn.Sequential:
    channels = obs_shape[2] * frame_stack
    if architecture == "study2020":
        convs = [
            nn.Conv2d(channels, 32, 3),
            nn.MaxPool2d(4, stride=2),
            nn.LeakyReLU(),
            nn.Conv2d(32, 32, 3),
            nn.MaxPool2d(4, stride=2),
            nn.LeakyReLU(),
            nn.Conv2d(32, 32, 3),
            nn.LeakyReLU(),
        ]
    elif architecture == "trex_atari":
        convs = [
            nn.Conv2d(channels, 16, 7, stride=3),
            nn.LeakyReLU(),
            nn.Conv2d(16, 16, 5, stride=2),
            nn.LeakyReLU(),
            nn.Conv2d(16, 16, 3, stride=1),
            nn.LeakyReLU(),
            nn.Conv2d(16, 16, 3, stride=1),
            nn.LeakyReLU(),
        ]
    elif architecture == "fast":
        convs = [
            nn.Conv2d(channels, 16, 4, stride=4),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=1),
            nn.ReLU(),
        ]
    elif architecture == "impala":
        convs = [ConvSequence(channels, 16), ConvSequence(16, 32), ConvSequence(32, 32), nn.ReLU()]
    elif architecture == "pooled":
        encoder = nn.Sequential(
            nn.Conv2d(channels, 16, 4, stride=4),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1, padding=1),
            nn.ReLU(),
        )
        return nn.Sequential(
            encoder,
            nn.Conv2d(32, 64, 1),
            nn.LeakyReLU(),
            nn.Conv2d(64, 1, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
    else:
        raise UserError(f"unknown reward network '{architecture}' (choose one of: {', '.join(ARCHITECTURES)})")
    trunk = nn.Sequential(*convs, nn.Flatten())
    with torch.no_grad():
        width = trunk(torch.zeros(1, channels, *obs_shape[:2])).shape[1]
    return nn.Sequential(trunk, nn.Linear(width, 64), nn.LeakyReLU(), nn.Linear(64, 1))


class RewardNet(nn.Module):
    """Per-frame reward of uint8 NHWC frames (stacked by `stack_frames` where `frame_stack` > 1: [B, H, W,
    frame_stack*C]); `forward` is the ensemble mean, `member_rewards` each member's."""

    def __init__(
        self,
        architecture: str = "fast",
        ensemble_size: int = 1,
        obs_shape: tuple[int, int, int] = (64, 64, 3),
        frame_stack: int = 1,
    ):
        super().__init__()
        self.architecture, self.ensemble_size, self.frame_stack = architecture, ensemble_size, frame_stack
        self.obs_shape: tuple[int, int, int] = (int(obs_shape[0]), int(obs_shape[1]), int(obs_shape[2]))
        self.members = nn.ModuleList(_member(architecture, self.obs_shape, frame_stack) for _ in range(ensemble_size))

    def _scaled(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC frames as contiguous float NCHW (fewer layout copies), scaled as the architecture expects."""
        x = obs.permute(0, 3, 1, 2).contiguous().float()
        if PIXEL_SCALE[self.architecture] != 1.0:
            x.mul_(PIXEL_SCALE[self.architecture])
        return x

    def member_rewards(self, obs: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """[M, B] rewards of uint8 frames [B, H, W, C] (or [1, B] of one `member`), scaled as the architecture
        expects on the way in."""
        x = self._scaled(obs)
        members = self.members if member is None else [self.members[member]]
        return torch.stack([m(x).squeeze(1) for m in members])

    def member_features(self, obs: torch.Tensor, member: int) -> torch.Tensor:
        """[B, D] encoder features of one member: its convolutions' output, flattened (for an auxiliary loss)."""
        net = self.members[member]
        assert isinstance(net, nn.Sequential)  # every architecture's member is (encoder, head...)
        return net[0](self._scaled(obs)).flatten(1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """[B] per-frame rewards (ensemble mean) of uint8 frames [B, H, W, C]."""
        return self.member_rewards(obs).mean(0)


def save_reward_model(path: str | Path, model: RewardNet, meta: dict[str, Any]) -> None:
    """Write the model atomically with what is needed to use it alone (game, mode, architecture, sizes).

    `meta` must hold plain values (it is merged in, e.g. game, distribution_mode, val_accuracy).
    """
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:  # training stops before this; a reward holding NaN would poison the policy trained on it
        raise UserError(f"refusing to write {path}: the weights hold non-finite values ({bad[0]})")
    state = {
        "format": FORMAT,
        **meta,
        "architecture": model.architecture,
        "ensemble_size": model.ensemble_size,
        "obs_shape": list(model.obs_shape),
        "frame_stack": model.frame_stack,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    torch_save(path, state)


def load_reward_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[RewardNet, dict[str, Any]]:
    """The public way to use a reward model: (RewardNet in eval mode on `device`, its metadata without weights).

    A missing, corrupt or foreign file raises `UserError`.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"reward model not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for truncated or foreign files
        raise UserError(f"cannot read reward model {path}: {str(err).splitlines()[0][:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a T-REX reward model of this project")
    try:
        shape = tuple(state["obs_shape"])
        model = RewardNet(state["architecture"], int(state["ensemble_size"]), shape, int(state.get("frame_stack", 1)))
        model.load_state_dict(state["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise UserError(f"reward model {path} is damaged ({type(err).__name__})") from None
    meta = {k: v for k, v in state.items() if k != "state_dict"}
    return model.to(device).eval(), meta
