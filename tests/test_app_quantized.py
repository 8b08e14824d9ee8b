"""AppTest for the Quantized caches page: renders at defaults (four charts), every layer, the latent
rank at its extremes and every error metric without an exception; links round-trip, hostile links warn; the
schemes carry the planner's cache dtype names where they store the same bytes (tq3.5, fp8), and the page says
how its methods relate to the planner's."""

import pytest
from apptest import assert_clean, open_page
from streamlit.testing.v1 import AppTest

P = "quant."


def run(query: dict | None = None) -> AppTest:
    return open_page("app_pages/quantized.py", query)


ok = assert_clean


def test_defaults():
    at = run()
    ok(at)
    assert len(at.get("vega_lite_chart")) == 5  # the real model first
    table = at.dataframe[0].value
    assert "fp16" in set(table["scheme"]) and (table["output error"] >= 0).all()
    # the planner's names: tq3.5 and fp8 are the planner's cache dtypes of the same bytes per vector
    assert {"tq3.5", "tq3", "fp8", "int8 per token", "KIVI 2-bit"} <= set(table["scheme"])
    assert not {"tq-3.5bit", "int8-token", "kivi-2bit"} & set(table["scheme"])
    shown = " ".join(c.value for c in at.caption)
    assert "fp16, fp8, tq3.5, tq2.5 here store the same bytes per vector as the planner's" in shown
    assert "58 B for a 128-value head, 3.625 bits per value" in shown


@pytest.mark.parametrize("layer", [0, 5])
def test_layers_ranks_and_metrics(layer):
    at = run({"layer": str(layer)})
    ok(at)
    for r in (8, 384):
        at.select_slider(key=P + "rank").set_value(r).run()
        ok(at)
    for m in ("key error", "probability TV"):
        at.selectbox(key=P + "metric").set_value(m).run()
        ok(at)


def test_links():
    at = run({"layer": "3", "text": "1", "rank": "64", "metric": "value error"})
    ok(at)
    assert at.selectbox(key=P + "layer").value == 3 and at.selectbox(key=P + "metric").value == "value error"
    at = run({"layer": "9", "text": "99", "rank": "0", "metric": "?"})
    assert not at.exception and len(at.warning) >= 4
