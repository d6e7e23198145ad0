"""Imports run one way: no circle among our modules, the library never imports its doors
(cli, kfp), the KFP wing runs runners -> pipeline -> components -> steps, no path hacks."""

import ast
from pathlib import Path

import pytest

from ecdflow.config import REPO_ROOT

PKG = REPO_ROOT / "ecdflow"


def _module(path: Path) -> str:
    rel = path.relative_to(REPO_ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Every ecdflow module -> the ecdflow modules it imports (anywhere in the file)."""
    mods = {_module(p): p for p in PKG.rglob("*.py")}
    out: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            deps |= {n for n in names if n in mods and n != name}
        # a package's own submodules reached through `from pkg import sub` are not a circle
        out[name] = {d for d in deps if not d.startswith(name + ".") or name == "ecdflow"}
    return out


def test_no_import_circle_among_our_modules():
    graph = _imports()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        path.append(n)
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d)
        path.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


@pytest.mark.parametrize("door", ["ecdflow.cli", "ecdflow.kfp"])
def test_the_library_never_imports_a_door(door):
    graph = _imports()
    offenders = {m: sorted(d for d in deps if d == door or d.startswith(door + "."))
                 for m, deps in graph.items()
                 if not (m.startswith(("ecdflow.cli", "ecdflow.kfp")))}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_the_kfp_wing_imports_downwards_only():
    order = ["ecdflow.kfp.runners", "ecdflow.kfp.pipeline", "ecdflow.kfp.components",
             "ecdflow.kfp.plan", "ecdflow.kfp.steps"]
    graph = _imports()
    for m, deps in graph.items():
        if not m.startswith("ecdflow.kfp."):
            continue
        level = next(i for i, o in enumerate(order) if m == o or m.startswith(o + "."))
        for d in deps:
            if d.startswith("ecdflow.kfp."):
                dl = next(i for i, o in enumerate(order) if d == o or d.startswith(o + "."))
                assert dl >= level, f"{m} imports {d} (upwards)"


def test_schema_is_the_ground_floor():
    assert _imports()["ecdflow.schema"] == set()


def test_no_path_hacks_in_our_code():
    for folder in ("ecdflow", "components", "pipelines"):
        for p in (REPO_ROOT / folder).rglob("*.py"):
            text = p.read_text()
            assert "sys.path" not in text and "import_module(" not in text, p
