"""The engine stays free of streamlit (STYLE.md: core/ never imports streamlit).

Proves it twice: statically, no module under core/ has an import of streamlit in its syntax tree
(including imports inside functions and importlib/__import__ calls with a literal name); and
dynamically, importing every core module in a fresh interpreter leaves 'streamlit' out of sys.modules.
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
    assert "core.layers" in modules and "core.accounting" in modules
