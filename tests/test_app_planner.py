"""The Memory planner page, run through app.py's router with Streamlit's AppTest.

What it proves:
- at the defaults the page renders two models, three charts and the results table with the issue's
  "done means" concurrency (llama-3.1-70b 20.35x, deepseek-v3 37.15x on 8 x H200 at 131,072 tokens,
  native weights), with no exception and no error;
- every widget at its minimum and maximum, and every option of every selectbox, renders without an
  exception; an st.error appears only where the weights do not fit, and says so; the URL written back
  parses to the widget's value;
- the context slider and the exact number input stay in sync both ways;
- a pasted config.json joins the comparison; each kind of bad input gives an st.error naming the
  problem while the rest of the page keeps working;
- a link with every field set restores every widget and is written back unchanged; a config carried in
  the link restores the custom model; hostile links give st.warning notices, never an exception.
"""

import base64
import json
import zlib
from dataclasses import fields
from pathlib import Path

import pytest
from apptest import assert_clean, assert_no_exception, open_page, unescaped
from streamlit.testing.v1 import AppTest

from core.model.dtypes import CACHE_DTYPES, WEIGHT_DTYPES
from core.model.gpus import GPUS
from core.model.presets import preset_names
from core.view.urlstate import PlannerState, encode_config, parse_state

CONFIGS = Path(__file__).resolve().parent.parent / "assets" / "configs"
P = "planner."
LAYOUTS = ["latent", "materialised", "fp8_ds_mla"]
QUERY_KEYS = {f.metadata["param"].key for f in fields(PlannerState) if "param" in f.metadata}


def run(query: dict | None = None) -> AppTest:
    return open_page("pages/planner.py", query)


no_exception = assert_no_exception


def ok(at: AppTest, allow_no_fit: bool = False) -> None:
    """No exception; no st.error, or (allow_no_fit) only errors that say the weights do not fit."""
    if not allow_no_fit:
        assert_clean(at)
        return
    no_exception(at)
    errors = [unescaped(e.value) for e in at.error]
    assert all("do not fit" in e for e in errors), errors


def table(at: AppTest):
    assert len(at.dataframe) == 1
    return at.dataframe[0].value.set_index("model")


def charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


def url_state(at: AppTest) -> PlannerState:
    """The state the page wrote into the URL, parsed back; it must parse without a notice."""
    s = parse_state(PlannerState, dict(at.query_params))
    assert not s.notices, s.notices
    return s


# ----------------------------------------------------------------------------- defaults


def test_defaults_render_two_models_three_charts_and_done_means_numbers():
    at = run()
    ok(at)
    assert at.title[0].value == "Memory planner"
    assert at.multiselect(key=P + "models").value == ["llama-3.1-70b", "deepseek-v3"]
    assert charts(at) == 3
    t = table(at)
    assert list(t.index) == ["llama-3.1-70b", "deepseek-v3"]
    assert "concurrency" in t.columns
    assert t.loc["llama-3.1-70b", "concurrency"] == "20.35x"
    assert t.loc["deepseek-v3", "concurrency"] == "37.15x"
    assert "KV 1 x 128K" in t.columns and (t["fits"] == "yes").all()
    assert dict(at.query_params) == {}  # the defaults make a bare link


# ----------------------------------------------------------------------------- every widget's extremes

EXTREMES = [
    ("select_slider", "context_log", [1, 2**20]),
    ("number_input", "context", [1, 2**24]),
    ("number_input", "batch", [1, 65_536]),
    ("selectbox", "kv_dtype", list(CACHE_DTYPES)),
    ("selectbox", "weight_dtype", ["native", *WEIGHT_DTYPES]),
    ("selectbox", "layout", LAYOUTS),
    ("selectbox", "gpu", [*GPUS, "custom"]),
    ("number_input", "memory_gb", [1.0, 10_000.0]),
    ("number_input", "bandwidth_tb_s", [0.01, 1000.0]),
    ("number_input", "n_gpus", [1, 1024]),
    ("slider", "utilization", [5, 100]),
    ("number_input", "reserved_gib", [0.0, 1000.0]),
]


@pytest.mark.parametrize("kind,field,values", EXTREMES, ids=[e[1] for e in EXTREMES])
def test_every_widget_at_its_extremes(kind, field, values):
    at = run()
    if field in ("memory_gb", "bandwidth_tb_s"):  # shown only for a custom GPU
        at.selectbox(key=P + "gpu").set_value("custom").run()
        ok(at, allow_no_fit=True)  # the custom GPU starts at 80 GB: 8 x 80 GB cannot hold deepseek-v3
    if kind == "selectbox":
        assert at.selectbox(key=P + field).options == [str(v) for v in values]
    for v in values:
        getattr(at, kind)(key=P + field).set_value(v).run()
        ok(at, allow_no_fit=True)
        assert getattr(at, kind)(key=P + field).value == v
        assert charts(at) == 3 and len(table(at)) == 2
        if field == "context_log":
            assert url_state(at).context == v
        else:
            assert getattr(url_state(at), field) == v


def test_weights_that_do_not_fit_say_so():
    at = run({"gpus": "1"})  # 1 x H200 cannot hold either model's native weights
    no_exception(at)
    errors = [unescaped(e.value) for e in at.error]
    assert len(errors) == 2 and all("do not fit" in e for e in errors), errors
    t = table(at)
    assert (t["fits"] == "no").all() and (t["KV budget"] == "none").all()
    assert charts(at) == 3


@pytest.mark.parametrize(
    "query",
    [
        # everything at its top: the largest context, batch and machine
        dict(context="16777216", batch="65536", gpu="custom", mem="10000", bw="1000", gpus="1024", util="100"),
        # everything at its bottom: nothing fits
        dict(context="1", gpu="custom", mem="1", bw="0.01", gpus="1", util="5", reserve="1000"),
    ],
    ids=["all-max", "all-min"],
)
def test_all_extremes_at_once(query):
    at = run(query)
    ok(at, allow_no_fit=True)
    assert charts(at) == 3 and len(table(at)) == 2
    assert dict(at.query_params) == query


def test_every_preset_at_the_largest_context_and_batch():
    names = preset_names()
    for i in range(0, len(names), 4):
        at = run({"models": ",".join(names[i : i + 4]), "context": str(2**24), "batch": "65536"})
        ok(at, allow_no_fit=True)
        assert list(table(at).index) == names[i : i + 4]
        assert charts(at) == 3


def test_no_model_selected_says_pick_one():
    at = run()
    at.multiselect(key=P + "models").set_value([]).run()
    no_exception(at)
    assert any("Pick at least one model" in i.value for i in at.info)


# ----------------------------------------------------------------------------- context slider <-> number


def test_slider_sets_the_exact_number():
    at = run()
    for v in (1024, 1, 2**20, 64):
        at.select_slider(key=P + "context_log").set_value(v).run()
        ok(at)
        assert at.number_input(key=P + "context").value == v
        assert at.query_params.get("context", "131072") == str(v)


@pytest.mark.parametrize(
    "typed,nearest",
    [(5000, 4096), (3, 2), (1, 1), (700_000, 524_288), (2**24, 2**20), (1_000_000, 2**20), (131_072, 131_072)],
)
def test_typed_number_moves_the_slider_to_the_nearest_power_of_two(typed, nearest):
    at = run()
    at.number_input(key=P + "context").set_value(typed).run()
    ok(at)
    assert at.select_slider(key=P + "context_log").value == nearest
    assert at.number_input(key=P + "context").value == typed  # the exact number is kept, not rounded
    assert url_state(at).context == typed


def test_slider_after_typing_replaces_the_exact_number():
    at = run()
    at.number_input(key=P + "context").set_value(5000).run()
    assert any(c == "KV 1 x 5,000" for c in table(at).columns)
    at.select_slider(key=P + "context_log").set_value(8192).run()
    ok(at)
    assert at.number_input(key=P + "context").value == 8192
    assert "KV 1 x 8K" in table(at).columns


# ----------------------------------------------------------------------------- bring your own config


def paste(at: AppTest, text: str) -> AppTest:
    at.text_area(key=P + "paste").input(text).run()
    return at


def test_pasted_good_config_joins_the_table():
    text = (CONFIGS / "qwen2.5-7b.json").read_text()
    at = paste(run(), text)
    ok(at)
    assert len(at.success) == 1 and "qwen2" in unescaped(at.success[0].value)
    assert list(table(at).index) == ["llama-3.1-70b", "deepseek-v3", "your config"]
    assert at.multiselect(key=P + "models").value == ["llama-3.1-70b", "deepseek-v3", "@config"]
    assert charts(at) == 3
    assert at.query_params["cfg"] == encode_config(text)
    assert at.query_params["models"] == "llama-3.1-70b,deepseek-v3,@config"


QWEN = json.loads((CONFIGS / "qwen2.5-7b.json").read_text())


def with_(**changes) -> str:
    return json.dumps({**QWEN, **changes})


BAD_PASTES = [
    ("not-json", "{not json", "not valid JSON"),
    ("json-list", "[1, 2, 3]", "JSON object"),
    ("over-1-MiB", "{" + " " * (1 << 20) + "}", "1 MiB"),
    ("no-hidden-size", json.dumps({k: v for k, v in QWEN.items() if k != "hidden_size"}), "hidden_size"),
    ("1e12-layers", with_(num_hidden_layers=1e12), "num_hidden_layers"),
    ("string-for-number", with_(hidden_size="3584"), "hidden_size"),
    ("zero-hidden-size", with_(hidden_size=0), "hidden_size"),
    ("negative-heads", with_(num_attention_heads=-28), "num_attention_heads"),
    ("zero-kv-heads", with_(num_key_value_heads=0), "num_key_value_heads"),
    ("negative-intermediate", with_(intermediate_size=-1), "intermediate_size"),
    ("heads-not-divisible", with_(num_attention_heads=28, num_key_value_heads=5), "multiple of num_key_value_heads"),
]


@pytest.mark.parametrize("text,problem", [b[1:] for b in BAD_PASTES], ids=[b[0] for b in BAD_PASTES])
def test_bad_pasted_config_names_the_problem_and_page_keeps_working(text, problem):
    at = paste(run(), text)
    no_exception(at)
    errors = [unescaped(e.value) for e in at.error]
    assert len(errors) == 1 and problem in errors[0], errors
    assert "pasted config" in errors[0]
    assert not at.success
    assert charts(at) == 3
    assert list(table(at).index) == ["llama-3.1-70b", "deepseek-v3"]
    assert "cfg" not in at.query_params and "@config" not in at.query_params.get("models", "")


def test_breaking_a_pasted_config_drops_it_and_fixing_it_brings_it_back():
    text = (CONFIGS / "qwen2.5-7b.json").read_text()
    at = paste(run(), text)
    assert "your config" in table(at).index
    paste(at, text.replace('"hidden_size": 3584', '"hidden_size": 0'))
    no_exception(at)
    assert len(at.error) == 1 and "hidden_size" in unescaped(at.error[0].value)
    assert list(table(at).index) == ["llama-3.1-70b", "deepseek-v3"] and charts(at) == 3
    paste(at, text)
    ok(at)
    assert list(table(at).index) == ["llama-3.1-70b", "deepseek-v3", "your config"]


# ----------------------------------------------------------------------------- the link

FULL_VIEW = dict(
    models="gpt2,deepseek-v4-flash",
    context="5000",
    batch="3",
    kv="int4",
    w="fp8",
    layout="materialised",
    gpu="custom",
    mem="96",
    bw="2.5",
    gpus="2",
    util="80",
    reserve="1.5",
)


def test_full_link_restores_every_widget_and_is_written_back_unchanged():
    at = run(FULL_VIEW)
    ok(at, allow_no_fit=True)  # deepseek-v4-flash's fp8 weights do not fit in 2 x 96 GB
    assert not at.warning
    assert at.multiselect(key=P + "models").value == ["gpt2", "deepseek-v4-flash"]
    assert at.number_input(key=P + "context").value == 5000
    assert at.select_slider(key=P + "context_log").value == 4096
    assert at.number_input(key=P + "batch").value == 3
    assert at.selectbox(key=P + "kv_dtype").value == "int4"
    assert at.selectbox(key=P + "weight_dtype").value == "fp8"
    assert at.selectbox(key=P + "layout").value == "materialised"
    assert at.selectbox(key=P + "gpu").value == "custom"
    assert at.number_input(key=P + "memory_gb").value == 96.0
    assert at.number_input(key=P + "bandwidth_tb_s").value == 2.5
    assert at.number_input(key=P + "n_gpus").value == 2
    assert at.slider(key=P + "utilization").value == 80
    assert at.number_input(key=P + "reserved_gib").value == 1.5
    assert dict(at.query_params) == FULL_VIEW
    t = table(at)
    assert list(t.index) == ["gpt2", "deepseek-v4-flash"] and "KV 3 x 5,000" in t.columns
    assert charts(at) == 3
    at.run()  # a rerun keeps the view
    assert dict(at.query_params) == FULL_VIEW


def config_link() -> tuple[str, dict]:
    token = encode_config((CONFIGS / "mistral-7b.json").read_text())
    return token, {"models": "llama-3.1-70b,@config", "cfg": token}


def test_config_in_the_link_restores_the_custom_model():
    token, query = config_link()
    at = run(query)
    ok(at)
    assert not at.warning
    assert len(at.success) == 1 and "config in the link" in unescaped(at.success[0].value)
    assert list(table(at).index) == ["llama-3.1-70b", "your config"]
    assert "@config" in at.multiselect(key=P + "models").value
    assert at.query_params["cfg"] == token
    assert charts(at) == 3


def test_config_in_the_link_is_selected_once_and_the_link_is_written_back_unchanged():
    _, query = config_link()
    at = run(query)
    assert at.multiselect(key=P + "models").value == ["llama-3.1-70b", "@config"]
    assert dict(at.query_params) == query


def zlib_bomb() -> str:
    token = base64.urlsafe_b64encode(zlib.compress(b"{" + b" " * (4 << 20) + b"}", 9)).decode().rstrip("=")
    assert len(token) < 8000  # short enough to be decoded: the inflation limit is what stops it
    return token


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


HOSTILE = [
    (
        "garbage-everywhere",
        {
            "models": "nope,<script>alert(1)</script>",
            "context": "1e99",
            "batch": "-3",
            "kv": "int3",
            "w": "x",
            "layout": "flat",
            "gpu": "X" * 500,
            "mem": "nan",
            "bw": "inf",
            "gpus": "1024.5",
            "util": "0",
            "reserve": "-1",
            "zzz": "1",
        },
        [
            "unknown link parameter",
            "no known models",
            "context",
            "batch",
            "cache dtype",
            "weight dtype",
            "layout",
            "GPU",
            "memory (GB)",
            "bandwidth",
            "number of GPUs",
            "utilization",
            "reserved memory",
        ],
    ),  # fmt: skip
    (
        "huge-numbers",
        {"context": "9" * 40, "batch": "1" * 16, "gpus": "99999", "mem": "1e400", "bw": "1e308", "reserve": "1e308"},
        ["context", "batch", "number of GPUs", "memory (GB)", "bandwidth", "reserved memory"],
    ),
    ("empty-values", {"models": ",,,", "context": "", "mem": ""}, ["no known models", "context", "memory (GB)"]),
    ("unknown-keys", {"foo": "bar", "x" * 300: "y" * 10_000}, ["unknown link parameter"]),
    ("cfg-not-base64", {"models": "llama-3.1-70b,@config", "cfg": "!!not base64!!"}, ["config in the link"]),
    ("cfg-not-zlib", {"models": "llama-3.1-70b,@config", "cfg": b64(b"plain bytes")}, ["config in the link"]),
    ("cfg-not-utf8", {"models": "llama-3.1-70b,@config", "cfg": b64(zlib.compress(b"\xff\xfe"))}, ["config"]),
    ("cfg-too-long", {"models": "llama-3.1-70b,@config", "cfg": "A" * 9000}, ["config in the link"]),
    ("cfg-zlib-bomb", {"models": "llama-3.1-70b,@config", "cfg": zlib_bomb()}, ["inflates past 1 MiB"]),
]


@pytest.mark.parametrize("query,notices", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_link_gives_warnings_not_exceptions(query, notices):
    at = run(query)
    no_exception(at)
    warnings = " ".join(unescaped(w.value) for w in at.warning)
    assert all(w.value.startswith("Link: ") for w in at.warning)
    for n in notices:
        assert n in warnings, (n, warnings)
    assert not [unescaped(e.value) for e in at.error if "do not fit" not in unescaped(e.value)]
    assert charts(at) == 3 and len(table(at)) >= 1
    assert set(at.query_params) <= QUERY_KEYS  # garbage and unknown keys are not written back
    assert "cfg" not in at.query_params
    url_state(at)  # what the page writes back is clean


@pytest.mark.parametrize(
    "payload,problem",
    [(b"[1, 2]", "JSON object"), (b'{"hidden_size": 1}', "num_hidden_layers")],
    ids=["json-list", "missing-fields"],
)
def test_link_config_that_decodes_but_is_not_a_model_names_the_problem(payload, problem):
    at = run({"models": "llama-3.1-70b,@config", "cfg": b64(zlib.compress(payload))})
    no_exception(at)
    messages = " ".join(unescaped(m.value) for m in [*at.error, *at.warning])
    assert problem in messages and "config in the link" in messages
    assert list(table(at).index) == ["llama-3.1-70b"] and charts(at) == 3


def test_link_naming_a_config_it_does_not_carry_says_so():
    at = run({"models": "@config"})
    no_exception(at)
    assert at.warning, "no notice that the link's config is missing"
