"""AppTest for the Needle page: defaults come from the shipped sweep at once, every method at its
weakest and strongest setting renders without an exception, links round-trip and hostile links warn."""

import pytest
from apptest import assert_clean, open_page, unescaped
from streamlit.testing.v1 import AppTest

from core.lab import needle as nd

P = "needle."


def run(query: dict | None = None) -> AppTest:
    return open_page("app_pages/needle.py", query)


ok = assert_clean


def test_defaults_render_heatmap_summary_and_metrics():
    at = run()
    ok(at)
    assert len(at.get("vega_lite_chart")) == 3  # the real model's passkeys first, then the tiny models' two
    labels = [m.label for m in at.metric]
    assert labels == ["accuracy (all cells)", "cache at 256 tokens", "worst cell"]


@pytest.mark.parametrize("method", [m for m in nd.METHODS if m != "none"])
def test_every_method_at_its_extremes(method):
    at = run({"model": "tiny-gqa", "method": method})
    ok(at)
    for s in (nd.STRENGTHS[method][0], nd.STRENGTHS[method][-1]):
        at.select_slider(key=P + "strength").set_value(str(s)).run()
        ok(at)
        assert at.query_params["strength"] == str(s) or str(s) == str(nd.DEFAULT_STRENGTH[method])


def test_switching_method_starts_at_its_default_strength():
    at = run({"method": "top-k"})
    at.select_slider(key=P + "strength").set_value("64").run()
    at.selectbox(key=P + "method").set_value("pooling").run()
    assert at.select_slider(key=P + "strength").value == str(nd.DEFAULT_STRENGTH["pooling"])


def test_link_round_trip_and_hostile_links():
    at = run({"model": "tiny-mha", "method": "quantization", "strength": "tq-2bit"})
    ok(at)
    assert at.selectbox(key=P + "model").value == "tiny-mha"
    assert at.select_slider(key=P + "strength").value == "tq-2bit"
    at = run({"model": "gpt-5", "method": "magic", "zzz": "1", "strength": "x" * 500})
    assert not at.exception
    assert any("Link:" in unescaped(w.value) for w in at.warning)


def test_quantizers_are_named_as_every_page_names_them():
    """The link keeps the scheme's key (strength=int8-token); the page shows the name the Quantized caches page
    and the planner use ('int8 per token'), in the heading, the slider and the summary's labels."""
    at = run({"model": "tiny-gqa", "method": "quantization", "strength": "int8-token"})
    ok(at)
    assert any("quantization (int8 per token)" in s.value for s in at.subheader)
    assert not any("int8-token" in s.value for s in at.subheader)
    assert at.select_slider(key="needle.strength").value == "int8-token"
