"""The documents in docs/ stay true to the repository, and the repository cites only what it contains.

Proves:
- every repository path a document in docs/ names in backticks (a token with a "/" or ending in .py, .md or
  .json) exists; a name with a placeholder (`tests/test_app_<page>.py`, `assets/configs/*.json`) matches at
  least one file; no document names an absolute (machine) path;
- every citation "docs/<file>.md section N" in a text file of the repository (code, documents, requirement
  files, ...) names a file in docs/ with a heading numbered N (N may be 7 or 7.1), even when it wraps a line;
- no file cites the design or developer notes that live outside the repository (the two names are spelled
  out in FORBIDDEN below, and this file never spells them whole);
- each check fails on a broken example (test_the_checks_can_fail).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOC_FILES = sorted(DOCS.glob("*.md"))
SKIP_DIRS = {"data", "out", "bench/results", "gpu_check_out"}  # ignored outputs at these places (.gitignore)
KEEP_HIDDEN = {".streamlit", ".ci"}
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".txt", ".yaml", ".yml", ".cfg", ".ini", ".json", ".template"}
FORBIDDEN = re.compile(r"\b(?:DESIGN|DEVELOPERS)\.md\b")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
CITATION = re.compile(r"docs/([A-Za-z0-9_.-]+\.md)\s+(?:#\s*)?sections?\s+(\d+(?:\.\d+)*)")  # may wrap a line
HEADING = re.compile(r"^#{1,6}[ \t]+(\d+(?:\.\d+)*)\.?[ \t]", re.M)
PLACEHOLDER = re.compile(r"<[^<>/]+>")


def repo_files(suffixes: set[str] | None = None) -> list[Path]:
    """Text files of the working tree: hidden folders (.git, .venv, caches) and ignored outputs left out."""
    out = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = Path(dirpath).relative_to(ROOT)
        dirnames[:] = [
            d
            for d in dirnames
            if (not d.startswith(".") or d in KEEP_HIDDEN)
            and (rel / d).as_posix() not in SKIP_DIRS
            and d not in ("node_modules", "__pycache__")
        ]
        for name in filenames:
            p = Path(dirpath) / name
            if suffixes is None or p.suffix in suffixes or name == "Makefile":
                out.append(p)
    return sorted(out)


def named_paths(markdown: str) -> list[str]:
    """Backticked tokens of a document that look like repository paths (fenced code blocks left out)."""
    names = []
    for token in CODE_SPAN.findall(FENCE.sub("", markdown)):
        token = token.strip()
        if not token or any(c.isspace() for c in token) or "://" in token:
            continue
        if "/" in token or token.endswith((".py", ".md", ".json")):
            names.append(token)
    return names


def missing_paths(markdown: str, root: Path = ROOT) -> list[str]:
    """The named paths that do not resolve: absent, absolute, or a pattern that matches nothing."""
    bad = []
    for name in named_paths(markdown):
        if name.startswith("/"):
            bad.append(f"{name} (an absolute path)")
            continue
        pattern = PLACEHOLDER.sub("*", name).rstrip("/")
        if "*" in pattern or "?" in pattern:
            if not any(root.glob(pattern)):
                bad.append(f"{name} (matches no file)")
        elif not (root / pattern).exists():
            bad.append(name)
    return bad


def sections(markdown: str) -> set[str]:
    """The section numbers of a document's headings ("## 5. DeepSeek V4" -> "5", "### 7.1 ..." -> "7.1")."""
    return set(HEADING.findall(FENCE.sub("", markdown)))


def broken_citations(text: str, docs: Path = DOCS) -> list[str]:
    """Citations "docs/<file>.md section N" in `text` whose file or numbered heading does not exist."""
    bad = []
    for name, number in CITATION.findall(text):
        target = docs / name
        if not target.is_file():
            bad.append(f"docs/{name} (no such file)")
        elif number not in sections(target.read_text()):
            bad.append(f"docs/{name} section {number} (no such heading)")
    return bad


def test_docs_exist():
    assert {p.name for p in DOC_FILES} >= {"architecture.md", "facts.md"}


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_every_path_a_document_names_exists(doc):
    text = doc.read_text()
    assert len(named_paths(text)) > 0
    assert missing_paths(text) == []


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_sections_are_numbered_once(doc):
    numbers = HEADING.findall(FENCE.sub("", doc.read_text()))
    assert numbers and len(numbers) == len(set(numbers)), numbers


def test_every_citation_of_a_docs_section_resolves():
    found, bad = 0, {}
    for path in repo_files(TEXT_SUFFIXES):
        if path == Path(__file__).resolve():
            continue  # its broken examples below are meant to be broken
        text = path.read_text(errors="replace")
        found += len(CITATION.findall(text))
        if broken := broken_citations(text):
            bad[str(path.relative_to(ROOT))] = broken
    assert not bad, bad
    assert found >= 10  # the code cites the documents; a regex that stopped matching would pass vacuously


def test_no_file_cites_notes_outside_the_repository():
    bad = {}
    for path in repo_files(TEXT_SUFFIXES):
        text = path.read_text(errors="replace").splitlines()
        if lines := [i + 1 for i, line in enumerate(text) if FORBIDDEN.search(line)]:
            bad[str(path.relative_to(ROOT))] = lines
    assert not bad, bad


def test_the_checks_can_fail(tmp_path):
    (tmp_path / "facts.md").write_text("# Facts\n\n## 1. Conventions\n\n### 7.1 A recipe\n")
    assert broken_citations("see docs/facts.md section 1 and docs/facts.md section 7.1", tmp_path) == []
    assert broken_citations("see docs/facts.md section 2", tmp_path) == ["docs/facts.md section 2 (no such heading)"]
    assert broken_citations("see docs/nowhere.md section 1", tmp_path) == ["docs/nowhere.md (no such file)"]
    wrapped = "(docs/facts.md\n    # section 3)"  # a citation that wraps inside a comment
    assert broken_citations(wrapped, tmp_path) == ["docs/facts.md section 3 (no such heading)"]
    assert missing_paths("`core/model/specs.py`, `app.py`, `tests/test_app_<page>.py`, `core/model/`") == []
    assert missing_paths("`core/model/nope.py` and `/etc/passwd` and `tests/test_zz_<x>.py`") == [
        "core/model/nope.py",
        "/etc/passwd (an absolute path)",
        "tests/test_zz_<x>.py (matches no file)",
    ]
    assert named_paths("`st.navigation` `python -m core.report` `x.json`\n```\n`in/a/fence.py`\n```") == ["x.json"]
    assert FORBIDDEN.search("as " + "DESIGN" + ".md says") and not FORBIDDEN.search("docs/facts.md section 5")


def readme_tree(text: str) -> set[str]:
    """The .py paths the README's file tree (under '## Files') names, each at the start of a line."""
    files = text[text.index("## Files") :]
    return set(re.findall(r"^([\w/]+\.py)\s", files, re.M))


def test_the_readme_file_tree_names_every_module_of_the_app_and_only_files_that_exist():
    """Every module of core/ and app_pages/ (a package's __init__ aside; core's own is listed) has its line in
    the README's file tree, and every .py path the tree names exists: a split or a rename shows up here."""
    tree = readme_tree((ROOT / "README.md").read_text())
    modules = {
        str(p.relative_to(ROOT))
        for p in [*(ROOT / "core").rglob("*.py"), *(ROOT / "app_pages").glob("*.py")]
        if p.name != "__init__.py" or p.parent == ROOT / "core"
    }
    assert sorted(modules - tree) == []
    assert sorted(p for p in tree if not (ROOT / p).exists()) == []


def test_the_readme_tree_check_can_fail():
    text = "intro\n## Files\n```\napp.py      router\ncore/x.py   a module\n  core/not_at_start.py\n```\n"
    assert readme_tree(text) == {"app.py", "core/x.py"}
