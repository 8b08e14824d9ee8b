"""The Inside MLA page, run through app.py's router with Streamlit's AppTest.

What it proves:
- at the defaults the page renders the lesson, both tables with "yes" in every "match" cell (measured cache
  bytes and FLOPs equal the formulas), four data-flow diagrams, the FLOPs chart and the heatmap, four
  metrics with materialised and absorbed agreeing to ~1e-15, no exception and no error, and a bare link;
- every slider at its minimum and maximum renders without an exception; the tables still match; the URL
  written back parses to the slider's value; the only refusal allowed is an st.error sentence naming the
  size limit (none occurs: 64 heads x 1024 x 1024 is exactly InsideConfig's limit); past 128 tokens the
  heatmap is block-averaged to at most 128 x 128 cells;
- DeepSeek-V3's cache per token per layer in each layout, against the MHA of equal heads: materialised
  128 x (192 + 128) x 2 B = 81,920 B, latent bf16 (512 + 64) x 2 = 1,152 B (71.1x smaller), latent fp8 576 B,
  fp8_ds_mla 656 B, and x 61 layers 70,272 B for the bf16 latent;
- the KV-heads slider only offers divisors of the query heads and follows a change of the head count;
- real-text input and fp32 work; the RoPE toggle shows the error with a percentage, and back;
- the heatmap's design selector and head slider at their extremes pick the chart shown;
- a link with every field set restores every widget and is written back unchanged; hostile links give
  st.warning notices (or, for a value the layers refuse, an st.error sentence), never an exception.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields

import pytest
import torch
from apptest import assert_clean, assert_no_exception, open_page, unescaped
from streamlit.testing.v1 import AppTest

from core.view.urlcodec import parse_state
from core.view.urlstate import InsideState

P = "inside."
DESIGNS = ["MHA", "GQA", "MLA materialised", "MLA absorbed"]
WIDTHS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
QUERY_KEYS = {f.name: f.metadata["param"].key for f in fields(InsideState) if "param" in f.metadata}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: with the 2 cores shared by other jobs, torch's 2-thread pool spin-waits and the
    layers run 10-100x slower; results do not depend on it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run(query: dict | None = None) -> AppTest:
    return open_page("app_pages/inside_mla.py", query)


no_exception = assert_no_exception


def ok(at: AppTest) -> None:
    """No exception, no st.error, and the tables say measured == formula everywhere."""
    assert_clean(at)
    tables_match(at)


def design_tables(at: AppTest) -> tuple:
    """The cache and FLOPs tables of the running layers (the DeepSeek-V3 layouts table sits between them)."""
    assert len(at.dataframe) == 3
    cache, _, flops = (d.value for d in at.dataframe)
    return cache, flops


def tables_match(at: AppTest) -> None:
    cache, flops = design_tables(at)
    assert list(cache["design"]) == DESIGNS and list(flops["design"]) == DESIGNS
    assert (cache["match"] == "yes").all(), cache.to_dict("records")
    assert (flops["match"] == "yes").all(), flops.to_dict("records")
    for _, r in cache.iterrows():
        assert r["measured nbytes"] == r["formula"]
    for _, r in flops.iterrows():
        assert r["prefill (formula)"] == r[[c for c in flops.columns if c.endswith("(measured)")][0]]
        assert r["decode 1 token (measured)"] == r["decode (formula)"]


def url_state(at: AppTest) -> InsideState:
    """The state the page wrote into the URL, parsed back; it must parse without a notice."""
    s = parse_state(InsideState, dict(at.query_params))
    assert not s.notices, s.notices
    return s


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def graphs(at: AppTest) -> list[str]:
    return [g.proto.spec for g in at.get("graphviz_chart")]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def widget(at: AppTest, field: str):
    for kind in ("slider", "select_slider", "number_input", "radio", "toggle", "selectbox"):
        found = [w for w in getattr(at, kind) if w.key == P + field]
        if found:
            return found[0]
    raise KeyError(field)


# ----------------------------------------------------------------------------- defaults


def test_defaults_render_tables_diagrams_charts_and_metrics():
    at = run()
    ok(at)
    assert at.title[0].value == "Inside MLA"
    assert dict(at.query_params) == {}  # the defaults make a bare link
    cache, flops = design_tables(at)
    assert cache.set_index("design").loc["GQA", "cached tensors (shape)"] == "K (1, 2, 64, 32), V (1, 2, 64, 32)"
    assert cache.set_index("design").loc["MLA absorbed", "measured nbytes"] == f"{64 * (64 + 16) * 8:,}"
    assert "prefill 64 tokens (measured)" in flops.columns
    g = graphs(at)
    assert len(g) == 4 and all(d.startswith("digraph G {") for d in g)
    assert "(1 x 2 x 64 x 32)\\ncached" in g[1] and "(1 x 64 x 64)\\ncached" in g[3]
    c = charts(at)
    assert len(c) == 2 and c[1]["title"] == "MLA absorbed, head 0"
    m = metrics(at)
    assert list(m) == [
        "max |materialised - absorbed|",
        "1 - cosine similarity",
        "cache, materialised / absorbed",
        "prefill FLOPs, absorbed / materialised",
    ]
    assert float(m["max |materialised - absorbed|"]) < 1e-12
    assert abs(float(m["1 - cosine similarity"])) < 1e-12
    assert m["cache, materialised / absorbed"] == "8.0x"  # 8 x (48 + 32) vs 64 + 16
    assert len(at.success) == 1 and "relative output error" in unescaped(at.success[0].value)
    assert not at.toggle(key=P + "coupled_rope").value
    assert at.select_slider(key=P + "d_model").options == [str(w) for w in WIDTHS]


# ----------------------------------------------------------------------------- every slider's extremes

EXTREMES = [
    pytest.param("select_slider", "d_model", [16, 4096], id="d_model"),
    pytest.param("slider", "n_heads", [1, 64], id="n_heads"),
    pytest.param("select_slider", "n_kv_heads", [1, 8], id="n_kv_heads"),
    pytest.param("number_input", "head_dim", [4, 256], id="head_dim"),
    pytest.param("number_input", "kv_lora_rank", [4, 1024], id="kv_lora_rank"),
    pytest.param("slider", "rope_dim", [0, 128], id="rope_dim"),
    pytest.param("number_input", "q_lora_rank", [8, 2048, 0], id="q_lora_rank"),
    pytest.param("number_input", "seq_len", [4, 1024], id="seq_len"),
]


@pytest.mark.parametrize("kind,field,values", EXTREMES)
def test_every_slider_at_its_extremes(kind, field, values):
    at = run()
    for v in values:
        getattr(at, kind)(key=P + field).set_value(v).run()
        no_exception(at)
        errors = [unescaped(e.value) for e in at.error]
        if errors:  # the page may refuse a too-large combination, in a sentence
            assert len(errors) == 1 and "limit" in errors[0] and errors[0].endswith("."), errors
            continue
        tables_match(at)
        assert getattr(at, kind)(key=P + field).value == v
        assert getattr(url_state(at), field) == v
        assert len(graphs(at)) == 4 and len(charts(at)) == 2


def test_a_typed_value_off_the_grid_snaps_to_the_nearest_step():
    """The wide controls take an exact number; one the layers cannot take (d_c 30: steps of 4) becomes the
    nearest step, and the page says so under the controls."""
    at = run()
    at.number_input(key=P + "kv_lora_rank").set_value(30).run()
    ok(at)
    assert at.number_input(key=P + "kv_lora_rank").value in (28, 32) and url_state(at).kv_lora_rank in (28, 32)
    assert any("30 is not offered" in c.value for c in at.caption)


def heatmap_rows(at: AppTest):
    """The heatmap's data as the browser gets it (Arrow), as a pyarrow table."""
    import pyarrow as pa

    chart = at.get("vega_lite_chart")[1]
    assert len(chart.proto.datasets) == 1
    return pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all()


@pytest.mark.parametrize("T,side,step", [(68, 68, 1), (72, 72, 1), (128, 128, 1), (132, 66, 2), (1024, 128, 8)])
def test_long_sequences_send_a_bounded_heatmap(T, side, step):
    """Past 128 positions the map is averaged over blocks (Altair's 5,000-row limit once broke T >= 72)."""
    at = run({"T": str(T)})
    ok(at)
    assert charts(at)[1]["title"] == "MLA absorbed, head 0"
    t = heatmap_rows(at)
    assert t.num_rows == side * side
    q = sorted(set(t.column("query").to_pylist()))
    assert q == list(range(0, side * step, step))
    p = t.column("p").to_pylist()
    assert all(0 <= v <= 1 for v in p)
    # causal: the blocks strictly above the diagonal are empty
    cells = zip(t.column("query").to_pylist(), t.column("key").to_pylist(), p, strict=True)
    assert all(v == 0 for qq, kk, v in cells if kk > qq)


def test_smallest_everything():
    at = run({"width": "16", "heads": "1", "kv": "1", "hd": "4", "dc": "4", "dr": "0", "T": "4"})
    ok(at)
    assert at.slider(key=P + "heat_head").disabled  # one head: nothing to choose
    assert "(1 x 1 x 4 x 4)\\ncached" in graphs(at)[0]


def test_kv_heads_stay_a_divisor_of_the_query_heads():
    at = run()
    kv = at.select_slider(key=P + "n_kv_heads")
    assert kv.options == ["1", "2", "4", "8"]
    kv.set_value(8).run()
    ok(at)
    assert url_state(at).n_kv_heads == 8
    for heads, want in [(12, 6), (7, 1), (1, 1)]:
        at.slider(key=P + "n_heads").set_value(heads).run()
        ok(at)
        kv = at.select_slider(key=P + "n_kv_heads")
        assert kv.options == [str(g) for g in range(1, heads + 1) if heads % g == 0]
        assert kv.value == want and heads % kv.value == 0
        assert (url_state(at).n_heads, url_state(at).n_kv_heads) == (heads, want)
    at = run({"heads": "48", "kv": "16"})
    at.slider(key=P + "n_heads").set_value(40).run()  # 16 no longer divides 40: the largest divisor below, 10
    ok(at)
    assert at.select_slider(key=P + "n_kv_heads").value == 10
    cache = at.dataframe[0].value.set_index("design")
    assert cache.loc["GQA", "cached tensors (shape)"].startswith("K (1, 10, 64, 32)")


# ----------------------------------------------------------------------------- input, precision, RoPE


def test_real_text_input_and_fp32():
    at = run()
    at.radio(key=P + "source").set_value("text").run()
    ok(at)
    assert url_state(at).source == "text"
    assert any("Tokens: MiniLM embeddings of the shipped text" in c.value for c in at.caption)
    assert float(metrics(at)["max |materialised - absorbed|"]) < 1e-12
    at.radio(key=P + "precision").set_value("fp32").run()
    ok(at)
    assert (url_state(at).source, url_state(at).precision) == ("text", "fp32")
    assert any("Precision: fp32" in c.value for c in at.caption)
    cache = at.dataframe[0].value.set_index("design")
    assert cache.loc["MLA absorbed", "measured nbytes"] == f"{64 * (64 + 16) * 4:,}"  # 4 bytes a number
    diff = float(metrics(at)["max |materialised - absorbed|"])
    assert 0 < diff < 1e-3  # single precision: close, not exact
    at.radio(key=P + "source").set_value("random").run()
    ok(at)
    assert dict(at.query_params) == {"prec": "fp32"}


def test_device_offers_cuda_only_when_present():
    at = run()
    want = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    assert at.radio(key=P + "device").options == want


def test_rope_toggle_shows_the_error_with_a_percentage():
    at = run()
    assert not at.error
    at.toggle(key=P + "coupled_rope").set_value(True).run()
    no_exception(at)
    tables_match(at)
    assert len(at.error) == 1
    msg = unescaped(at.error[0].value)
    assert "wrong answer" in msg
    pct = re.search(r"relative output error \*\*(\d+\.\d\d)%\*\*", msg)
    assert pct and float(pct.group(1)) > 0.1, msg
    assert not at.success
    assert url_state(at).coupled_rope is True and at.query_params["coupled"] == "1"
    at.toggle(key=P + "coupled_rope").set_value(False).run()
    ok(at)
    assert len(at.success) == 1 and dict(at.query_params) == {}


def test_rope_toggle_with_no_rope_dims_and_text():
    at = run({"dr": "0", "input": "text", "coupled": "1"})
    no_exception(at)
    assert len(at.error) == 1 and re.search(r"\*\*\d+\.\d\d%\*\*", at.error[0].value)
    assert at.toggle(key=P + "coupled_rope").value


# ----------------------------------------------------------------------------- the heatmap


def test_heatmap_design_and_head_at_their_extremes():
    at = run()
    assert at.selectbox(key=P + "heat_design").options == DESIGNS
    assert at.slider(key=P + "heat_head").max == 7
    for design in DESIGNS:
        at.selectbox(key=P + "heat_design").set_value(design)
        for head in (0, 7):
            at.slider(key=P + "heat_head").set_value(head).run()
            ok(at)
            assert charts(at)[1]["title"] == f"{design}, head {head}"
            s = url_state(at)
            assert (s.heat_design, s.heat_head) == (design, head)
    at = run({"heads": "64", "head": "63", "T": "8"})
    ok(at)
    assert at.slider(key=P + "heat_head").max == 63
    assert charts(at)[1]["title"] == "MLA absorbed, head 63"
    assert url_state(at).heat_head == 63


def test_heatmap_head_resets_when_the_heads_shrink():
    at = run()
    at.slider(key=P + "heat_head").set_value(7).run()
    at.slider(key=P + "n_heads").set_value(4).run()
    ok(at)
    assert at.slider(key=P + "heat_head").value == 0
    assert charts(at)[1]["title"] == "MLA absorbed, head 0"


def test_url_follows_the_heatmap_head_reset():
    at = run()
    at.slider(key=P + "heat_head").set_value(7).run()
    at.slider(key=P + "n_heads").set_value(4).run()
    assert charts(at)[1]["title"] == "MLA absorbed, head 0"
    assert url_state(at).heat_head == 0


# ----------------------------------------------------------------------------- links

FULL_LINK = {
    "width": "128",
    "heads": "12",
    "kv": "3",
    "hd": "16",
    "dc": "32",
    "dr": "8",
    "dq": "64",
    "T": "36",
    "input": "text",
    "prec": "fp32",
    "coupled": "1",
    "heat": "GQA",
    "head": "11",
}


def test_link_with_every_field_restores_every_widget_and_round_trips():
    at = run(FULL_LINK)
    no_exception(at)
    tables_match(at)
    assert not at.warning
    want = parse_state(InsideState, FULL_LINK)
    for name in QUERY_KEYS:
        if name != "device":
            assert widget(at, name).value == getattr(want, name), name
    assert dict(at.query_params) == FULL_LINK  # written back unchanged
    assert charts(at)[1]["title"] == "GQA, head 11"
    assert "(1 x 3 x 36 x 16)\\ncached" in graphs(at)[1]
    assert len(at.error) == 1  # the coupled-RoPE message, on from the link
    # moving one widget changes only its key
    at.number_input(key=P + "seq_len").set_value(40).run()
    assert dict(at.query_params) == {**FULL_LINK, "T": "40"}


def test_a_written_link_reopens_the_same_view():
    at = run()
    at.slider(key=P + "n_heads").set_value(16).run()
    at.slider(key=P + "rope_dim").set_value(32).run()
    at.radio(key=P + "precision").set_value("fp32").run()
    link = dict(at.query_params)
    assert link == {"heads": "16", "dr": "32", "prec": "fp32"}
    again = run(link)
    ok(again)
    assert [d.value.to_dict() for d in again.dataframe] == [d.value.to_dict() for d in at.dataframe]
    assert dict(again.query_params) == link


HOSTILE = [
    {"zzz": "1", "width": "-1", "T": "1e9", "input": "<script>", "prec": "fp16", "coupled": "yes", "heat": "X" * 500},
    {"heads": "0", "kv": "65", "hd": "abc", "dc": "99999999999999999999", "dr": "129", "dq": "-8", "head": "64"},
    {"device": "tpu", "T": "", "width": "4,096,000", "heads": "1_0_0"},
]


@pytest.mark.parametrize("query", HOSTILE, ids=["garbage", "out-of-range", "odd-formats"])
def test_hostile_links_give_notices_not_exceptions(query):
    at = run(query)
    no_exception(at)
    ok(at)
    notes = [unescaped(w.value) for w in at.warning]
    assert notes and all(n.startswith("Link: ") for n in notes)
    assert len(notes) == len(query), notes  # one notice per bad parameter
    assert len(graphs(at)) == 4 and len(charts(at)) == 2
    url_state(at)  # what the page writes back is clean


def test_hostile_link_notice_wording():
    at = run(HOSTILE[0])
    text = " ".join(unescaped(w.value) for w in at.warning)
    for words in ("unknown link parameter 'zzz'", "model width", "sequence length", "precision", "RoPE toggle"):
        assert words in text, text
    assert "X" * 41 not in text  # a long value is not echoed


@pytest.mark.parametrize(
    "query,shown",
    [
        ({"heads": "7", "kv": "2"}, {"n_heads": 7, "n_kv_heads": 1}),  # kv must divide heads
        ({"heads": "8", "kv": "64"}, {"n_kv_heads": 8}),
        # off the sliders' steps: the nearest step, announced
        (
            {"hd": "5", "dc": "5", "dq": "3", "T": "7"},
            {"head_dim": 4, "kv_lora_rank": 4, "q_lora_rank": 0, "seq_len": 8},
        ),
        ({"device": "cuda"}, {}),  # no GPU here: the page falls back to the CPU
    ],
)
def test_links_the_sliders_cannot_make_still_render(query, shown):
    if "device" in query and torch.cuda.is_available():
        pytest.skip("a GPU is present: cuda is a valid choice")
    at = run(query)
    ok(at)
    for name, v in shown.items():
        assert widget(at, name).value == v
    warnings = " ".join(unescaped(w.value) for w in at.warning)
    for name in ("head_dim", "kv_lora_rank", "q_lora_rank", "seq_len", "device cuda"):
        assert (name in warnings) == (name in shown or (name == "device cuda" and "device" in query)), warnings
    s = url_state(at)
    assert s.n_heads % s.n_kv_heads == 0 and s.device == "cpu"


def test_odd_rope_dim_from_a_link_becomes_the_nearest_even_one_and_says_so():
    at = run({"dr": "3"})
    ok(at)
    assert at.slider(key=P + "rope_dim").value == 2  # RoPE rotates pairs: the slider's steps are even
    (warning,) = [unescaped(w.value) for w in at.warning]
    assert "rope_dim 3 is not offered here; showing the nearest, 2" in warning
    at.slider(key=P + "rope_dim").set_value(4).run()
    ok(at)


def test_a_width_that_is_not_an_option_gives_a_notice():
    at = run({"width": "100"})
    no_exception(at)
    assert at.warning, "no notice for width=100"


def test_deepseek_v3_layouts_against_mha_of_equal_heads():
    at = run()
    assert_clean(at)
    layouts = at.dataframe[1].value.set_index("layout")
    assert list(layouts["bytes per token per layer"]) == [128 * (192 + 128) * 2, (512 + 64) * 2, 512 + 64, 656]
    assert list(layouts["bytes per token, 61 layers"]) == [61 * 81_920, 70_272, 61 * 576, 40_016]
    assert round(layouts.loc["latent", "times smaller than MHA"].iloc[0], 1) == 71.1
    assert layouts.loc["materialised (MHA of equal heads)", "stored per token per layer"] == (
        "keys 128 x 384 B + values 128 x 256 B"
    )
    shown = " ".join(c.value for c in at.caption)
    assert "128 keys of 128 + 64 = 192 and 128 values of 128 per token" in shown
