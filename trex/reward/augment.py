"""Image augmentation for the reward net's training snippets: a lever for rewards that generalise across levels.

Each snippet gets one draw of every augmentation, applied alike to all of its frames (so a snippet stays one
consistent piece of an episode), and the two snippets of a pair get independent draws. From the augmentations
that helped Procgen policies generalise (DrAC, Raileanu et al. 2021; random convolution, Lee et al. 2020):
- `shift`: pad by 4 pixels (edge values) and crop back at a random offset, DrAC's "crop";
- `colour`: random brightness, contrast and saturation, DrAC's "color-jitter" without its hue shift;
- `conv`: a random 3x3 convolution mixing the colour channels (Lee et al.'s network randomisation).
Frames stay uint8 [F, H, W, C] in and out, so the network sees augmented frames exactly as it sees real ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

AUGMENTATIONS = ("shift", "colour", "conv")
SHIFT_PAD = 4
COLOUR_RANGE = 0.4  # brightness, contrast and saturation factors drawn from [1 - 0.4, 1 + 0.4], as DrAC's


def augment(frames: torch.Tensor, segment: torch.Tensor, names: list[str], generator: torch.Generator) -> torch.Tensor:
    """`frames` [F, H, W, C] uint8, frame f belonging to snippet segment[f] (a snippet's frames are consecutive,
    as `SnippetPairs.frame_index` lays them out); each snippet gets its own draw of each augmentation."""
    if not names or not len(frames):
        return frames
    snippets = int(segment.max().item()) + 1
    x = frames
    if "shift" in names:
        x = _shift(x, segment, snippets, generator)
    if "colour" in names or "conv" in names:
        y = x.float()
        if "colour" in names:
            y = _colour(y, segment, snippets, generator)
        if "conv" in names:
            y = _conv(y, segment, snippets, generator)
        x = y.round_().clamp_(0, 255).to(torch.uint8)
    return x


def _uniform(n: int, generator: torch.Generator, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _shift(x: torch.Tensor, segment: torch.Tensor, snippets: int, generator: torch.Generator) -> torch.Tensor:
    """Pad-and-crop as index clamping (an edge pad repeats the edge pixel), one row gather then one column gather."""
    frames, height, width, channels = x.shape
    dy, dx = torch.randint(-SHIFT_PAD, SHIFT_PAD + 1, (2, snippets), generator=generator).to(x.device)[:, segment]
    base = torch.arange(frames, device=x.device)[:, None]
    rows = (torch.arange(height, device=x.device)[None] + dy[:, None]).clamp_(0, height - 1) + base * height
    x = x.reshape(frames * height, width, channels).index_select(0, rows.reshape(-1))
    x = x.reshape(frames, height, width, channels).transpose(1, 2).reshape(frames * width, height, channels)
    cols = (torch.arange(width, device=x.device)[None] + dx[:, None]).clamp_(0, width - 1) + base * width
    x = x.index_select(0, cols.reshape(-1)).reshape(frames, width, height, channels)
    return x.transpose(1, 2).contiguous()


def _colour(x: torch.Tensor, segment: torch.Tensor, snippets: int, generator: torch.Generator) -> torch.Tensor:
    """Brightness, saturation, then contrast: together one affine map of each pixel's colour per frame."""
    frames, height, width, channels = x.shape
    lo, hi = 1 - COLOUR_RANGE, 1 + COLOUR_RANGE
    b, s, c = (_uniform(snippets, generator, lo, hi).to(x.device)[segment] for _ in range(3))
    eye = torch.eye(channels, device=x.device)
    grey = torch.full((channels, channels), 1 / channels, device=x.device)
    # brightness then saturation: y = b * (s * x + (1 - s) * mean_c(x)) = x @ M, M = b * (s * I + (1 - s) * J / C)
    m = b[:, None, None] * (s[:, None, None] * eye + (1 - s)[:, None, None] * grey)
    # contrast about the frame's mean grey level g: z = g + c * (y - g); mean of y's grey level = mean of x @ M / C
    mean_colour = x.mean((1, 2))  # [F, C]
    g = (mean_colour[:, None, :] @ m).mean(-1)  # [F, 1]
    flat = torch.baddbmm(
        ((1 - c)[:, None] * g)[:, :, None].expand(frames, 1, channels),
        x.reshape(frames, -1, channels),
        c[:, None, None] * m,
    )
    return flat.reshape(frames, height, width, channels)


def _conv(x: torch.Tensor, segment: torch.Tensor, snippets: int, generator: torch.Generator) -> torch.Tensor:
    """A random 3x3 convolution per snippet (Xavier-normal kernels, as Lee et al.), as one grouped convolution with
    a group per frame; each output frame is brought back to its input's mean and spread, so that clamping to 0-255
    keeps new colours, not a black frame. The costliest of the three (benchmarks/reward_training.py)."""
    frames, height, width, channels = x.shape
    std = (2.0 / (2 * channels * 9)) ** 0.5
    kernels = (torch.randn(snippets, channels, channels, 3, 3, generator=generator) * std).to(x.device)
    weight = kernels[segment].reshape(frames * channels, channels, 3, 3)
    nchw = x.permute(0, 3, 1, 2).reshape(1, frames * channels, height, width)
    out = F.conv2d(F.pad(nchw, (1, 1, 1, 1), mode="replicate"), weight, groups=frames)
    out = out.reshape(frames, channels, height, width).permute(0, 2, 3, 1)
    dims = (1, 2, 3)
    scale = x.std(dims, keepdim=True) / out.std(dims, keepdim=True).clamp_min(1e-6)
    return (out - out.mean(dims, keepdim=True)) * scale + x.mean(dims, keepdim=True)
