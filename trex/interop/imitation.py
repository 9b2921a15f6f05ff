"""Demonstrations to and from imitation's trajectory format, so either project can rank, train on or evaluate the
other's trajectories.

    python -m trex.imitation_io export --demo_dir runs/demos --trajectories runs/demos_imitation
    python -m trex.imitation_io import --trajectories rollouts/ --demo_dir runs/imported --env_name starpilot

The format is imitation's current one (`imitation.data.serialize.save`): a HuggingFace `datasets` folder of
TrajectoryWithRew rows (Arrow files, no code). Its older .npz and .pkl files are read by imitation with
pickling allowed, so they are refused here, and imported rows are read with `datasets` directly rather than
imitation's loader, which decodes every `infos` entry with jsonpickle (that can build any object); an info is
read only where it is plain JSON.

A trajectory has one observation more than actions; Procgen never shows the frame after an episode's last action
(it starts the next episode at once), so an exported trajectory ends on its last frame repeated, and an import
drops the final observation. Each exported trajectory's last info holds its index row (`procgen_demo`), so an
export imported back gives the same demo folder; a foreign trajectory takes its level seed from its first info's
`level_seed` (what `trex.interop.gym_env` records) or -1, and its game and level set from the command line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from baseline_agent.envs import GAMES, MODES, OBS_SHAPE
from toolkit.cli import UserError
from toolkit.config import option
from trex.demos.store import DemoRecord, load_demos, parse_record, read_index, write_demos

INFO_KEY = "procgen_demo"
VERBS = ("export", "import")


@dataclass
class ImitationIOConfig:
    """Where the demo folder and imitation's trajectory folder are, and what foreign trajectories are."""

    demo_dir: str = option(
        "", "this project's demo folder (index.csv + .npz): read by export, written by import", path="folder"
    )
    trajectories: str = option("", "imitation's trajectory folder (HuggingFace datasets): written or read")
    env_name: str = option("starpilot", "import: the game of trajectories that carry no index row", choices=GAMES)
    distribution_mode: str = option("easy", "import: their distribution mode", choices=MODES)
    level_set: str = option(
        "train",
        "import: their level set (train, new_episodes or held_out)",
        choices=("train", "new_episodes", "held_out"),
    )

    def check(self) -> None:
        for key in ("demo_dir", "trajectories"):
            if not getattr(self, key):
                raise UserError(f"config key '{key}': a folder is required")


def export_demos(demo_dir: str | Path, out: str | Path) -> int:
    """Write every demo of `demo_dir` as one TrajectoryWithRew of imitation's format in `out`; returns the count."""
    from imitation.data import serialize, types

    demos = load_demos(demo_dir)
    if not demos:
        raise UserError(f"no demos in {demo_dir} (no index.csv or an empty one)")
    trajectories = [
        types.TrajectoryWithRew(
            obs=np.concatenate([d.obs, d.obs[-1:]]),
            acts=d.actions,
            infos=np.array([{}] * (len(d.actions) - 1) + [{INFO_KEY: asdict(d.record)}]),
            terminal=True,
            rews=d.rewards.astype(np.float32),
        )
        for d in demos
    ]
    serialize.save(Path(out), trajectories)
    return len(trajectories)


def _plain_json(text: str) -> Any:
    """An info that jsonpickle wrote for plain values is plain JSON; anything else (objects) is ignored."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return None if "py/" in text else value


def import_demos(src: str | Path, demo_dir: str | Path, cfg: ImitationIOConfig) -> list[DemoRecord]:
    """Add the trajectories of imitation's folder `src` to `demo_dir`; refuses a set without rewards."""
    import datasets

    src = Path(src)
    if not src.is_dir():
        raise UserError(
            f"{src} is not a folder of imitation's trajectory format (HuggingFace datasets); imitation's older "
            ".npz and .pkl files are pickle-based and not read"
        )
    try:
        rows = datasets.load_from_disk(str(src))
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"{src} is not a saved trajectory dataset ({str(err).splitlines()[0][:120]})") from None
    if not isinstance(rows, datasets.Dataset) or not {"obs", "acts", "infos"} <= set(rows.features):
        raise UserError(f"{src} holds no trajectories of imitation's format (columns obs, acts, infos, rews)")
    if "rews" not in rows.features:
        raise UserError(
            f"{src} holds trajectories without rewards (imitation's Trajectory): T-REX ranks demos by their "
            "returns, so only TrajectoryWithRew can be ranked, trained on or evaluated"
        )
    taken = len(read_index(demo_dir, check_files=False))
    table = rows.data.table  # Arrow columns, read without turning every pixel into a Python int
    obs_column = table.column("obs")
    actions, rewards, all_infos = (table.column(name).to_pylist() for name in ("acts", "rews", "infos"))
    new = []
    for n, (acts, rews, infos) in enumerate(zip(actions, rewards, all_infos, strict=True)):
        frames = _frames(obs_column[n])
        if frames is None or len(frames) != len(acts) + 1 or len(rews) != len(acts):
            raise UserError(f"{src} trajectory {n}: its frames or lengths do not fit Procgen's frames {OBS_SHAPE}")
        record = _record(_plain_json(infos[-1]) if infos else None)
        record = record or _foreign(cfg, f"{cfg.level_set}_{taken + n:06d}", infos, len(acts), float(sum(rews)))
        new.append((record, frames[:-1], np.asarray(acts, np.int64), np.asarray(rews, np.float32)))
    write_demos(demo_dir, new)
    return [r for r, *_ in new]


def _frames(obs: Any) -> np.ndarray | None:
    """One trajectory's nested lists of pixels (an Arrow list scalar) as uint8 frames [T+1, 64, 64, 3], or None
    when they are not Procgen frames."""
    import pyarrow.compute as pc

    level = obs.values
    count = len(level)
    for size in OBS_SHAPE:
        lengths = pc.list_value_length(level).to_numpy(zero_copy_only=False)
        if len(lengths) == 0 or (lengths != size).any():
            return None
        level = level.flatten()
    pixels = level.to_numpy(zero_copy_only=False)
    if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
        return None
    return pixels.astype(np.uint8).reshape(count, *OBS_SHAPE)


def _record(last: Any) -> DemoRecord | None:
    """The index row an export stored in a trajectory's last info, if it holds a well-formed one."""
    row = last.get(INFO_KEY) if isinstance(last, dict) else None
    try:
        return parse_record(row) if isinstance(row, dict) else None
    except (TypeError, ValueError):
        return None


def _foreign(cfg: ImitationIOConfig, demo_id: str, infos: list[str], length: int, ret: float) -> DemoRecord:
    first = _plain_json(infos[0]) if infos else None
    seed = first.get("level_seed", -1) if isinstance(first, dict) else -1
    return DemoRecord(
        id=demo_id,
        game=cfg.env_name,
        distribution_mode=cfg.distribution_mode,
        level_seed=int(seed) if isinstance(seed, int) else -1,
        level_set=cfg.level_set,
        level_range="unknown",
        checkpoint=f"imitation:{cfg.trajectories}",
        checkpoint_step=0,
        noise=0.0,
        length=length,
        ret=ret,
        file=f"demos/{demo_id}.npz",
    )
