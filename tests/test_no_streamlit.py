"""The engine's architecture holds: no streamlit, imports flow one way, no cycles.

- No module under core/ imports streamlit, proved twice: statically (its syntax tree, including imports
  inside functions and importlib/__import__ calls with a literal name) and dynamically (importing every
  core module in a fresh interpreter leaves 'streamlit' out of sys.modules).
- Imports flow downwards: core.model -> core.accounting and core.layers -> core.lab -> core.view and the
  CLI (core.report). A module imports only from its own package or from a lower one; accounting and
  layers do not import each other; model and accounting import no torch.
- The import graph of core/ has no cycle, and no module imports a core module inside a function (the
  usual way of hiding a cycle).
- The URL state (core.view.urlstate), which every page parses its link with, loads no torch: checking a
  link's passage or method needs only names, so a page that never runs a model never pays for torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"
CORE_FILES = sorted(CORE.rglob("*.py"))


def streamlit_imports(source: str) -> list[int]:
    """Line numbers of every import of streamlit (or a submodule) in `source`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        if any(n == "streamlit" or n.startswith("streamlit.") for n in names):
            lines.append(node.lineno)
    return lines


def test_core_has_modules():
    assert len(CORE_FILES) >= 5
    assert CORE / "__init__.py" in CORE_FILES


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_streamlit_import_in_source(path):
    assert streamlit_imports(path.read_text()) == [], f"{path} imports streamlit"


@pytest.mark.parametrize(
    "source",
    [
        "import streamlit as st",
        "import os, streamlit",
        "from streamlit import session_state",
        "import streamlit.components.v1 as components",
        "def f():\n    import streamlit\n",
        "import importlib\nimportlib.import_module('streamlit')",
        "__import__('streamlit')",
    ],
)
def test_the_scanner_finds_streamlit_imports(source):
    assert streamlit_imports(source)


@pytest.mark.parametrize("source", ["import streamlit_extras_not_really", "x = 'streamlit'", "from . import st"])
def test_the_scanner_ignores_lookalikes(source):
    assert streamlit_imports(source) == []


def test_importing_all_of_core_loads_no_streamlit():
    modules = sorted(
        "core." + ".".join(p.relative_to(CORE).with_suffix("").parts) for p in CORE_FILES if p.name != "__init__.py"
    )
    code = (
        "import importlib, sys\n"
        "import core\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m == 'streamlit' or m.startswith('streamlit.')]\n"
        "assert not bad, bad\n"
        "print(len(sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "core.layers.attention" in modules and "core.accounting.totals" in modules


def test_the_url_state_loads_no_torch():
    code = "import sys\nimport core.view.urlstate\nassert 'torch' not in sys.modules, 'torch was imported'\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


# ----------------------------------------------------------------------------- import direction

RANK = {
    "core": 0,
    "core.model": 0,
    "core.accounting": 1,
    "core.layers": 1,
    "core.lab": 2,
    "core.view": 3,
    "core.workshop": 4,  # the workshop proper: guided paths, answers, the room's store
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """The layer a module belongs to: core.model, core.accounting, ..., or core itself (core.report)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and ".".join(parts[:2]) in RANK else "core"


def rank(module: str) -> int:
    return 3 if module == "core.report" else RANK[package_of(module)]


def core_imports(source: str, module: str) -> list[tuple[str, int, bool]]:
    """(imported core module, line, inside a function) for every import of a core module."""
    out = []
    tree = ast.parse(source)
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            base = node.module
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for n in names:
            if n == "core" or n.startswith("core."):
                out.append((n, node.lineno, id(node) in in_function))
    return out


def resolve(name: str, modules: set[str]) -> str | None:
    """The module `name` denotes (a package, a module, or a name inside a module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


MODULES = {module_name(p): p for p in CORE_FILES}


def graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, p in MODULES.items():
        for name, _line, _f in core_imports(p.read_text(), m):
            target = resolve(name, set(MODULES))
            if target and target != m and not (m.startswith(target + ".") and target.count(".") <= 1):
                g[m].add(target)
    return g


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_imports_flow_downwards(module):
    bad = []
    for target in graph()[module]:
        same = package_of(target) == package_of(module)
        if not same and rank(target) >= rank(module) and package_of(target) != "core":
            bad.append(target)
    assert not bad, f"{module} (rank {rank(module)}) imports {bad}"


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_no_core_import_inside_functions(module):
    inside = [(n, line) for n, line, f in core_imports(MODULES[module].read_text(), module) if f]
    assert not inside, f"{module} imports inside a function: {inside}"


@pytest.mark.parametrize("module", [m for m in sorted(MODULES) if package_of(m) in ("core.model", "core.accounting")])
def test_model_and_accounting_import_no_torch(module):
    tree = ast.parse(MODULES[module].read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [n for n in names if n.split(".")[0] == "torch"]


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(g.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t) :] + [t]
            if t not in state and (c := visit(t)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_the_import_graph_has_no_cycle():
    assert find_cycle(graph()) is None, find_cycle(graph())


def test_the_checks_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert core_imports("def f():\n    from core.model import specs\n", "core.x") == [
        ("core.model", 2, True),
        ("core.model.specs", 2, True),
    ]
    assert rank("core.view.theme") > rank("core.lab.tiny") > rank("core.layers.attention") > rank("core.model.specs")
    assert package_of("core.report") == "core"
