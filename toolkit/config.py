"""Typed configs shared by every entry point: defaults < YAML file (-c) < command line (--key value).

A config is a dataclass whose fields are declared with `option(...)`: a default, one line of help and
optional bounds. Parsing validates every value and raises `UserError` with one line naming the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from toolkit.cli import UserError
from toolkit.paths import PATH_KINDS, check_paths

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

C = TypeVar("C", bound="DataclassInstance")

# Config keys renamed so that each level set has one name (docs/levels.md): an old name given by a user is refused in
# one line naming the new one; in a file the toolkit wrote (a run's config.yaml, a checkpoint) it is read as the new.
RENAMED = {
    "test_start_level": "held_out_start_level",
    "test_num_levels": "held_out_num_levels",
    "num_test_demos": "num_held_out_demos",
    "eval_num_levels": "held_out_num_levels",
}


def renamed_key_error(key: str) -> UserError:
    return UserError(f"config key '{key}' is now called '{RENAMED[key]}' (one name for each level set: docs/levels.md)")


def upgrade_keys(values: dict[str, Any]) -> dict[str, Any]:
    """A config the toolkit wrote under an old key name, with today's names (a new name already there wins)."""
    out = {k: v for k, v in values.items() if k not in RENAMED}
    out.update({RENAMED[k]: v for k, v in values.items() if k in RENAMED and RENAMED[k] not in values})
    return out


def option(
    default: Any,
    help: str,
    *,
    choices: tuple | None = None,
    min: float | None = None,
    max: float | None = None,
    path: str | None = None,
) -> Any:
    """A config field: its default, one line of meaning, and what values are allowed; `path`: what a path-valued
    key must name (toolkit/paths.py: PATH_KINDS), checked when a command parses its config."""
    assert path is None or path in PATH_KINDS, path
    meta = {"help": help, "choices": choices, "min": min, "max": max, "path": path}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _coerce(key: str, typ: Any, value: Any) -> Any:
    """Convert a YAML or command-line value to the field's type, or raise one clear line."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return _coerce(key, args[0], value)
    if typ is dict or origin is dict:
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                value = None
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise UserError(f"config key '{key}': expected a mapping of key: value, got {value!r}")
        return dict(value)
    if origin is list:
        (inner,) = typing.get_args(typ)
        if isinstance(value, str):
            value = [v for v in value.strip("[]").split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise UserError(f"config key '{key}': expected a list, got {value!r}")
        return [_coerce(key, inner, v) for v in value]
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise UserError(f"config key '{key}': expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise UserError(f"config key '{key}': expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                as_float = float(value)
            except ValueError:
                as_float = None
            if as_float is not None and as_float.is_integer():
                return int(as_float)
        raise UserError(f"config key '{key}': expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, bool):
            raise UserError(f"config key '{key}': expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"config key '{key}': expected a number, got {value!r}") from None
    if typ is str:
        if isinstance(value, dict | list):
            raise UserError(f"config key '{key}': expected a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {typ} for {key}")


def _check_bounds(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    if isinstance(value, dict):
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        if item is None:
            continue
        if meta.get("choices") and item not in meta["choices"]:
            allowed = ", ".join(str(c) for c in meta["choices"])
            raise UserError(f"config key '{key}': {item!r} is not one of: {allowed}")
        if meta.get("min") is not None and item < meta["min"]:
            raise UserError(f"config key '{key}': {item!r} is below the minimum {meta['min']}")
        if meta.get("max") is not None and item > meta["max"]:
            raise UserError(f"config key '{key}': {item!r} is above the maximum {meta['max']}")


def build_config(cls: type[C], values: dict[str, Any]) -> C:
    """Validate `values` (from YAML, the command line or a checkpoint) into a `cls` instance."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    renamed = [k for k in unknown if RENAMED.get(k) in known]
    if renamed:
        raise renamed_key_error(renamed[0])
    if unknown:
        raise UserError(f"unknown config key '{unknown[0]}' (see --help for the {len(known)} allowed keys)")
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _coerce(name, hints[name], value)
        _check_bounds(name, kwargs[name], known[name].metadata)
    cfg = cls(**kwargs)
    check = getattr(cfg, "check", None)
    if check is not None:
        check()
    return cfg


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, second: int):
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader refusing a mapping with a key written twice, which plain YAML reads as its last value."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: merged keys may be overridden
            continue
        key, line = loader.construct_object(key_node, deep=True), key_node.start_mark.line + 1
        try:
            if key in seen:
                raise _DuplicateKey(key, seen[key], line)
            seen[key] = line
        except TypeError:  # an unhashable key: construct_mapping refuses it in its own words
            continue
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping, with one clear error line for a missing, unreadable, binary or malformed file, and for a
    key written twice."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise UserError(f"cannot read config file {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"config file {path} is not text (byte {err.object[err.start]:#04x} at {err.start})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as dup:
        raise UserError(
            f"config file {path}: key '{dup.key}' is written twice (lines {dup.first} and {dup.second}); keep one"
        ) from None
    except yaml.YAMLError as err:
        raise UserError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of key: value")
    return data


def _help_line(f: dataclasses.Field) -> str:
    """The key's --help line; argparse %-formats help texts, so every % of it is escaped ("95% interval")."""
    default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
    extra = f" (choices: {', '.join(map(str, f.metadata['choices']))})" if f.metadata.get("choices") else ""
    return f"{f.metadata['help']}{extra} [default: {default}]".replace("%", "%%")


def parse_config(cls: type[C], argv: list[str] | None, prog: str, description: str) -> C:
    """Parse `-c FILE.yaml` and `--key value` flags into a validated `cls` instance."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, allow_abbrev=False, argument_default=argparse.SUPPRESS
    )
    parser.add_argument("-c", "--config", help="YAML file of config keys (the command line wins over it)")
    for f in dataclasses.fields(cls):
        parser.add_argument(f"--{f.name}", metavar=f.name.upper(), help=_help_line(f))
    args, rest = parser.parse_known_args(argv)
    if rest:
        flag = next((r for r in rest if r.startswith("-")), rest[0])
        key = flag.lstrip("-").split("=")[0]
        if key in RENAMED:
            raise renamed_key_error(key)
        raise UserError(f"unknown config key or argument '{flag}' (see --help)")
    values = vars(args)
    merged = load_yaml(values.pop("config")) if "config" in values else {}
    merged.update(values)
    cfg = build_config(cls, merged)
    check_paths(cfg)
    return cfg


def config_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def diff_configs(
    saved: dict[str, Any], current: dict[str, Any], ignore: tuple[str, ...], defaults: dict[str, Any] | None = None
) -> list[str]:
    """Keys whose values differ between two resolved configs, ignoring `ignore`; `saved` may use old key names. A key
    `saved` lacks reads as its value in `defaults` (a key added later defaults to what was done before it existed)."""
    saved = {**(defaults or {}), **upgrade_keys(saved)}
    keys = (set(saved) | set(current)) - set(ignore)
    return sorted(k for k in keys if saved.get(k) != current.get(k))


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages a run's numbers depend on."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "procgen-mirror", "gym3", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def save_run_config(run_dir: str | os.PathLike, resolved: dict[str, Any]) -> None:
    """Write the resolved config.yaml and versions.json that every run keeps beside its outputs."""
    from toolkit.files import write_json, write_text

    write_text(Path(run_dir) / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    write_json(Path(run_dir) / "versions.json", package_versions())
