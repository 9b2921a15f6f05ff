"""Checkpoints: tensors and plain values only, loaded with `weights_only=True`, named by environment step.

A checkpoint is usable on its own: it carries the game, distribution mode, network sizes and step count. The
newest one also has a sidecar, `step_X.resume.pt`, with what an exact resume needs beyond the weights (every
env's game state, random generators, episode statistics): a run killed and rerun computes what it would have
computed uninterrupted. Older sidecars are removed, so only the newest checkpoint pays for that state. A sidecar
is never taken for a checkpoint (it sorts after its checkpoint in a listing): it is refused naming the checkpoint.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import torch

from baseline_agent.models import Policy
from toolkit.cli import UserError
from toolkit.config import diff_configs, load_yaml
from toolkit.files import torch_save

FORMAT = "procgen-ppo-checkpoint/1"
_NAME = re.compile(r"^step_(\d+)\.pt$")
SIDECAR = ".resume.pt"


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:010d}.pt"


def list_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    """Checkpoints in a folder, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def resume_path(checkpoint: str | Path) -> Path:
    return Path(checkpoint).with_suffix(SIDECAR)


def save_checkpoint(path: str | Path, state: dict[str, Any], resume: dict[str, Any] | None = None) -> None:
    """Write a checkpoint, and with `resume` its sidecar first, then drop older sidecars: the newest checkpoint
    always has its sidecar, whenever a kill comes."""
    path = Path(path)
    bad = [k for k, v in state["model"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:  # the trainer stops before this; a checkpoint holding NaN would poison every later step
        raise UserError(f"refusing to write {path}: the weights hold non-finite values ({bad[0]})")
    if resume is not None:
        torch_save(resume_path(path), {"format": FORMAT, "step": state["step"], **resume})
    torch_save(path, {"format": FORMAT, **state})
    if resume is not None:
        for old in path.parent.glob("step_*.resume.pt"):
            if old != resume_path(path):
                old.unlink(missing_ok=True)


def export_weights(src: str | Path, dst_dir: str | Path, half: bool = False) -> Path:
    """A copy of checkpoint `src` in `dst_dir` with what using it needs (weights, spec, config, step) and no training
    state (optimizer, reward normaliser): the small file a result ships so that others can roll it out. `half`:
    the weights in fp16 (half the size; loading casts them back to the model's fp32)."""
    state = load_checkpoint(src)
    dst = Path(dst_dir) / Path(src).name
    kept = {k: state[k] for k in ("model", "step", "update", "config", "model_spec") if k in state}
    if half:
        kept["model"] = {k: v.half() if v.is_floating_point() else v for k, v in kept["model"].items()}
    torch_save(dst, {"format": FORMAT, **kept})
    return dst


def evenly_spaced(checkpoints: list[Path], count: int | None) -> list[Path]:
    """`count` of `checkpoints` (oldest first) spread evenly over the run, the first and last among them; all of
    them for None or a count at least their number."""
    if count is None or count >= len(checkpoints):
        return list(checkpoints)
    if count < 2:
        raise ValueError("keep at least the first and the last checkpoint")
    last = len(checkpoints) - 1
    return [checkpoints[round(i * last / (count - 1))] for i in range(count)]


def ship(run_dir: str | Path, out: str | Path, count: int | None = None, half: bool = False) -> list[Path]:
    """A run's checkpoints as a result ships them: `count` of them spread over the run (`evenly_spaced`), weights
    only (`export_weights`), in `out`/checkpoints, with the run's curve, config, summary and package versions."""
    run_dir, out = Path(run_dir), Path(out)
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise UserError(f"no step_*.pt checkpoints in {run_dir / 'checkpoints'}")
    files = ("progress.csv", "learning_curve.png", "config.yaml", "summary.json", "versions.json")
    missing = [name for name in files if not (run_dir / name).is_file()]
    if missing:  # checked before anything is written: a stopped run ships nothing
        raise UserError(
            f"{run_dir} is not a finished run (no {', '.join(missing)}): rerun its training command to finish it, "
            "with --total_timesteps at its last checkpoint's step to stop there"
        )
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    shipped = [export_weights(path, out / "checkpoints", half) for path in evenly_spaced(found, count)]
    for name in files:
        shutil.copy(run_dir / name, out / name)
    return shipped


def load_resume_state(checkpoint: str | Path, step: int) -> dict[str, Any] | None:
    """The sidecar of `checkpoint` if it belongs to that step and can be read, else None (an inexact resume)."""
    path = resume_path(checkpoint)
    if not path.is_file():
        return None
    try:
        state = _read(path, "cpu")
    except UserError as err:
        print(f"note: {err}; resuming without it", flush=True)
        return None
    return state if state.get("step") == step else None


def resume_point(run_dir: str | Path, resolved: dict[str, Any], resumable: tuple[str, ...]) -> Path | None:
    """The newest readable checkpoint of a run of the same config in `run_dir` (None for a new run); a run of
    another config there is refused in one line, whatever it wrote. A newest checkpoint that cannot be read (a
    crash of the host cut it) is passed over for the one before, in one line."""
    run_dir = Path(run_dir)
    saved = run_dir / "config.yaml"
    if saved.exists():
        diff = diff_configs(load_yaml(saved), resolved, resumable)
        if diff:
            raise UserError(
                f"{run_dir} holds a run with another config (keys differ: {', '.join(diff)}); use a new --run_dir"
            )
    found = list_checkpoints(run_dir / "checkpoints")
    for k in range(len(found) - 1, -1, -1):
        try:
            load_checkpoint(found[k])
        except UserError as err:
            older = f"resuming from {found[k - 1].name}" if k else "starting anew"
            print(f"note: {err}; {older}", flush=True)
            continue
        return found[k]
    return None


def _read(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """A file of this format, read with `weights_only=True`; one `UserError` for a missing, corrupt or foreign one."""
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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; one clear `UserError` for a missing, corrupt or foreign file, or a sidecar."""
    path = Path(path)
    if path.name.endswith(SIDECAR):
        checkpoint = path.with_name(path.name.removesuffix(SIDECAR) + ".pt")
        raise UserError(
            f"{path} is the resume state of a checkpoint, not a checkpoint: use {checkpoint} (or its folder, "
            f"{path.parent}, for the newest)"
        )
    state = _read(path, map_location)
    if "model" not in state:
        raise UserError(f"{path} holds no weights: not a checkpoint (a resume state renamed?)")
    return state


def policy_from_checkpoint(state: dict[str, Any], device: str | torch.device = "cpu") -> Policy:
    spec = state["model_spec"]
    policy = Policy(spec["num_actions"], spec["channels"], spec["hidden_size"], tuple(spec["obs_shape"]))
    policy.load_state_dict(state["model"])
    return policy.to(device).eval()


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> tuple[Policy, dict[str, Any]]:
    """The public way to use a step-1 or step-4 checkpoint: (policy in eval mode, its metadata, with the file
    read as "path"). `path` may also be a folder of checkpoints: its newest one is read."""
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise UserError(f"no step_*.pt checkpoints in {path}")
        path = found[-1]
    state = load_checkpoint(path)
    meta = {**{k: state[k] for k in ("model_spec", "step", "config")}, "path": str(path)}
    return policy_from_checkpoint(state, device), meta
