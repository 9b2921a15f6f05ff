"""The IMPALA CNN policy of the Procgen paper (channels 16/32/32, 256 units) with policy and value heads.

Initialisation follows the reference (train-procgen on TF1): Glorot-uniform convolutions and dense layer
(TF's default), zero biases, orthogonal heads with gain 0.01 (policy) and 1.0 (value) as in baselines.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Categorical

from toolkit.cli import UserError


class NonFinite(UserError):
    """The policy's outputs hold NaN or inf: its weights overflowed (a diverging training run)."""


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The second ReLU may work in place (a convolution's backward needs its input, not its output): one
        # activation-sized buffer less, a faster update on CPU. The first may not: x feeds the sum.
        return x + self.conv1(torch.relu_(self.conv0(torch.relu(x))))


class ConvSequence(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res0, self.res1 = ResidualBlock(out_channels), ResidualBlock(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res1(self.res0(self.pool(self.conv(x))))


class ImpalaCNN(nn.Module):
    """uint8 frames [B, 64, 64, 3] -> features [B, hidden_size]; scaling to [0, 1] happens inside."""

    def __init__(
        self,
        channels: list[int] | tuple[int, ...] = (16, 32, 32),
        hidden_size: int = 256,
        obs_shape: tuple[int, int, int] = (64, 64, 3),
    ):
        super().__init__()
        h, w, c = obs_shape
        seqs = []
        for out in channels:
            seqs.append(ConvSequence(c, out))
            c, h, w = out, (h + 1) // 2, (w + 1) // 2
        self.seqs = nn.Sequential(*seqs)
        self.fc = nn.Linear(c * h * w, hidden_size)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # NHWC uint8 -> NCHW float: the permute keeps channels-last memory, which CPU convolutions prefer.
        x = obs.permute(0, 3, 1, 2).float().div_(255.0)
        x = self.seqs(x)
        return torch.relu(self.fc(torch.relu(torch.flatten(x, 1))))


class Policy(nn.Module):
    """Categorical policy and value function on a shared IMPALA trunk."""

    def __init__(
        self,
        num_actions: int,
        channels=(16, 32, 32),
        hidden_size: int = 256,
        obs_shape: tuple[int, int, int] = (64, 64, 3),
    ):
        super().__init__()
        self.trunk = ImpalaCNN(channels, hidden_size, obs_shape)
        self.pi = nn.Linear(hidden_size, num_actions)
        self.vf = nn.Linear(hidden_size, 1)
        nn.init.orthogonal_(self.pi.weight, gain=0.01)
        nn.init.orthogonal_(self.vf.weight, gain=1.0)
        nn.init.zeros_(self.pi.bias)
        nn.init.zeros_(self.vf.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Action logits [B, A] and values [B], float32 also under bf16 autocast: the heads are cheap and
        run in float32 so that log-probabilities and values keep their precision (see PPOConfig.precision)."""
        z = self.trunk(obs)
        with torch.autocast(z.device.type, enabled=False):
            z = z.float()
            return self.pi(z), self.vf(z).squeeze(-1)

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, greedy: bool = False, forward=None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Actions, their log-probabilities and the values, without autograd; `forward` may be a compiled
        version of this module."""
        logits, value = (self if forward is None else forward)(obs)
        if not bool(torch.isfinite(logits).all() & torch.isfinite(value).all()):  # one sync; .cpu() of actions follows
            raise NonFinite("the policy's action logits or values are not finite: its weights overflowed")
        dist = Categorical(logits=logits)
        action = logits.argmax(-1) if greedy else dist.sample()
        return action, dist.log_prob(action), value
