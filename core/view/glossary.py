"""One vocabulary: the glossary kept as data (assets/glossary.json), looked up by the Glossary page, by the
`help=` tooltips of every page, and by the test that checks every heading's jargon is defined.

Each entry is {"term", "aliases": [...], "definition", "pages": [page ids], "symbol" (optional)}. A word
has one meaning everywhere: terms and aliases are unique case-insensitively, and an unknown term asked of
`tip` raises, so a typo in a page's tooltip fails in the tests instead of showing nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PATH = Path(__file__).resolve().parent.parent.parent / "assets" / "glossary.json"
# Page ids (their files are app_pages/<id>.py): where an entry matters.
PAGES = (
    "overview",
    "planner",
    "review",
    "inside_mla",
    "latent_rank",
    "compute",
    "sparse",
    "hybrid",
    "quantized",
    "needle",
    "real_model",
    "workshop",
    "glossary",
)
MAX_DEFINITION = 600  # characters: a tooltip, not an essay
_FIELDS = {"term", "aliases", "definition", "pages", "symbol"}


@dataclass(frozen=True)
class Entry:
    term: str
    aliases: tuple[str, ...]
    definition: str
    pages: tuple[str, ...]
    symbol: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The term, then its aliases."""
        return (self.term, *self.aliases)


def parse(raw: object) -> tuple[Entry, ...]:
    """Entries from the decoded JSON, validated; ValueError names the bad entry and what is wrong with it."""
    if not isinstance(raw, list) or not raw:
        raise ValueError("the glossary must be a non-empty list of entries")
    entries, seen = [], {}
    for i, item in enumerate(raw):
        where = f"glossary entry {i}" + (f" ({item.get('term')!r})" if isinstance(item, dict) else "")
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be an object")
        if extra := set(item) - _FIELDS:
            raise ValueError(f"{where} has unknown fields: {', '.join(sorted(extra))}")
        term, aliases, definition = item.get("term"), item.get("aliases", []), item.get("definition")
        pages, symbol = item.get("pages", []), item.get("symbol")
        if not isinstance(term, str) or not term.strip():
            raise ValueError(f"{where} needs a non-empty term")
        if not isinstance(definition, str) or not definition.strip():
            raise ValueError(f"{where} needs a non-empty definition")
        if len(definition) > MAX_DEFINITION:
            raise ValueError(f"{where}: the definition is {len(definition)} characters, at most {MAX_DEFINITION}")
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
            raise ValueError(f"{where}: aliases must be a list of non-empty strings")
        if not isinstance(pages, list) or not pages or any(p not in PAGES for p in pages):
            raise ValueError(f"{where}: pages must list at least one of {', '.join(PAGES)}")
        if symbol is not None and (not isinstance(symbol, str) or not symbol.strip()):
            raise ValueError(f"{where}: symbol, when given, must be a non-empty string")
        entry = Entry(term.strip(), tuple(a.strip() for a in aliases), definition.strip(), tuple(pages), symbol)
        for name in entry.names:
            key = name.casefold()
            if key in seen:
                raise ValueError(f"{where}: {name!r} is already used by {seen[key]!r} (one word, one meaning)")
            seen[key] = entry.term
        entries.append(entry)
    return tuple(entries)


@cache
def load(path: Path = PATH) -> tuple[Entry, ...]:
    """The glossary file's entries, validated (ValueError naming the bad entry)."""
    return parse(json.loads(Path(path).read_text(encoding="utf-8")))


@cache
def _index(path: Path = PATH) -> dict[str, Entry]:
    return {name.casefold(): e for e in load(path) for name in e.names}


def lookup(word: str) -> Entry | None:
    """The entry whose term or alias is `word` (case-insensitive), or None."""
    return _index().get(word.strip().casefold())


def tip(term: str) -> str:
    """The definition of `term` (or an alias), for a widget's `help=`; KeyError for a word not in the glossary."""
    entry = lookup(term)
    if entry is None:
        raise KeyError(f"{term!r} is not in the glossary (assets/glossary.json)")
    return entry.definition


@cache
def _pattern(path: Path = PATH) -> re.Pattern:
    """Every term and alias, longest first, bounded so that "MLA" does not match inside "MLAs" or "HCA" inside
    a longer word."""
    names = sorted((n for e in load(path) for n in e.names), key=len, reverse=True)
    alts = "|".join(re.escape(n) for n in names)
    return re.compile(rf"(?<![\w-])(?:{alts})(?![\w])", re.IGNORECASE)


def terms_in(text: str) -> list[str]:
    """The glossary terms a text mentions (by term or alias), each once, in order of first mention. Longer
    names win where they overlap ("attention core" is one mention, not "core")."""
    found: list[str] = []
    for m in _pattern().finditer(text):
        term = _index()[m.group(0).casefold()].term
        if term not in found:
            found.append(term)
    return found


def strip_terms(text: str) -> str:
    """The text with every glossary term and alias blanked out: what is left is the words it does not define."""
    return _pattern().sub(" ", text)


def search(query: str, entries: tuple[Entry, ...] | None = None) -> list[Entry]:
    """Entries whose term, alias, symbol or definition contains `query` (case-insensitive), sorted by term;
    every entry for an empty query."""
    q = query.strip().casefold()
    pool = load() if entries is None else entries
    hits = [e for e in pool if not q or any(q in s.casefold() for s in (*e.names, e.definition, e.symbol or ""))]
    return sorted(hits, key=lambda e: e.term.casefold())


def scale_note(toy: int, real: int, what: str, model: str) -> str:
    """How far a toy setting is scaled down from the real model's, from both numbers:
    scale_note(16, 128, "pools", "V4-Pro") -> "toy: 16; V4-Pro pools 128, 8x more"."""
    if toy < 1 or real < 1:
        raise ValueError(f"toy ({toy}) and real ({real}) values must be at least 1")
    if real == toy:
        return f"{toy:,}, as in {model}"
    factor = real / toy
    ratio = f"{factor:.3g}x more" if factor > 1 else f"{1 / factor:.3g}x fewer"
    return f"toy: {toy:,}; {model} {what} {real:,}, {ratio}"
