"""The "Sparse & compressed attention" page, run through app.py's router with Streamlit's AppTest.

What it proves:
- at the defaults the page renders its three charts (DSA selection, FLOPs by part, V4 visibility) and the
  metrics "V4-Pro / V3.2" 11.5% (KV cache, bf16) and 26.2% (FLOPs), with no exception, no warning and a
  bare link; the production precision shows 10.5% (FLOPs unchanged) and goes into the link;
- every slider at its minimum and maximum, every V4 layer type, the real-text input and each precision
  render without an exception, and the URL written back parses to the widget's value;
- a link with every field set restores every widget and is written back unchanged;
- hostile links give "Link: ..." warnings naming each problem, never an exception.
"""

from dataclasses import fields

import pytest
from apptest import assert_clean, assert_no_exception, open_page, unescaped
from streamlit.testing.v1 import AppTest

from core.view.urlcodec import parse_state
from core.view.urlstate import SparseState

P = "sparse."
KV_BF16, KV_PRODUCTION, FLOPS = "11.5%", "10.5%", "26.2%"


def run(query: dict | None = None) -> AppTest:
    return open_page("app_pages/sparse.py", query)


no_exception = assert_no_exception


def charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


def metrics(at: AppTest) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in at.metric]


def url_state(at: AppTest) -> SparseState:
    """The state the page wrote into the URL, parsed back; it must parse without a notice."""
    s = parse_state(SparseState, dict(at.query_params))
    assert not s.notices, s.notices
    return s


def rendered(at: AppTest, kv: str = KV_BF16) -> None:
    assert_clean(at)
    assert charts(at) == 3
    assert metrics(at) == [("V4-Pro / V3.2", kv), ("V4-Pro / V3.2", FLOPS)]


# ----------------------------------------------------------------------------- defaults


def test_defaults_render_three_charts_and_the_claims():
    at = run()
    rendered(at)
    assert at.title[0].value == "Sparse & compressed attention"
    assert not at.warning
    assert len(at.dataframe) == 2
    assert dict(at.query_params) == {}  # the defaults make a bare link
    assert at.radio(key=P + "kind").value == "CSA"
    assert at.radio(key=P + "precision").value == "bf16"


def test_production_precision_shows_10_5_percent():
    at = run()
    at.radio(key=P + "precision").set_value("production").run()
    rendered(at, KV_PRODUCTION)
    assert dict(at.query_params) == {"prec": "production"}
    kv = at.dataframe[0].value
    assert "DSA latent + rope key (fp8_ds_mla)" in set(kv["part"])
    at.radio(key=P + "precision").set_value("bf16").run()
    rendered(at)
    assert dict(at.query_params) == {}


# ----------------------------------------------------------------------------- every widget's extremes

EXTREMES = [
    ("slider", "tokens", 8),
    pytest.param("slider", "tokens", 96, id="tokens-96"),  # the largest that renders
    pytest.param("slider", "tokens", 256, id="tokens-256"),
    ("slider", "index_topk", 1),
    ("slider", "index_topk", 64),
    ("slider", "window", 1),
    ("slider", "window", 64),
    ("select_slider", "hca_ratio", 2),
    ("select_slider", "hca_ratio", 64),
]


@pytest.mark.parametrize("kind,field,value", EXTREMES)
def test_every_slider_at_its_extremes(kind, field, value):
    at = run({"layer": "HCA"} if field == "hca_ratio" else None)
    getattr(at, kind)(key=P + field).set_value(value).run()
    rendered(at)
    assert getattr(at, kind)(key=P + field).value == value
    assert getattr(url_state(at), field) == value


@pytest.mark.parametrize("layer", ["CSA", "HCA", "SWA"])
def test_each_v4_layer_type(layer):
    at = run()
    at.radio(key=P + "kind").set_value(layer).run()
    rendered(at)
    assert url_state(at).kind == layer
    assert any(f"{layer} layer" in str(c.proto.spec) for c in at.get("vega_lite_chart"))


def test_hca_ratio_4_is_not_offered_and_a_link_with_it_warns():
    """Ratio 4 is CSA's (the indexed layers in V4): the slider leaves it out and a link asking for it warns."""
    at = run({"layer": "HCA"})
    assert (
        4 not in at.select_slider(key=P + "hca_ratio").options
        and "4" not in at.select_slider(key=P + "hca_ratio").options
    )
    at = run({"layer": "HCA", "m": "4"})
    no_exception(at)
    assert any("HCA ratio" in unescaped(w.value) for w in at.warning)


def test_real_text_input_with_each_layer_type():
    at = run({"T": "32", "input": "text"})
    rendered(at)
    assert at.radio(key=P + "source").value == "text"
    for layer in ("HCA", "SWA"):
        at.radio(key=P + "kind").set_value(layer).run()
        rendered(at)
    assert url_state(at).source == "text"


def test_all_minimums_and_all_maximums_that_render():
    lo = {"T": "8", "k": "1", "w": "1", "m": "2", "layer": "HCA"}
    at = run(lo)
    rendered(at)
    assert dict(at.query_params) == lo
    hi = {"T": "96", "k": "64", "w": "64", "m": "64", "layer": "SWA", "prec": "production"}
    at = run(hi)
    rendered(at, KV_PRODUCTION)
    assert dict(at.query_params) == hi


# ----------------------------------------------------------------------------- the link

FULL_VIEW = {"T": "48", "k": "5", "w": "3", "m": "8", "layer": "HCA", "input": "text", "prec": "production"}


def test_full_link_restores_every_widget_and_is_written_back_unchanged():
    assert set(FULL_VIEW) == {f.metadata["param"].key for f in fields(SparseState) if "param" in f.metadata}
    at = run(FULL_VIEW)
    rendered(at, KV_PRODUCTION)
    assert not at.warning
    assert at.slider(key=P + "tokens").value == 48
    assert at.slider(key=P + "index_topk").value == 5
    assert at.slider(key=P + "window").value == 3
    assert at.select_slider(key=P + "hca_ratio").value == 8
    assert at.radio(key=P + "kind").value == "HCA"
    assert at.radio(key=P + "source").value == "text"
    assert at.radio(key=P + "precision").value == "production"
    assert dict(at.query_params) == FULL_VIEW
    at.run()  # a rerun keeps the view
    assert dict(at.query_params) == FULL_VIEW
    at.radio(key=P + "kind").set_value("CSA").run()  # a change after load goes into the link
    no_exception(at)
    assert dict(at.query_params) == {k: v for k, v in FULL_VIEW.items() if k != "layer"}


HOSTILE = [
    (
        "garbage-everywhere",
        {"T": "1e99", "k": "-3", "w": "x", "m": "nan", "layer": "MLA", "input": "<script>", "prec": "fp8", "z": "1"},
        ["unknown link parameter", "tokens", "top-k", "window", "HCA ratio", "V4 layer type", "input", "precision"],
    ),
    ("out-of-range", {"T": "7", "k": "65", "w": "0", "m": "128"}, ["tokens", "top-k", "window", "HCA ratio"]),
    ("huge-numbers", {"T": "9" * 40, "k": "1" * 16, "w": "99999"}, ["tokens", "top-k", "window"]),
    ("empty-values", {"T": "", "layer": "", "prec": ""}, ["tokens", "V4 layer type", "precision"]),
    (
        "case-and-space",
        {"layer": "hca", "input": " text", "prec": "Production"},
        ["V4 layer type", "input", "precision"],
    ),
    ("unknown-keys", {"foo": "bar", "x" * 300: "y" * 10_000}, ["unknown link parameter"]),
]


@pytest.mark.parametrize("query,problems", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_links_warn_and_never_raise(query, problems):
    at = run(query)
    rendered(at)
    warnings = [unescaped(w.value) for w in at.warning]
    assert warnings and all(w.startswith("Link: ") for w in warnings), warnings
    for p in problems:
        assert any(p in w for w in warnings), (p, warnings)
    url_state(at)  # what is written back is clean
    assert not set(dict(at.query_params)) - {"T", "k", "w", "m", "layer", "input", "prec"}


def test_hca_ratio_off_the_slider_warns():
    at = run({"m": "3", "layer": "HCA"})
    no_exception(at)
    assert any("HCA ratio" in unescaped(w.value) for w in at.warning), [unescaped(w.value) for w in at.warning]
