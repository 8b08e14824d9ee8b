"""Shared AppTest helpers: open one page of the app (optionally from a link) and check a run was clean."""

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parent.parent / "app.py"


DEFAULT_PAGE = "app_pages/overview.py"  # app.py serves it at "/" (its file name also names a hidden redirect)


def open_page(page: str, query: dict | None = None, timeout: int = 180) -> AppTest:
    """Run app.py on `page` (e.g. "app_pages/needle.py") with the query params of a link. The default page is
    opened as a browser opens "/", without switching to it."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    if page != DEFAULT_PAGE:
        at.switch_page(page)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()


def assert_no_exception(at: AppTest) -> None:
    """No exception in the last run; st.error is allowed (for tests that expect a refusal in a sentence)."""
    assert not at.exception, [e.value for e in at.exception]


def assert_clean(at: AppTest) -> None:
    """No exception and no st.error in the last run."""
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]


def unescaped(markdown: str) -> str:
    """The text a message shows: core.view.text.plain's backslash escapes removed."""
    return re.sub(r"\\(.)", r"\1", markdown.replace("\u200b", ""))
