"""No page renders a user-controlled value as Markdown or LaTeX (core/view/text.py `plain` is the rule).

Scans every page's syntax tree for calls that render Markdown or LaTeX (st.markdown, st.warning, st.error,
st.info, st.success, st.caption, st.write, st.toast, st.latex, on st or on a column) and flags an argument
that carries a value which can come from a link, an upload or a paste (an exception's message, a link
notice, a file name, a config's name or model_type, a parsed link value), unless it goes through
`plain(...)`. The scanner is checked on small examples, so the test can fail.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "app_pages").glob("*.py")) + [ROOT / "app.py"]
RENDERS = {"markdown", "warning", "error", "info", "success", "caption", "write", "toast", "latex"}
# Names and attributes that hold text from strangers in the pages.
TAINTED_NAMES = {"e", "err", "exc", "note", "notes", "source", "raw", "pasted", "up", "token", "link_token", "init"}
TAINTED_ATTRS = {"name", "model_type", "notices", "config", "strength"}
SAFE_CALLS = {"plain", "fmt_bytes", "fmt_si", "fmt_params", "token_label", "len", "int", "float"}


def tainted(node: ast.AST) -> bool:
    """Whether the expression carries a user value that no `plain` (or a number formatter) has made safe."""
    if isinstance(node, ast.Call):
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if name in SAFE_CALLS:
            return False
        return any(tainted(a) for a in [*node.args, *(k.value for k in node.keywords)]) or tainted(f)
    if isinstance(node, ast.Name):
        return node.id in TAINTED_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr in TAINTED_ATTRS or tainted(node.value)
    if isinstance(node, ast.JoinedStr):
        return any(tainted(v.value) for v in node.values if isinstance(v, ast.FormattedValue))
    return any(tainted(c) for c in ast.iter_child_nodes(node))


def logger(node: ast.AST) -> bool:
    """A Python logger (`logging.getLogger(...)`, `log`, `logger`): its .warning writes the server's log, not
    the page."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "getLogger"
    return isinstance(node, ast.Name) and node.id in {"log", "logger", "LOG", "LOGGER", "logging"}


def unsafe_renders(source: str) -> list[int]:
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RENDERS:
            if logger(node.func.value):
                continue
            if any(tainted(a) for a in node.args):
                bad.append(node.lineno)
    return bad


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_pages_show_user_values_only_through_plain(path):
    assert unsafe_renders(path.read_text()) == [], f"{path.name}: user value rendered as Markdown"


@pytest.mark.parametrize(
    "source",
    [
        "st.error(str(e))",
        "st.error(f'{e}.')",
        "st.warning(f'Link: {note}.')",
        "col.success(f'Read {source}: {spec.model_type}')",
        "st.markdown(custom.name)",
        "st.info(init.strength)",
    ],
)
def test_the_scanner_finds_unsafe_renders(source):
    assert unsafe_renders(source) == [1]


@pytest.mark.parametrize(
    "source",
    [
        "st.error(plain(e, 400))",
        "st.warning(f'Link: {plain(note, 300)}.')",
        "st.success(f'Read {plain(source)}: {plain(spec.model_type, 60)}, {spec.n_layers} layers')",
        "st.markdown(f'**{m}** {fmt_bytes(kv)}')",
        "st.caption('no values')",
        "logging.getLogger(__name__).warning('%s is not a number', raw)",  # the server's log, not the page
    ],
)
def test_the_scanner_passes_safe_renders(source):
    assert unsafe_renders(source) == []
