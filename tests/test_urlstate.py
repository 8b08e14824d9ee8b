"""The Overview query-string codec: defaults stay out of links, round trips are exact, and hostile
query strings never raise (each problem becomes a notice)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from core.view.urlstate import OverviewState, parse_overview, serialise_overview


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


# ----------------------------------------------------------------------------- planner and configs in links
import json  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from core.view.urlcodec import MAX_LINK_CONFIG_CHARS, decode_config, dump_state, encode_config, parse_state  # noqa: E402
from core.view.urlstate import CUSTOM, PlannerState  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "assets" / "configs"


def test_planner_round_trip_of_every_field():
    token = encode_config((CONFIGS / "mistral-7b.json").read_text())
    s = PlannerState(
        ("gpt2", CUSTOM), 5000, 3, "int4", "fp8", "materialised", "custom", 96.0, 2.5, 2, 80, 1.5,
        tp=2, pp=2, dp_attention=True, block_size=64, batched_tokens=2048, kv_budget_gib=12.5, config=token,
    )  # fmt: skip
    q = dump_state(s)
    assert set(q) == {
        "models",
        "context",
        "batch",
        "kv",
        "w",
        "layout",
        "gpu",
        "mem",
        "bw",
        "gpus",
        "util",
        "reserve",
        "tp",
        "pp",
        "dpa",
        "block",
        "mnbt",
        "kvb",
        "cfg",
    }
    assert parse_state(PlannerState, q) == s
    assert dump_state(PlannerState()) == {}


def test_config_round_trip_is_the_same_json():
    text = (CONFIGS / "deepseek-v4-pro.json").read_text()
    token = encode_config(text)
    assert len(token) <= MAX_LINK_CONFIG_CHARS
    assert json.loads(decode_config(token)) == json.loads(text)


@pytest.mark.parametrize("token", ["", "!!!", "a" * 20000, "eJzLSM3JyVcozy_KSQEAGgQEXQ"[:-3]])
def test_bad_config_tokens_raise_value_error(token):
    with pytest.raises(ValueError):
        decode_config(token)


def test_zip_bomb_is_refused():
    import base64

    bomb = base64.urlsafe_b64encode(zlib.compress(b" " * (2 << 20), 9)).decode().rstrip("=")
    assert len(bomb) < 4 * MAX_LINK_CONFIG_CHARS
    with pytest.raises(ValueError, match="1 MiB"):
        decode_config(bomb)


def test_hostile_planner_links_become_notices():
    s = parse_state(
        PlannerState,
        {"models": "x,y", "context": "99999999999", "util": "0", "mem": "nan", "bw": "inf", "cfg": "%%%", "z": "1"},
    )
    assert s == PlannerState()
    assert len(s.notices) == 7


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "models",
                "context",
                "batch",
                "kv",
                "w",
                "layout",
                "gpu",
                "mem",
                "bw",
                "gpus",
                "util",
                "reserve",
                "cfg",
                "?",
            ]
        ),
        st.one_of(st.text(max_size=60), st.lists(st.text(max_size=20), max_size=3)),
    )
)
def test_any_planner_query_string_parses(params):
    s = parse_state(PlannerState, params)
    assert 1 <= s.context <= 1 << 24 and 1 <= len(s.models) <= 4 and 5 <= s.utilization <= 100


def test_replaced_link_values_are_kept_nearest_and_announced():
    """A link value the page cannot show is replaced by the nearest it can, and the notice says which
    (never a silent default): too many or unknown models, 'all' passages where one is shown, ints with
    Unicode digits (refused in the app's words, not Python's)."""
    from core.view.urlcodec import Replaced, nearest
    from core.view.urlstate import OverviewState, QuantState

    many = ",".join(["llama-3.1-8b", "deepseek-v3", "gpt2", "mistral-7b", "qwen3-32b", "kimi-k2", "deepseek-v2"])
    s = parse_state(OverviewState, {"models": many + ",nope"})
    assert len(s.models) == 6 and s.models[0] == "llama-3.1-8b"
    (note,) = s.notices
    assert "unknown models 'nope' left out" in note and "7 models asked for; showing the first 6" in note
    q = parse_state(QuantState, {"text": "all"})
    assert q.passage == 0 and "showing passage 0" in q.notices[0]
    with pytest.raises(Replaced) as e:
        nearest(100_000, [2**k for k in range(21)], "context")
    assert e.value.value == 131_072 and "context 100,000 is not offered here; showing the nearest, 131,072" in str(
        e.value
    )
    assert nearest(4096, [4096], "context") == 4096
    bad = parse_state(OverviewState, {"context": "²³"})
    assert bad.context == OverviewState().context and "whole number" in bad.notices[0]


# ----------------------------------------------------------------------------- the review sheet


def test_review_candidates_round_trip_and_bad_ones_are_dropped_with_a_notice():
    from core.view.review import DEFAULT_CANDIDATES, Candidate
    from core.view.urlstate import ReviewState

    assert dump_state(ReviewState()) == {}
    four = ReviewState(
        (
            *DEFAULT_CANDIDATES,
            Candidate("llama-3.1-70b", "H100 SXM", 4, 0, "materialised", "fp8", "int4", "Plan B (int4) #2"),
            Candidate("qwen3-next-80b-a3b", "MI300X", 1024, 1024),
        ),
        context=1,
        utilization=5,
        theme="dark",
        formulas=False,
    )
    assert parse_state(ReviewState, dump_state(four)) == four
    bad = {
        "c": "deepseek-v3~H200~8~8~latent~auto~native,nope~H200~8~8~latent~auto~native,"
        "deepseek-v3~H200~8~8~latent~auto~native~<script>,deepseek-v3~H200~0~8~latent~auto~native,,~~~",
        "util": "101",
        "theme": "neon",
    }
    s = parse_state(ReviewState, bad)
    assert s.candidates == DEFAULT_CANDIDATES[:1] and (s.utilization, s.theme) == (90, "light")
    said = " ".join(s.notices)
    for n in (2, 3, 4, 5):
        assert f"candidate {n} left out" in said
    assert "unknown model" in said and "number of GPUs" in said and "a name may hold" in said
    assert parse_state(ReviewState, {"c": "x" * 5000}).candidates == DEFAULT_CANDIDATES
    many = parse_state(ReviewState, {"c": ",".join(["deepseek-v3~H200~8~8~latent~auto~native"] * 6)})
    assert len(many.candidates) == 4 and "showing the first 4" in many.notices[0]


def test_the_planner_links_its_models_to_the_review_sheet():
    from core.view.urlstate import PlannerState, ReviewState, review_link

    params, said = review_link(PlannerState(gpu="B200", n_gpus=4, tp=2, context=8192, kv_dtype="fp8"))
    s = parse_state(ReviewState, params)
    assert not said and not s.notices and s.context == 8192
    assert [(c.model, c.gpu, c.n_gpus, c.tp, c.kv_dtype) for c in s.candidates] == [
        ("llama-3.1-70b", "B200", 4, 2, "fp8"),
        ("deepseek-v3", "B200", 4, 2, "fp8"),
    ]
    _, said = review_link(PlannerState(models=("deepseek-v3", "@config"), gpu="custom", pp=2))
    assert len(said) == 3
