"""Atomic, durable writes (a temporary file in the same folder, flushed to disk, then `os.replace` and the folder
flushed, so neither a killed process nor a crash of the host leaves a half file under the final name), and the
lock that keeps one writer per run folder."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from toolkit.cli import NO_SPACE, UserError, no_space


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` then move the result onto `path` in one step. The file and then its folder are
    fsynced: after a power loss `path` holds the old or the new bytes, never an empty or truncated file. A full
    disk raises one `UserError` naming the folder; the temporary file goes and `path` keeps its old bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except (OSError, RuntimeError) as err:  # torch reports a short write as RuntimeError("unexpected pos ...")
        if getattr(err, "errno", None) in NO_SPACE or _free_bytes(path.parent) < LOW_SPACE:
            raise no_space(path.parent) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# Free bytes below which a failed write is put down to a full disk (checked before its temporary file goes).
LOW_SPACE = 1 << 20


def _free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
    except OSError:
        return LOW_SPACE
    return st.f_bavail * st.f_frsize


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(text)

    atomic_write(path, write)


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    """The JSON object in `path`, or {} where there is no such file (a step that has not run yet)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def write_csv(path: str | os.PathLike, rows: list[dict], columns: tuple[str, ...]) -> None:
    """`rows` as a CSV of `columns` (other keys left out, None written as an empty cell), atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, columns, extrasaction="ignore")
            w.writeheader()
            w.writerows({k: "" if r.get(k) is None else r[k] for k in columns} for r in rows)

    atomic_write(path, write)


def csv_value(text: str) -> int | float | str | None:
    """A CSV cell as the value `write_csv` wrote: an int, a float, None (empty) or the text."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_csv(path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """The rows of a CSV written by `write_csv`, each cell typed back (`csv_value`), and its columns."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return [{k: csv_value(v) for k, v in r.items()} for r in reader], list(reader.fieldnames or [])


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    """Save tensors and plain Python values only, so that `torch.load(weights_only=True)` reads them."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # through a Python file, so a full disk raises OSError(ENOSPC), not torch's own
            torch.save(obj, f)

    atomic_write(path, write)


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, name: str = ".lock") -> Iterator[None]:
    """Hold `folder/name` locked (flock) for the block: one writer per run folder or output file.

    A second process is refused with one line naming the folder and the holder's pid, before it writes anything;
    the OS releases the lock when its holder dies, so a killed run never leaves a stale lock behind. Taking a run
    folder's lock also removes what `atomic_write` calls cut off by a kill left in it (`remove_stale_temps`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            target = folder if name == ".lock" else folder / name.removeprefix(".").removesuffix(".lock")
            raise UserError(
                f"{target} is in use by another process (pid {holder}); wait for it to end or choose "
                "another output folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        if name == ".lock":
            remove_stale_temps(folder)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_stale_temps(folder: Path) -> None:
    """Delete the temporary files (`.NAME.XXXX.tmp`) of `atomic_write` calls that a kill cut off, in `folder` and
    its subfolders, but not in a subfolder with its own `.lock`: that one belongs to another step, which cleans it
    when it takes its lock. Only called by the holder of `folder`'s lock, so no live writer owns them."""
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            if not (entry / ".lock").exists():
                remove_stale_temps(entry)
        elif entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
            entry.unlink(missing_ok=True)


def exclusive_file(path: str | os.PathLike):
    """`exclusive` for one output file: a hidden lock file beside it, so writers of other files there are free."""
    path = Path(path)
    return exclusive(path.parent, f".{path.name}.lock")
