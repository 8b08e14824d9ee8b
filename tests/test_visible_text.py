"""No developer text on any page: what a visitor reads names no source path, project file or make target.

Proves:
- on every page the app registers, opened once at its defaults, no visible text names a folder of this
  repository (`core/...`, `app_pages/...`, `scripts/...`, `assets/...`), a project file (`*.py`, `*.md`, a
  README, a `.json` other than the config.json a visitor uploads) or a make target (`make bench`). Visible
  text is every string an element carries for the reader: markdown and lesson prose, captions, alerts,
  headings, LaTeX, metric labels, values, deltas and help, widget labels, options, placeholders and help,
  expander, tab and link labels, table columns and cells, chart and diagram text. "Show the code" blocks
  print the real code on purpose (house style: the real code is the best explanation) and are left out;
- the text that pages show only in some views (a caption behind a toggle, an error for a bad upload) says
  none either: the sentences in the code of app_pages/ and core/ (string literals with a space, docstrings
  left out), the lessons, the glossary and the workshop's questions;
- the detector flags samples of developer text and passes ordinary sentences, and the collector reaches
  tooltips, expander and tab labels, options and table cells, so both checks can fail.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from apptest import assert_clean, open_page
from google.protobuf.message import Message
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP_PAGES = re.findall(r'"(app_pages/\w+\.py)"', (ROOT / "app.py").read_text())
MAKE_TARGETS = sorted(
    {t for line in re.findall(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(), re.M) for t in line.split()}
)
DEV_TEXT = re.compile(
    r"(?<![\w.-])(?:app_pages|core|scripts|assets|tests|bench|deploy|docs|notes|\.streamlit)/[\w./*{}<>-]+"  # a folder
    r"|(?<![\w-])[\w-]+\.(?:py|md|toml|txt|sh|ipynb|ya?ml|cfg|ini)\b"  # a file of the project
    r"|(?<![\w.-])(?!config\.json\b)[\w.-]+\.json\b"  # a data file (config.json is the visitor's own file)
    r"|\bREADME\b|\bMakefile\b"
    rf"|\bmake (?:{'|'.join(map(re.escape, MAKE_TARGETS))})\b|`make [\w-]+`"
)
URL = re.compile(r"\]\([^)\s]*\)|https?://\S+")  # where a link points is not what the reader reads
# Proto fields that are not shown: ids, routes, icons, formats, raw values, code blocks, dataset names.
HIDDEN_FIELDS = {
    "id", "form_id", "page", "page_script_hash", "query_string", "icon", "type", "format", "raw_value",
    "raw_values", "tag", "language", "code_text", "deferred_file_id", "url", "name", "theme", "element_id",
    "engine", "autocomplete", "uuid",
}  # fmt: skip
# Sentences in code that never reach a page, each with why.
NOT_SHOWN = {
    ("core/view/glossary.py", "assets/glossary.json"): "glossary.tip's KeyError for a page asking for a term "
    "the glossary lacks: a programming error the app tests catch before it ships",
}


def developer_text(text: str) -> list[str]:
    """The source paths, project files and make targets that `text` names (links' targets left out)."""
    return [m.group(0) for m in DEV_TEXT.finditer(URL.sub(" ", text))]


# ----------------------------------------------------------------------------- what a page shows


def proto_strings(msg: Message) -> Iterator[str]:
    """Every string a proto message carries, except in the fields that are never shown."""
    for field, value in msg.ListFields():
        if field.name in HIDDEN_FIELDS:
            continue
        for v in value if isinstance(value, (list, tuple)) or hasattr(value, "append") else [value]:
            if isinstance(v, Message):
                yield from proto_strings(v)
            elif isinstance(v, str):
                yield v


def json_strings(value: object) -> Iterator[str]:
    """The string values of a decoded JSON document (a chart spec, a table's column settings)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in ("$schema", "name"):
                yield from json_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from json_strings(v)


def visible_texts(at: AppTest) -> list[tuple[str, str]]:
    """(element type, text) for every string the last run put in front of the reader."""
    out = []
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if isinstance(proto, Message):
            for s in proto_strings(proto):
                if s.lstrip().startswith(("{", "[")):
                    try:
                        out += [(node.type, t) for t in json_strings(json.loads(s))]
                        continue
                    except ValueError:
                        pass
                out.append((node.type, s))
        if node.type in ("dataframe", "table"):
            df = node.value
            out += [(node.type, str(c)) for c in df.columns]
            out += [(node.type, v) for col in df.columns for v in df[col] if isinstance(v, str)]
    return out


@pytest.fixture(scope="module")
def runs() -> dict[str, AppTest]:
    assert len(APP_PAGES) >= 10, APP_PAGES
    out = {}
    for page in APP_PAGES:
        out[page] = at = open_page(page)
        assert_clean(at)
    return out


def test_no_page_shows_developer_text(runs):
    found = {
        f"{page} {kind}: {text[:120]!r}": hits
        for page, at in runs.items()
        for kind, text in visible_texts(at)
        if (hits := developer_text(text))
    }
    assert not found, found


def test_the_pages_show_text_to_check(runs):
    """The collector reads what it should: each page yields prose, and the lessons come through."""
    for page, at in runs.items():
        kinds = {kind for kind, _ in visible_texts(at)}
        assert {"markdown", "caption"} <= kinds, (page, kinds)
    assert any("passkey" in t for _, t in visible_texts(runs["app_pages/needle.py"]))


# ----------------------------------------------------------------------------- text shown in other views


def code_sentences(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of the string literals of a module that contain a space (sentences, not file names or
    keys), f-strings with their fields as {}, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    parts_of_fstrings = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings or id(node) in parts_of_fstrings:
                continue
            text = node.value
        else:
            continue
        if " " in text:
            yield node.lineno, text


def text_sources() -> Iterator[tuple[str, str]]:
    """(where, text) of every sentence a page may show in some view."""
    for path in sorted([ROOT / "app.py", *(ROOT / "app_pages").glob("*.py"), *(ROOT / "core").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        for line, text in code_sentences(path):
            yield f"{rel}:{line}", text
    for path in sorted((ROOT / "assets" / "lessons").glob("*.md")):
        yield path.relative_to(ROOT).as_posix(), path.read_text()
    for path in [ROOT / "assets" / "glossary.json", *sorted((ROOT / "assets" / "workshop").glob("*.json"))]:
        for text in json_strings(json.loads(path.read_text())):
            yield path.relative_to(ROOT).as_posix(), text


def test_no_text_a_page_may_show_names_developer_things():
    found = {}
    for where, text in text_sources():
        hits = [h for h in developer_text(text) if (where.split(":")[0], h) not in NOT_SHOWN]
        if hits:
            found[where] = hits
    assert not found, found


def test_every_exemption_is_still_needed():
    """An exemption whose sentence is gone goes too, so the list stays the truth."""
    used = {(where.split(":")[0], h) for where, text in text_sources() for h in developer_text(text)}
    assert set(NOT_SHOWN) <= used, set(NOT_SHOWN) - used


# ----------------------------------------------------------------------------- the checks can fail


@pytest.mark.parametrize(
    "text, hit",
    [
        ("single-pass kernels (core/decode_kernels.py) read each byte once", "core/decode_kernels.py"),
        ("`make bench` runs the same at 4K-64K.", "`make bench`"),
        ("then make test", "make test"),
        ("made once (scripts/hybrid_runs.py); the tests run them again", "scripts/hybrid_runs.py"),
        ("see `assets/models/README.md`", "assets/models/README.md"),
        ("the model card (README) says", "README"),
        ("from `deepseek-v4-pro.json` and", "deepseek-v4-pro.json"),
        ("listed in requirements-nodeps.txt", "requirements-nodeps.txt"),
        ("see app_pages/compute.py", "app_pages/compute.py"),
        ("DeepSeek's inference/model.py", "model.py"),
    ],
)
def test_the_detector_flags_developer_text(text, hit):
    assert hit in developer_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "Upload a config.json (up to 1 MiB)",
        "Both numbers come from DeepSeek's released config.json files.",
        "make the cache smaller; make room for weights",
        "the attention core reads 1.5 GiB; V4-Pro keeps 128 tokens",
        "q4_0 and tq3.5 at 4K-64K tokens, e.g. fp8_ds_mla",
        "[vLLM's allocator](https://github.com/vllm-project/vllm/blob/main/vllm/v1/core/kv_cache_utils.py)",
        "the runs were made once when the app was built; the app's tests run them again",
    ],
)
def test_the_detector_passes_visitor_text(text):
    assert developer_text(text) == []


SAMPLE_PAGE = """
import pandas as pd
import streamlit as st
st.caption("plain caption")
st.metric("Bytes", "1 KiB", help="made by scripts/a.py")
st.selectbox("Pick", ["one", "notes.md"], help="plain help")
with st.expander("see README"):
    st.write("inside")
st.tabs(["first", "make lint"])
st.dataframe(pd.DataFrame({"design": ["MHA", "core/x.py"]}))
st.code("import core/hidden.py")
"""


def test_the_collector_reaches_tooltips_options_labels_and_cells():
    at = AppTest.from_string(SAMPLE_PAGE).run()
    hits = {h for _, text in visible_texts(at) for h in developer_text(text)}
    assert hits == {"scripts/a.py", "notes.md", "README", "make lint", "core/x.py"}, hits
