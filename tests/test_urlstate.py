"""The Overview query-string codec: defaults stay out of links, round trips are exact, and hostile
query strings never raise (each problem becomes a notice)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from core.urlstate import OverviewState, parse_overview, serialise_overview


def test_defaults_make_an_empty_link():
    assert serialise_overview(OverviewState()) == {}
    assert parse_overview({}) == OverviewState()


def test_round_trip():
    s = OverviewState(("gpt2", "deepseek-v4-flash"), 4096, "RTX 4090", "int4", 8)
    assert parse_overview(serialise_overview(s)) == s


def test_bad_values_become_notices():
    s = parse_overview({"context": "0", "gpu": "TPU", "kv": "fp3", "batch": "99999", "models": "x", "q": "1"})
    assert s == OverviewState()
    assert len(s.notices) == 6


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=20), st.one_of(st.text(max_size=50), st.lists(st.text(max_size=20), max_size=3)))
)
def test_any_query_string_parses(params):
    s = parse_overview(params)
    assert 1 <= s.context <= 1 << 20 and s.models
