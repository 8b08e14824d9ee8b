"""Text that came from a stranger (a link, an upload, a paste), made safe to show.

Streamlit renders the text of st.markdown, st.warning, st.error, st.info, st.success and st.caption as
Markdown with KaTeX: a value such as `![b](http://host/x)` becomes an image the viewer's browser fetches,
`[text](url)` a link, `$...$` a formula. `plain` escapes every character Markdown or KaTeX give a meaning
to, folds line breaks, and truncates, so the value reads exactly as it was typed and nothing more.
Use it for every user-controlled value a page puts into one of those elements.

Escaping alone does not stop GitHub-flavoured Markdown's autolinks: bare `http://...`, `www.` and e-mail
addresses are turned into links after parsing, from the text itself. `plain` therefore puts a zero-width
space after every ':' and '@' and inside `www.`, which leaves the text looking the same and the URL inert;
and between hyphens, which Streamlit's typography would otherwise join into a dash ("--" became "–").
"""

from __future__ import annotations

import re

from core.model.units import truncate

__all__ = ["LIMIT", "ZWSP", "plain", "truncate"]

LIMIT = 120  # characters of a user value a message shows

# The characters that start Markdown inline syntax (code, emphasis, links, images, autolinks and HTML,
# tables, strikethrough, headings), KaTeX ($) and Streamlit's directives (:red[...], :material/icon:).
# Line breaks are folded first, so block syntax that needs a line start (lists, setext headings) cannot form.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~<>$:])")
ZWSP = "\u200b"  # zero-width space: breaks autolinks (http://, www., e-mail) without changing the look


def plain(value: object, limit: int = LIMIT) -> str:
    """`value` as Markdown that renders as its literal text: truncated to `limit` characters, control
    characters and line breaks shown as spaces, every Markdown/KaTeX special character escaped."""
    text = value if isinstance(value, str) else str(value)
    text = truncate(text, limit)
    text = "".join(" " if (ord(ch) < 32 or ord(ch) == 127 or ch in "\u2028\u2029") else ch for ch in text)
    text = _SPECIAL.sub(r"\\\1", text)
    text = re.sub(r"(?i)(www)\.", "\\1" + ZWSP + ".", text)
    text = re.sub(r"-(?=-)", "-" + ZWSP, text)  # Streamlit's typography turns "--" into a dash
    return text.replace(":", ":" + ZWSP).replace("@", "@" + ZWSP)
