"""The shape of the repo's own Python: no function or method longer than MAX_LINES lines, so that each stays
readable at once. Only the repo's own paths are walked (not .venv, worktrees or build folders)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OWN_PYTHON = ("toolkit", "baseline_agent", "trex", "benchmarks", "tests", "test_policy.py", "rec_video.py")
MAX_LINES = 130


def _skipped(folder: str) -> bool:
    """A folder below the walked paths that holds no source of ours: hidden ones and __pycache__."""
    return folder.startswith(".") or folder == "__pycache__"


def python_files() -> list[Path]:
    files = []
    for name in OWN_PYTHON:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        else:
            files += [p for p in path.rglob("*.py") if not any(_skipped(d) for d in p.relative_to(ROOT).parts[:-1])]
    return sorted(files)


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualified name, length in lines from `def` to its last line) of every function, method and nested one."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            yield prefix + node.name, node.end_lineno - node.lineno + 1
            yield from functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


def test_the_walk_finds_the_repo_s_python():
    names = {p.relative_to(ROOT).as_posix() for p in python_files()}
    assert {"baseline_agent/ppo.py", "trex/sweep.py", "benchmarks/ppo_throughput.py", "rec_video.py"} <= names
    assert "tests/test_code_shape.py" in names and "trex/__init__.py" in names
    assert not any(".venv" in n or "__pycache__" in n for n in names)


def test_functions_measure_from_def_to_last_line():
    source = "class A:\n    def f(self):\n        def g():\n            return 1\n\n        return g\n\n\nx = 1\n"
    assert list(functions(ast.parse(source))) == [("A.f", 5), ("A.f.g", 2)]


def test_no_function_is_longer_than_the_limit():
    too_long = [
        f"{path.relative_to(ROOT).as_posix()}:{name}:{length}"
        for path in python_files()
        for name, length in functions(ast.parse(path.read_text(), str(path)))
        if length > MAX_LINES
    ]
    assert not too_long, f"functions over {MAX_LINES} lines (file:function:lines): {', '.join(too_long)}"
