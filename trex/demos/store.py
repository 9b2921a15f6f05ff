"""Demonstrations on disk: one compressed `.npz` per episode plus `index.csv`, both written atomically.

A demo's `.npz` holds `obs` (uint8 [T, 64, 64, 3], the frame each action was chosen on), `actions` [T]
and `rewards` [T] (reward t follows action t). Its return is the sum of its rewards, checked on load.
Nothing is unpickled: arrays load with `allow_pickle=False`.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from toolkit.cli import UserError
from toolkit.files import atomic_write
from trex.level_sets import LEGACY_DEMO_LEVEL_SETS

INDEX = "index.csv"


@dataclass(frozen=True)
class DemoRecord:
    """One row of index.csv."""

    id: str
    game: str
    distribution_mode: str
    level_seed: int
    level_set: str  # train, new_episodes (of the training demos' levels), held_out or val: trex/level_sets.py
    level_range: str  # the levels it was drawn from, "start+count"
    checkpoint: str
    checkpoint_step: int
    noise: float  # epsilon of epsilon-greedy rollouts (D-REX); 0 for plain rollouts
    length: int
    ret: float
    file: str  # relative to the demo folder


@dataclass
class Demo:
    record: DemoRecord
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray


_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(DemoRecord)}
_CAST = {"int": int, "float": float, "str": str}


def parse_record(row: dict) -> DemoRecord:
    """An index row (strings from index.csv, or plain JSON values) as a typed record; TypeError or ValueError
    when a field is missing or malformed."""
    if set(row) != set(_TYPES):
        raise ValueError(f"fields {sorted(row)} are not a demo record's")
    record = DemoRecord(**{k: _CAST[_TYPES[k]](v) for k, v in row.items()})
    if record.level_set in LEGACY_DEMO_LEVEL_SETS:  # a folder written before today's level-set names
        record = replace(record, level_set=LEGACY_DEMO_LEVEL_SETS[record.level_set])
    return record


def check_game(
    records: list[DemoRecord], demo_dir: str | Path, env_name: str, distribution_mode: str, remedy: str
) -> None:
    """Refuse, in one line ending with `remedy`, demos of any other game or distribution mode."""
    games = {(r.game, r.distribution_mode) for r in records}
    if games - {(env_name, distribution_mode)}:
        found = ", ".join(f"{g} ({m})" for g, m in sorted(games))
        raise UserError(f"{demo_dir} holds demos of {found}, not {env_name} ({distribution_mode}); {remedy}")


def read_index(demo_dir: str | Path, check_files: bool = True) -> list[DemoRecord]:
    """The demos listed in `demo_dir/index.csv`; an empty list when there is no index yet."""
    path = Path(demo_dir) / INDEX
    if not path.is_file():
        return []
    records = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != list(_TYPES):
            old = set(reader.fieldnames or ()) == set(_TYPES) - {"level_range"}
            raise UserError(
                f"{path} was written by an older version (no level_range column); generate the demos "
                "anew in another demo_dir"
                if old
                else f"{path} is not a demonstration index (columns {reader.fieldnames})"
            )
        for n, row in enumerate(reader, start=2):
            try:
                records.append(parse_record(row))
            except (TypeError, ValueError):
                raise UserError(f"{path} line {n} is malformed") from None
    if check_files:
        missing = [r.file for r in records if not (Path(demo_dir) / r.file).is_file()]
        if missing:
            raise UserError(f"{path} names {len(missing)} missing demo file(s), e.g. {missing[0]}")
    return records


def _write_index(demo_dir: Path, records: list[DemoRecord]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, list(_TYPES))
            w.writeheader()
            w.writerows(asdict(r) for r in records)

    atomic_write(demo_dir / INDEX, write)


def write_demos(demo_dir: str | Path, new: list[tuple[DemoRecord, np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """Write each (record, obs, actions, rewards) as an .npz, then extend the index in one atomic step.

    A crash before the index is replaced leaves at most unindexed .npz files, which later writes reuse.
    """
    demo_dir = Path(demo_dir)
    records = read_index(demo_dir, check_files=False)
    taken = {r.id for r in records}
    for record, obs, actions, rewards in new:
        if record.id in taken:
            raise UserError(f"demo id {record.id} is already in {demo_dir / INDEX}")
        if obs.dtype != np.uint8 or obs.ndim != 4 or len(obs) != len(actions) or len(obs) != len(rewards):
            raise ValueError(f"demo {record.id}: obs must be uint8 [T,H,W,C] with T actions and rewards")

        def save(tmp: str, obs=obs, actions=actions, rewards=rewards) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, obs=obs, actions=actions.astype(np.int64), rewards=rewards.astype(np.float32))

        atomic_write(demo_dir / record.file, save)
        records.append(record)
        taken.add(record.id)
    _write_index(demo_dir, records)


def load_demo(demo_dir: str | Path, record: DemoRecord) -> Demo:
    """Load one demo, refusing a corrupt or truncated file with one clear line."""
    path = Path(demo_dir) / record.file
    try:
        with np.load(path, allow_pickle=False) as data:
            obs, actions, rewards = data["obs"], data["actions"], data["rewards"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, io.UnsupportedOperation) as err:
        raise UserError(f"demo file {path} is corrupt or truncated ({type(err).__name__})") from None
    if len(obs) != record.length or not np.isclose(float(rewards.sum()), record.ret, atol=1e-3):
        raise UserError(f"demo file {path} does not match its index row (length or return differ)")
    return Demo(record, obs, actions, rewards)


def load_demos(demo_dir: str | Path, level_set: str | None = None) -> list[Demo]:
    return [load_demo(demo_dir, r) for r in read_index(demo_dir) if level_set in (None, r.level_set)]
