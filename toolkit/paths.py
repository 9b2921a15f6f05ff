"""What a path-valued config key must be, checked when a command parses its config, before it writes anything.

Each such key is declared with `option(..., path=KIND)`; an empty value means "not given" and is not checked.
- `folder`: a folder that exists, or one that can be created (its nearest existing parent is a writable folder):
  run folders and other output folders; an input folder's contents are checked by the step that reads it.
- `file`: an existing file (a checkpoint, a reward model, a YAML file).
- `new_file`: a file to write: not a folder, and its folder exists or can be created, writable.
- `file_or_folder`: an existing file or folder (a checkpoint, or a checkpoints folder).
Anything else is refused in one line naming the key, the path and what is wrong with it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from toolkit.cli import UserError

PATH_KINDS = ("folder", "file", "new_file", "file_or_folder")


def _creatable(key: str, path: Path) -> None:
    """`path` does not exist: refuse it unless its nearest existing parent is a writable folder."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"config key '{key}': {path} cannot be created: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"config key '{key}': {path} cannot be created: {parent} is not writable")


def check_path(key: str, value: str, kind: str) -> None:
    """Refuse `value` for `key` in one line unless it is usable as `kind` (PATH_KINDS)."""
    path = Path(value)
    exists = path.exists()
    if kind == "folder":
        if exists and not path.is_dir():
            raise UserError(f"config key '{key}': {path} exists and is not a folder")
        if exists and not os.access(path, os.W_OK | os.X_OK):
            raise UserError(f"config key '{key}': {path} is not writable")
        if not exists:
            _creatable(key, path)
    elif kind == "new_file":
        if path.is_dir():
            raise UserError(f"config key '{key}': {path} is a folder, not a file")
        if exists and not os.access(path, os.W_OK):
            raise UserError(f"config key '{key}': {path} is not writable")
        if not exists:
            _creatable(key, path)
    elif not exists:
        raise UserError(f"config key '{key}': {path} does not exist")
    elif kind == "file" and not path.is_file():
        raise UserError(f"config key '{key}': {path} is a folder, not a file")
    elif not os.access(path, os.R_OK):
        raise UserError(f"config key '{key}': {path} is not readable")


def check_paths(cfg: Any) -> None:
    """`check_path` for every path-valued key of the config `cfg` (a list: each of its entries)."""
    for f in dataclasses.fields(cfg):
        kind = f.metadata.get("path")
        if kind is None:
            continue
        value = getattr(cfg, f.name)
        for entry in value if isinstance(value, list) else [value]:
            if entry:
                check_path(f.name, str(entry), kind)
