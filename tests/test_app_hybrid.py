"""The "Hybrid models" page (app_pages/hybrid.py), run through app.py's router with Streamlit's AppTest.

What it proves:
- at the defaults the page renders its three charts (bytes held, step FLOPs, the model's breakdown), the
  metrics "KV cache at 128K (bf16)" = 3 GiB, "Fixed state per sequence" = 37.7 MiB and "Fixed state of one GDN
  layer" for qwen3-next-80b-a3b,
  every small layer's measured nbytes equals the accounting ("equal" all "yes"), with no warning and a bare link;
- the tokens slider at its minimum (16) and maximum (2048) and the real-text input render cleanly, with the
  table at the last checkpoint and the choice written into the link;
- every model on the page at the smallest and the largest context renders cleanly, the KV metric names the
  context, and a model without recurrent state (llama-4-scout, ...) shows "none";
- the model's layer table shows its counts with thousands separators (1,048,576 rows, not 1048576);
- what the design saves: Llama-4-Scout's cache at 1M tokens with every layer global (192 GiB, 3.91x) and one
  recurrent layer's state (Qwen3-Next's GDN layer: 1,097,728 B, as much as 536 tokens of one attention layer);
- a link with every field set restores every widget and the query params written back reproduce it;
- hostile links (unknown keys, markdown as a key, out-of-range values) give "Link: ..." warnings naming each
  problem, shown as text (escaped, so markdown in a key draws no image), never an exception, and fall back
  to the defaults; a link context on a slider option is kept, and one between options snaps to the
  nearest option with a notice that says so.
"""

from dataclasses import fields

import pytest
from apptest import assert_clean, open_page, unescaped
from streamlit import dataframe_util
from streamlit.testing.v1 import AppTest

from core.accounting import totals as acc
from core.model.presets import load_preset
from core.view.frames import CONTEXTS
from core.view.theme import token_label
from core.view.urlcodec import parse_state
from core.view.urlstate import HYBRID_MODELS, HYBRID_TOKENS, HybridState

P = "hybrid."
REAL_CONTEXTS = CONTEXTS[10:]  # the page's context options, 1K to 1M
FULL_LINK = {"T": "16", "input": "text", "model": "nemotron-h-56b", "context": "2048"}


def run(query: dict | None = None) -> AppTest:
    return open_page("app_pages/hybrid.py", query)


ok = assert_clean


def charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def layers_table(at: AppTest):
    return at.dataframe[0].value


def url_state(at: AppTest) -> HybridState:
    """The state the page wrote into the URL, parsed back; it must parse without a notice."""
    s = parse_state(HybridState, dict(at.query_params))
    assert not s.notices, s.notices
    return s


def test_defaults_render_three_charts_the_metrics_and_equal_bytes():
    at = run()
    ok(at)
    assert not at.warning
    assert charts(at) == 3
    m = metrics(at)
    assert m["KV cache at 128K (bf16)"] == "3 GiB"
    assert m["Fixed state per sequence"] == "37.7 MiB"
    assert list(m) == [
        "KV cache at 128K (bf16)",
        "Fixed state per sequence",
        "State share of the request",
        "Fixed state of one GDN layer",
    ]
    table = layers_table(at)
    assert list(table.layer) == ["attention (GQA)", "Gated DeltaNet", "Mamba-2"]
    assert list(table["equal"]) == ["yes"] * 3
    assert "measured nbytes at 512 tokens" in table.columns
    assert dict(at.query_params) == {}
    assert url_state(at) == HybridState()


@pytest.mark.parametrize("tokens", [HYBRID_TOKENS[0], HYBRID_TOKENS[-1]])
def test_tokens_slider_at_its_extremes(tokens):
    at = run()
    at.select_slider(key=P + "tokens").set_value(tokens).run()
    ok(at)
    assert charts(at) == 3
    table = layers_table(at)
    assert f"measured nbytes at {tokens:,} tokens" in table.columns
    assert list(table["equal"]) == ["yes"] * 3
    assert url_state(at).tokens == tokens


def test_real_text_input():
    at = run({"T": "16"})
    at.radio(key=P + "source").set_value("text").run()
    ok(at)
    assert charts(at) == 3
    assert list(layers_table(at)["equal"]) == ["yes"] * 3
    assert at.query_params["input"] == "text"
    assert url_state(at).source == "text"


@pytest.mark.parametrize("model", HYBRID_MODELS)
def test_every_model_at_the_smallest_and_largest_context(model):
    at = run({"T": "16", "model": model})
    ok(at)
    has_state = acc.state_bytes(load_preset(model)) > 0
    for context in (REAL_CONTEXTS[0], REAL_CONTEXTS[-1]):
        at.select_slider(key=P + "context").set_value(context).run()
        ok(at)
        assert charts(at) == 3
        m = metrics(at)
        assert m[f"KV cache at {token_label(context)} (bf16)"] not in ("", "0 B")
        assert (m["Fixed state per sequence"] == "none") is not has_state, m
        s = url_state(at)
        assert (s.model, s.context) == (model, context)


def test_models_without_state_show_none():
    at = run({"T": "16", "model": "llama-4-scout"})
    ok(at)
    assert metrics(at)["Fixed state per sequence"] == "none"


def test_the_layer_table_shows_counts_with_thousands_separators():
    """The table as the reader sees it (the Styler's display values): llama-4-scout at 128K tokens keeps
    8,192 tokens x 8 kv heads in each chunked layer and 131,072 x 8 in each global one."""
    at = run({"T": "16", "model": "llama-4-scout"})
    ok(at)
    shown = dataframe_util.convert_arrow_bytes_to_pandas_df(at.dataframe[1].proto.arrow_data.styler.display_values)
    assert list(shown["rows per layer"]) == ["65,536", "65,536", "1,048,576", "1,048,576"]
    assert set(shown["layers"]) == {"36", "12"} and set(shown["bytes per row"]) == {"256"}


def test_link_with_every_field_restores_the_widgets_and_is_written_back():
    s = parse_state(HybridState, FULL_LINK)
    assert not s.notices
    assert all(getattr(s, f.name) != f.default for f in fields(HybridState) if f.name != "notices")
    at = run(FULL_LINK)
    ok(at)
    assert not at.warning
    assert at.select_slider(key=P + "tokens").value == 16
    assert at.radio(key=P + "source").value == "text"
    assert at.selectbox(key=P + "model").value == "nemotron-h-56b"
    assert at.select_slider(key=P + "context").value == 2048
    assert "KV cache at 2K (bf16)" in metrics(at)
    assert dict(at.query_params) == FULL_LINK
    assert url_state(at) == s


@pytest.mark.parametrize(
    ("query", "notes"),
    [
        ({"zzz": "1", "T": "3"}, ["unknown link parameter 'zzz'", "unknown tokens"]),
        ({"model": "evil"}, ["unknown model"]),
        ({"context": "0"}, ["context in the link must be a whole number"]),
        ({"context": "99999999999"}, ["context in the link must be a whole number"]),
        ({"input": "<script>alert(1)</script>", "T": "-16"}, ["unknown input", "unknown tokens"]),
        ({"![x](http://127.0.0.1:9/x)": "1"}, ["'![x](http://127.0.0.1:9/x)'"]),
    ],
)
def test_hostile_links_warn_and_fall_back_to_the_defaults(query, notes):
    at = run(query)
    ok(at)
    warnings = [unescaped(w.value) for w in at.warning]
    assert all(w.startswith("Link: ") for w in warnings), warnings
    for note in notes:
        assert any(note in w for w in warnings), (note, warnings)
    for w in at.warning:  # what came from the link is shown as text: no live image, link or HTML
        assert not any(live in w.value for live in ("![x](", "](http", "<script>")), w.value
    assert charts(at) == 3
    assert metrics(at)["KV cache at 128K (bf16)"] == "3 GiB"
    assert dict(at.query_params) == {}


def test_a_link_on_a_slider_option_is_kept():
    at = run({"context": "524288"})
    ok(at)
    assert at.select_slider(key=P + "context").value == 524288
    assert at.query_params["context"] == "524288"


@pytest.mark.parametrize("raw, nearest", [("100000", 131_072), ("3000", 2048)])
def test_a_link_between_slider_options_snaps_to_the_nearest_and_says_so(raw, nearest):
    at = run({"context": raw})
    assert_clean(at)
    assert at.select_slider(key=P + "context").value == nearest
    (warning,) = [unescaped(w.value) for w in at.warning]
    assert f"context {int(raw):,} is not offered here; showing the nearest, {nearest:,}" in warning


def test_what_if_every_layer_were_global_and_one_recurrent_layers_state():
    """Llama-4-Scout at 1,048,576 tokens: with every layer global the cache would be 192 GiB, 3.91x the
    49.1 GiB its chunked layers keep (the accounting's numbers, core.accounting.whatif); Qwen3-Next's one
    Gated DeltaNet layer keeps 1,097,728 B of state, what one of its attention layers caches for 536 tokens
    (2 x 2 kv heads x 256 x 2 B = 2,048 B per token). Models without windows or state show neither."""
    at = run({"T": "16", "model": "llama-4-scout", "context": "1048576"})
    ok(at)
    m = metrics(at)
    assert m["Cache with every layer global"] == "192 GiB"
    text = " ".join(unescaped(x.value) for x in at.markdown)
    assert "3.91x the 49.1 GiB the windows and chunks keep" in text
    assert "48 x 8,388,608 x 256 B + 48 x 8,388,608 x 256 B" in text
    at = run({"T": "16", "model": "qwen3-next-80b-a3b"})
    ok(at)
    assert metrics(at)["Fixed state of one GDN layer"] == "1.05 MiB"
    text = " ".join(unescaped(x.value) for x in at.markdown)
    assert "= 1,097,728 B (1.05 MiB) per sequence at any context, in each of 36 layers" in text
    assert "caches for 536 tokens (2,048 B per token)" in text
    at = run({"T": "16", "model": "glm-5.2"})
    ok(at)
    assert not any(k.startswith(("Cache with every", "Fixed state of one")) for k in metrics(at))
