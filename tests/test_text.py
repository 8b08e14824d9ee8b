"""User-controlled text made safe to show (core/view/text.py).

Proves that `plain` leaves ordinary words alone, escapes every character Markdown or KaTeX react to (so
images, links, formulas, emphasis and headings from a link or a file render as their literal text), folds
line breaks, truncates long values with a count of what was cut, and that unescaping its output gives
back exactly the (truncated) input; `truncate` counts the characters it leaves out.
"""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.view.text import LIMIT, ZWSP, plain, truncate

HOSTILE = [
    "![b](http://127.0.0.1:9/x)",
    "[Log in again](http://evil.example/)",
    "$\\Huge \\color{red}{X}$",
    "$$x$$",
    "**bold** _it_ `code` # heading",
    "<img src=x onerror=alert(1)>",
    ":red[colour] :smile:",
    "line one\nline two\r\n# heading",
    "| a | b |\n|---|---|",
]


def unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s.replace(ZWSP, ""))


@pytest.mark.parametrize("value", HOSTILE)
def test_specials_are_escaped(value):
    out = plain(value)
    assert "\n" not in out and "\r" not in out
    for ch in "![]()$*_`#<>:|":  # every one of them is preceded by a backslash
        assert not re.search(rf"(?<!\\){re.escape(ch)}", out.replace("\\\\", "")), (ch, out)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "HTTPS://evil.example", "www.evil.example", "a@b.example"])
def test_bare_urls_and_addresses_cannot_become_autolinks(url):
    """GFM turns bare URLs into links after parsing, escapes or not: a zero-width space breaks the pattern."""
    out = plain(f"see {url} now")
    assert not re.search(r"(?i)https?://|www\.|\w@\w", out.replace("\\", ""))
    assert unescape(out) == f"see {url} now"


def test_plain_words_are_left_alone():
    assert plain("num_key_value_heads") == r"num\_key\_value\_heads"
    assert plain("hello world") == "hello world"


def test_long_values_are_truncated_with_a_count():
    out = plain("9" * 1_000_000)
    assert len(out) < LIMIT + 60 and "999,880 more characters" in out
    assert truncate("abc", 2) == "ab (... 1 more characters)"
    assert truncate("abc", 3) == "abc"


def test_non_strings_are_shown_as_text():
    assert plain(12345) == "12345"
    assert plain(None) == "None"


@given(st.text(max_size=200).filter(lambda s: all(ord(c) >= 32 and c not in "\x7f\u2028\u2029\u200b" for c in s)))
def test_unescaping_gives_back_the_input(value):
    assert unescape(plain(value, limit=1000)) == value


def test_double_hyphens_stay_hyphens():
    """Streamlit's typography made '--' (a CLI flag in a message) into a dash; a zero-width space between
    the hyphens keeps them, and the text reads the same."""
    out = plain("--max-model-len and a---b")
    assert "--" not in out and out.replace(ZWSP, "") == "--max-model-len and a---b"
