"""The Glossary page (app_pages/glossary.py) run from app.py: at its defaults it lists every entry of
assets/glossary.json alphabetically with its definition and links to the pages where it matters (each link
names a page the app has); the filter narrows the list case-insensitively; a filter that matches nothing,
an overlong one, or one with Markdown in it gives a warning that shows the text as typed, never a traceback."""

from pathlib import Path

import pytest
from apptest import assert_clean, assert_no_exception, open_page, unescaped

from app_pages.glossary import MAX_QUERY, TITLES
from core.view import glossary

ROOT = Path(__file__).resolve().parent.parent
KEY = "glossary.filter"


@pytest.fixture(scope="module")
def page():
    at = open_page("app_pages/glossary.py")
    assert_clean(at)
    return at


def shown_terms(at) -> list[str]:
    """The bold term line of each entry, in page order."""
    return [unescaped(m.value).split("**")[1] for m in at.markdown if unescaped(m.value).startswith("**")]


def test_defaults_list_every_entry_alphabetically(page):
    assert page.title[0].value == "Glossary"
    terms = shown_terms(page)
    assert sorted(terms) == sorted(e.term for e in glossary.load())
    assert terms == sorted(terms, key=str.casefold)
    n = len(glossary.load())
    assert page.caption[0].value == f"{n} of {n} entries, alphabetical."
    defs = [unescaped(m.value) for m in page.markdown]
    assert glossary.lookup("materialised").definition in defs


def test_every_page_link_names_a_page_of_the_app(page):
    assert set(TITLES) == set(glossary.PAGES)
    app = (ROOT / "app.py").read_text()
    links = page.get("page_link")
    assert links
    for link in links:
        pid = link.proto.page or "overview"  # the url path; the default page is served at "/"
        assert f'"app_pages/{pid}.py"' in app and link.proto.page_script_hash
        assert link.proto.label == TITLES[pid]
    wanted = sum(len([p for p in e.pages if p != "glossary"]) for e in glossary.load())
    assert len(links) == wanted


def test_filter_is_case_insensitive_and_matches_aliases_and_definitions():
    at = open_page("app_pages/glossary.py")
    at.text_input(key=KEY).set_value("C_kv").run()
    assert_clean(at)
    terms = shown_terms(at)
    assert "latent" in terms and len(terms) < len(glossary.load())
    at.text_input(key=KEY).set_value("NAIVE").run()
    assert "naive" in shown_terms(at) and "materialised" in shown_terms(at)


@pytest.mark.parametrize("typed", ["zzzz no such word", "**bold** [x](javascript:alert(1)) $x$", "q" * 5000])
def test_a_filter_that_matches_nothing_warns_with_the_text_as_typed(typed):
    at = open_page("app_pages/glossary.py")
    at.text_input(key=KEY).set_value(typed).run()
    assert_no_exception(at)
    assert not at.error and not shown_terms(at)
    (warning,) = at.warning
    shown = unescaped(warning.value)
    assert shown.startswith("No entry mentions ")
    assert typed[:20] in shown and len(shown) < MAX_QUERY + 40
    assert "**" not in warning.value.replace("\\*\\*", "")  # Markdown escaped, not rendered
