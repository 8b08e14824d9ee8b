"""AppTest for the Real model page: the defaults draw the Pareto picture from the shipped sweep at once, every
quality measure, family selection, y range, passkey context and method (first and last) renders without an
exception, a link round-trips, hostile links warn, and the live run re-measures a point on the real model."""

import pytest
from apptest import assert_clean, open_page, unescaped
from streamlit.testing.v1 import AppTest

from core.lab import real_methods
from core.view.urlstate import REAL_METRICS, REAL_Y_MAX

P = "real."


def run(query: dict | None = None) -> AppTest:
    return open_page("app_pages/real_model.py", query)


def test_defaults_render_the_pareto_picture_and_the_method():
    at = run()
    assert_clean(at)
    assert len(at.get("vega_lite_chart")) == 1
    assert [m.label for m in at.metric] == [
        "cache per token", "perplexity", "KL per token (nats)", "top-1 agreement", "passkey at 1,024"
    ]  # fmt: skip
    assert any("MLA whitened SVD, 4 RoPE pairs, d_c=48" in s.value for s in at.subheader)
    assert len(at.dataframe) == 2  # every method; MHA2MLA's published figures (inside an expander)


@pytest.mark.parametrize("metric", REAL_METRICS)
def test_every_measure_renders(metric):
    at = run({"metric": metric})
    assert_clean(at)
    assert at.query_params.get("metric", "perplexity") == metric or metric == "perplexity"


def test_extremes_of_every_control():
    at = run()
    for y in REAL_Y_MAX:
        at.segmented_control(key=P + "y_max").set_value(y).run()
        assert_clean(at)
    for families in (["eviction"], ["quantization"], ["low rank"], []):
        at.pills(key=P + "families").set_value(families).run()
        assert_clean(at)
    labels = [m.label for m in real_methods.methods()]
    for label in (labels[0], labels[-1]):
        at.selectbox(key=P + "method").set_value(label).run()
        assert_clean(at)
    at = run({"metric": "passkey retrieval"})
    at.segmented_control(key=P + "context").set_value(2048).run()
    assert_clean(at)
    assert at.query_params["context"] == "2048"


def test_link_round_trip_and_hostile_links():
    at = run({"metric": "top-1 agreement", "families": "eviction,low rank", "method": "SnapKV 128"})
    assert_clean(at)
    assert at.selectbox(key=P + "method").value == "SnapKV 128"
    assert at.pills(key=P + "families").value == ["eviction", "low rank"]
    at = run({"metric": "<script>", "method": "x" * 500, "families": "magic", "context": "99", "zz": "1"})
    assert not at.exception
    assert sum("Link:" in unescaped(w.value) for w in at.warning) >= 4


def test_live_run_remeasures_the_shipped_point():
    at = run({"method": "H2O 128"})
    at.button(key=P + "run").click().run()
    assert_clean(at)
    text = at.success[0].value
    assert "measured now" in text and "The shipped sweep holds" in text


def test_quantizers_are_named_as_every_page_names_them():
    """The method's key stays in the link (method=kivi-2bit); the heading, the picker and the table name it as
    the Quantized caches page does ('KIVI 2-bit')."""
    at = run({"method": "kivi-2bit"})
    assert_clean(at)
    assert any(s.value == "KIVI 2-bit" for s in at.subheader)
    methods = list(at.dataframe[0].value["method"])
    assert "KIVI 2-bit" in methods and "kivi-2bit" not in methods and "tq3" in methods
