"""The shipped public-domain passages (assets/text/passages.md): the text the MiniLM lessons run on. No torch,
so the URL state can check a link's passage number without loading a model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

PASSAGES = Path(__file__).resolve().parents[2] / "assets" / "text" / "passages.md"


class Passage(NamedTuple):
    title: str
    source: str
    text: str


def load_passages(path: Path = PASSAGES) -> tuple[Passage, ...]:
    """The shipped public-domain passages: `## title`, a `Source:` line, then paragraphs (hard line
    breaks inside a paragraph become spaces; paragraphs are separated by a blank line)."""
    out = []
    for block in re.split(r"^## ", path.read_text(), flags=re.M)[1:]:
        title, _, rest = block.partition("\n")
        source, _, body = rest.strip().partition("\n")
        if not source.startswith("Source:"):
            raise ValueError(f"passage {title.strip()!r} in {path} needs a 'Source:' line after its title.")
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", body.strip()) if p.strip()]
        out.append(Passage(title.strip(), source.removeprefix("Source:").strip(), "\n\n".join(paragraphs)))
    return tuple(out)
