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


# The commands a user types: top-level scripts whose `main` nothing else may import (trex/ is laid out below them).
COMMANDS = {"trex.reward_model", "trex.train_policy", "trex.study", "trex.sweep", "trex.imitation_io"}


def trex_imports() -> dict[str, set[str]]:
    """Each module of trex/ and the trex modules it imports, anywhere in its body (a function's import included)."""
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "trex").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trex"):
                targets.add(node.module)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("trex")}
        graph[name] = targets
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (its modules in order), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt in graph and not state.get(nxt):
                found = visit(nxt, [*path, nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if not state.get(start):
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_trex_has_no_import_circle_and_nothing_imports_a_command():
    graph = trex_imports()
    assert COMMANDS <= set(graph) and "trex.reward.trainer" in graph  # the walk sees the layout
    assert cycle(graph) is None, f"import circle: {' -> '.join(cycle(graph) or [])}"
    into_commands = sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts & COMMANDS)
    assert not into_commands, f"modules import a command module: {', '.join(into_commands)}"
