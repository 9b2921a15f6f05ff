"""Every path a user names, in every entry point, is usable or refused in one line (toolkit/paths.py, and the config
file itself: toolkit/config.py load_yaml): exit status 2, one line naming the key and what is wrong, nothing written.

The family is walked from the config classes themselves: each entry point's path-valued keys (declared with
`option(..., path=KIND)`) are fed the bad kinds of their KIND, and every key whose name says it is a path must be
declared so."""

from __future__ import annotations

import dataclasses
import re
import runpy
import signal
from pathlib import Path

import pytest

from toolkit.cli import run_main
from toolkit.paths import PATH_KINDS

ROOT = Path(__file__).resolve().parents[1]

# Each entry point: its script, verb, config class, and the flags that satisfy its own checks (the bad value of the
# key under test comes after them, and the command line's last value wins). OK_FILE and OK_DIR exist. rec_video.py
# takes exactly one of load_path and demo: load_path is tried without the demo (EXCLUSIVE).
ENTRY_POINTS = [
    ("baseline_agent/train.py", [], "PPOConfig", []),
    ("trex/train_policy.py", [], "PolicyConfig", ["--reward_model", "OK_FILE"]),
    ("trex/reward_model.py", ["demos"], "TrexConfig", []),
    ("trex/reward_model.py", ["train"], "TrexConfig", []),
    ("trex/reward_model.py", ["picture"], "TrexConfig", []),
    ("trex/study.py", [], "StudyConfig", []),
    ("trex/sweep.py", [], "SweepConfig", []),
    ("test_policy.py", [], "EvalConfig", ["--load_path", "OK_FILE"]),
    ("rec_video.py", [], "VideoConfig", ["--demo", "OK_FILE"]),
    ("trex/imitation_io.py", ["export"], "ImitationIOConfig", ["--demo_dir", "OK_DIR", "--trajectories", "OK_DIR"]),
]
IDS = [" ".join([s, *v]) for s, v, *_ in ENTRY_POINTS]
EXCLUSIVE = {("rec_video.py", "load_path"): "--demo"}
COMPANIONS = {"dynamics_demo_dir": ["--inverse_dynamics", "1"]}  # keys refused without another key set

# The bad kinds of each path kind: (what it is, the path below tmp_path, what the one line must say).
BAD = {
    "folder": [
        ("an existing file", "a_file", "exists and is not a folder"),
        ("a folder below a file", "a_file/run", "cannot be created: {tmp}/a_file is not a folder"),
    ],
    "file": [
        ("a missing file", "missing.pt", "does not exist"),
        ("a folder", "a_dir", "is a folder, not a file"),
    ],
    "new_file": [
        ("a folder", "a_dir", "is a folder, not a file"),
        ("a file below a file", "a_file/out.mp4", "cannot be created: {tmp}/a_file is not a folder"),
    ],
    "file_or_folder": [("a missing path", "missing.pt", "does not exist")],
}
# Config files that cannot be used: (what it is, its name, its content or None for a folder, the line's words).
BAD_CONFIG_FILES = [
    ("a missing file", "missing.yaml", "", "cannot read config file {path}: No such file or directory"),
    ("a folder", "a_dir", None, "cannot read config file {path}: Is a directory"),
    ("a binary file", "binary.yaml", b"\x00\xff\xfe\x01", "config file {path} is not text (byte 0xff at 1)"),
    ("a key written twice", "twice.yaml", b"seed: 1\nname: x\nseed: 2\n", "'seed' is written twice (lines 1 and 3)"),
]
# A key whose name says it holds a path must declare what kind.
PATH_LIKE = re.compile(r"(_dir|_path|_config)$|^(out|demo|reward_model|trajectories|checkpoints)$")
# Checked where they are used: explicit checkpoint files, read and refused one by one by the demos step; imitation's
# trajectories, a folder to write (export) or a folder or an old pickle-based file to read (import refuses the latter
# in its own words).
NOT_PATHS = {"checkpoints", "trajectories"}


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))}


def _run(script: str, argv: list[str], capsys) -> tuple[int, list[str]]:
    """`script`'s main as its command line runs it: (exit status, stderr lines)."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as done:
            run_main(runpy.run_path(str(ROOT / script))["main"], argv)
    finally:
        signal.signal(signal.SIGTERM, handler)
    return int(done.value.code), capsys.readouterr().err.strip().splitlines()


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A folder with a file and a folder in it, as the working directory (a default output path would land here)."""
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _path_keys(script: str, cls: str) -> dict[str, str]:
    fields = dataclasses.fields(runpy.run_path(str(ROOT / script))[cls])
    return {f.name: f.metadata["path"] for f in fields if f.metadata.get("path")}


@pytest.mark.parametrize("script, verb, cls, base", ENTRY_POINTS, ids=IDS)
def test_each_path_key_refuses_each_bad_kind_in_one_line_and_writes_nothing(script, verb, cls, base, place, capsys):
    keys = _path_keys(script, cls)
    assert keys and "run_dir" in keys or script in ("test_policy.py", "rec_video.py", "trex/imitation_io.py")
    fixed = [{"OK_FILE": str(place / "a_file"), "OK_DIR": str(place / "a_dir")}.get(a, a) for a in base]
    before = _files(place)
    tried = 0
    for key, kind in keys.items():
        flags = fixed
        if (script, key) in EXCLUSIVE:
            at = fixed.index(EXCLUSIVE[script, key])
            flags = fixed[:at] + fixed[at + 2 :]
        flags = [*flags, *COMPANIONS.get(key, [])]
        for what, rel, words in BAD[kind]:
            path = place / rel
            code, err = _run(script, [*verb, *flags, f"--{key}", str(path)], capsys)
            expected = f"error: config key '{key}': {path} " + words.format(tmp=place).split(": ", 1)[0]
            assert code == 2, (key, what)
            assert len(err) == 1 and err[0].startswith(expected), (key, what, err)
            assert words.format(tmp=place) in err[0], (key, what, err)
            assert _files(place) == before, (key, what)
            tried += 1
    assert tried == sum(len(BAD[k]) for k in keys.values())


@pytest.mark.parametrize("script, verb, cls, base", ENTRY_POINTS, ids=IDS)
def test_a_config_file_that_cannot_be_used_is_refused_in_one_line(script, verb, cls, base, place, capsys):
    for what, name, content, words in BAD_CONFIG_FILES:
        path = place / name
        if content:
            path.write_bytes(content)
        before = _files(place)
        code, err = _run(script, [*verb, "-c", str(path)], capsys)
        assert code == 2 and len(err) == 1, (what, err)
        assert err[0].startswith("error: ") and words.format(path=path) in err[0], (what, err)
        assert _files(place) == before, what


def test_every_key_named_as_a_path_declares_its_kind():
    undeclared = [
        f"{cls}.{f.name}"
        for script, _, cls, _ in ENTRY_POINTS
        for f in dataclasses.fields(runpy.run_path(str(ROOT / script))[cls])
        if PATH_LIKE.search(f.name) and f.name not in NOT_PATHS and f.metadata.get("path") not in PATH_KINDS
    ]
    assert not undeclared, f"path-valued keys without a path kind: {', '.join(undeclared)}"


def test_a_usable_path_passes_and_a_new_output_folder_is_not_created_by_the_check(tmp_path):
    from toolkit.paths import check_path

    check_path("run_dir", str(tmp_path / "new" / "deeper"), "folder")
    check_path("out", str(tmp_path / "new" / "video.mp4"), "new_file")
    (tmp_path / "model.pt").write_text("x")
    check_path("reward_model", str(tmp_path / "model.pt"), "file")
    check_path("load_path", str(tmp_path), "file_or_folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_yaml_merge_keys_and_nested_sections_still_load(tmp_path):
    from toolkit.config import load_yaml

    path = tmp_path / "c.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nppo:\n  <<: *b\n  x: 3\ntrex: {a: 1}\n")
    assert load_yaml(path) == {"base": {"x": 1, "y": 2}, "ppo": {"x": 3, "y": 2}, "trex": {"a": 1}}
    path.write_text("ppo:\n  num_envs: 4\n  num_envs: 8\n")
    with pytest.raises(Exception, match=r"key 'num_envs' is written twice \(lines 2 and 3\)"):
        load_yaml(path)
