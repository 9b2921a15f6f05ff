"""Checkpoints: tensors and plain values only, loaded with `weights_only=True`, named by environment step.

A checkpoint is usable on its own: it carries the game, distribution mode, network sizes and step count.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from baseline_agent.cli import UserError
from baseline_agent.files import torch_save
from baseline_agent.models import Policy

FORMAT = "procgen-ppo-checkpoint/1"
_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:010d}.pt"


def list_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    """Checkpoints in a folder, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    torch_save(path, {"format": FORMAT, **state})


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; one clear `UserError` for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many kinds for truncated or foreign files
        detail = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise UserError(f"cannot read checkpoint {path}: not a PyTorch file, or truncated ({detail})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a PPO checkpoint of this project")
    return state


def policy_from_checkpoint(state: dict[str, Any], device: str | torch.device = "cpu") -> Policy:
    spec = state["model_spec"]
    policy = Policy(spec["num_actions"], spec["channels"], spec["hidden_size"], tuple(spec["obs_shape"]))
    policy.load_state_dict(state["model"])
    return policy.to(device).eval()


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> tuple[Policy, dict[str, Any]]:
    """The public way to use a step-1 or step-4 checkpoint: (policy in eval mode, its metadata)."""
    state = load_checkpoint(path)
    meta = {k: state[k] for k in ("model_spec", "step", "config")}
    return policy_from_checkpoint(state, device), meta
