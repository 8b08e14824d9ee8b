"""Every page, opened from a hostile link through app.py's router (AppTest).

Proves, page by page: a link with Markdown, KaTeX and HTML in unknown keys, Unicode digits and huge numbers
in values, and an overlong value renders without an exception or an error; every problem is a "Link: ..."
warning in the app's own words (no Python message such as "invalid literal for int()"), the injected
Markdown reaches the page escaped (no live image, link or formula syntax), and no warning is longer than a
few hundred characters however long the value was.
"""

import re

import pytest
from apptest import assert_clean, open_page, unescaped

PAGES = [
    "app_pages/overview.py",
    "app_pages/planner.py",
    "app_pages/review.py",
    "app_pages/inside_mla.py",
    "app_pages/latent_rank.py",
    "app_pages/compute.py",
    "app_pages/sparse.py",
    "app_pages/hybrid.py",
    "app_pages/quantized.py",
    "app_pages/needle.py",
]
HOSTILE = {
    "![b](http://127.0.0.1:9/x)": "1",
    "[Log in again](http://127.0.0.1:9/y)": "1",
    "$\\Huge X$": "1",
    "<img src=x>": "1",
    "context": "²³",
    "T": "9" * 5000,
    "batch": "1e999",
    "layer": "X" * 100_000,
}
PYTHON_WORDS = ("invalid literal", "set_int_max_str_digits", "Traceback", "object has no attribute")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.split("/")[1][:-3])
def test_a_hostile_link_gives_notices_in_the_apps_words(page):
    at = open_page(page, HOSTILE)
    assert_clean(at)
    raw = [w.value for w in at.warning]
    assert raw and all(unescaped(w).startswith("Link: ") for w in raw), raw
    for w in raw:
        assert len(w) < 1500, w[:200]
        assert not re.search(r"(?<!\\)!(?<!\\)\[|(?<!\\)\]\(|(?<!\\)\$|(?<!\\)<img", w), w
        assert not any(words in w for words in PYTHON_WORDS), w
    text = " ".join(unescaped(w) for w in raw)
    assert "unknown link parameter" in text
