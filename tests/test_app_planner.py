"""The Memory planner page, run through app.py's router with Streamlit's AppTest.

What it proves:
- at the defaults the page renders two models, three charts and the results table with planner v2's
  concurrency on 8 x H200 as TP8 at 131,072 tokens, native weights: llama-3.1-70b 20.35x, deepseek-v3
  4.55x (its MLA latent is whole on every TP rank), while pooled memory would say 37.15x, and the page
  says why (8 copies); with no exception and no error;
- every widget at its minimum and maximum (TP, PP, data-parallel attention, block size,
  max_num_batched_tokens and the KV budget included), and every option of every selectbox, renders
  without an exception; an st.error appears only where the weights do not fit, the layout does not
  divide the GPUs, or TP/PP cannot split a model, and says so; the URL written back parses to the
  widget's value;
- a layout that does not divide the GPUs gives one st.error and nothing else; a model TP cannot split
  gets its own st.error while the others render;
- vLLM's own numbers come back: DeepSeek-V2-Lite on 4 GPUs as TP2 x PP2 with its logged KV memory has
  50,487 blocks, 807,792 tokens and 788.86x; DeepSeek-V3 with data-parallel attention 22.73x; models
  vLLM allocates with other rules say "estimate"; with PP the memory chart shows one GPU per stage;
- the context slider and the exact number input stay in sync both ways;
- a pasted config.json joins the comparison; each kind of bad input gives an st.error naming the
  problem while the rest of the page keeps working;
- a link with every field set restores every widget and is written back unchanged; a config carried in
  the link restores the custom model; hostile links give st.warning notices, never an exception.
"""

import base64
import json
import re
import zlib
from dataclasses import fields
from pathlib import Path

import pyarrow as pa
import pytest
from apptest import assert_clean, assert_no_exception, open_page, unescaped
from streamlit.testing.v1 import AppTest

from core.accounting.totals import kv_bytes_per_token
from core.model.dtypes import CACHE_DTYPES, WEIGHT_DTYPES
from core.model.gpus import GPUS
from core.model.presets import load_preset as preset
from core.model.presets import preset_names
from core.view.urlcodec import encode_config, parse_state
from core.view.urlstate import PlannerState
from core.workshop.path import paths

CONFIGS = Path(__file__).resolve().parent.parent / "assets" / "configs"
P = "planner."
LAYOUTS = ["latent", "materialised", "fp8_ds_mla"]
QUERY_KEYS = {f.metadata["param"].key for f in fields(PlannerState) if "param" in f.metadata}


def run(query: dict | None = None) -> AppTest:
    return open_page("app_pages/planner.py", query)


no_exception = assert_no_exception


# what an st.error may say when the inputs cannot be served: weights that do not fit, a TP x PP layout
# that does not divide the GPUs, a model TP cannot split, PP above a model's layers
EXPLAINED = ("do not fit", "does not divide", "cannot be planned", "larger than")
LAYOUT_ERROR = "does not divide"  # ... {n} GPU(s): the whole page stops


def ok(at: AppTest, allow_no_fit: bool = False) -> None:
    """No exception; no st.error, or (allow_no_fit) only errors that explain weights that do not fit or a
    layout the GPUs or the model cannot take."""
    if not allow_no_fit:
        assert_clean(at)
        return
    no_exception(at)
    errors = [unescaped(e.value) for e in at.error]
    assert all(any(x in e for x in EXPLAINED) for e in errors), errors


def errors(at: AppTest) -> list[str]:
    return [unescaped(e.value) for e in at.error]


def rendered(at: AppTest, models: list[str]) -> list[str]:
    """The models the page planned, checked against its errors: a layout that does not divide the GPUs
    stops the page after one error; a model that cannot be planned has an error naming it and no row;
    everything that was planned has a table row and the three charts."""
    errs = errors(at)
    if any(e.startswith(("TP x PP =", "PP ")) for e in errs):
        assert len(errs) == 1 and LAYOUT_ERROR in errs[0], errs
        assert charts(at) == 0 and not results(at)
        return []
    unplanned = [m for m in models if any(e.startswith(f"{m} cannot be planned") for e in errs)]
    planned = [m for m in models if m not in unplanned]
    if not planned:
        assert charts(at) == 0 and not results(at)
        return []
    assert charts(at) == 3 and list(table(at).index) == planned
    return planned


def markdown(at: AppTest) -> str:
    return "\n".join(unescaped(m.value) for m in at.markdown)


def memory_rows(at: AppTest) -> list[str]:
    """The bars of the memory chart (the first chart), in order: one per model, or per stage with PP."""
    data = at.get("vega_lite_chart")[0].proto.datasets[0].data.data
    return list(dict.fromkeys(pa.ipc.open_stream(data).read_pandas()["model"]))


def results(at: AppTest) -> list:
    """The results tables shown (the cache dtype legend, always there, is the page's other table)."""
    return [d for d in at.dataframe if "model" in d.value.columns]


def table(at: AppTest):
    (found,) = results(at)
    return found.value.set_index("model")


def legend(at: AppTest):
    (found,) = [d.value for d in at.dataframe if "cache dtype" in d.value.columns]
    return found.set_index("cache dtype")


def charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


def url_state(at: AppTest) -> PlannerState:
    """The state the page wrote into the URL, parsed back; it must parse without a notice."""
    s = parse_state(PlannerState, dict(at.query_params))
    assert not s.notices, s.notices
    return s


# ----------------------------------------------------------------------------- defaults


COLUMNS = [
    "attention",
    "params",
    "weights / GPU",
    "KV budget / GPU",
    "blocks / GPU",
    "KV cache (tokens)",
    "fits",
    "concurrency",
    "pooled would say",
    "max context",
    "decode step ≥",
    "tokens/s ≤",
    "running at once",
    "max_model_len",
]


def test_defaults_render_two_models_three_charts_and_done_means_numbers():
    at = run()
    ok(at)
    assert at.title[0].value == "Memory planner"
    assert at.multiselect(key=P + "models").value == ["llama-3.1-70b", "deepseek-v3"]
    assert charts(at) == 3
    t = table(at)
    assert list(t.index) == ["llama-3.1-70b", "deepseek-v3"]
    assert list(t.columns) == COLUMNS  # no stateful model: no "state / request" column
    assert t.loc["llama-3.1-70b", "concurrency"] == "20.35x"
    assert t.loc["deepseek-v3", "concurrency"] == "4.55x"  # the MLA latent is whole on every TP rank
    assert t.loc["llama-3.1-70b", "pooled would say"] == "20.35x"  # 8 key/value heads split over TP8
    assert t.loc["deepseek-v3", "pooled would say"] == "37.15x"  # the naive answer, v1's number
    assert (t["fits"] == "yes").all()
    assert "estimate" not in t["blocks / GPU"].tolist()
    text = markdown(at)
    assert "Pooled memory would suggest 37.15 requests, not 4.55: " in text
    assert "TP8 keeps 8 copies" in text
    assert text.count("Pooled memory would suggest") == 1  # llama-3.1-70b keeps no copies
    assert memory_rows(at) == ["llama-3.1-70b", "deepseek-v3"]  # one GPU of the one stage
    assert dict(at.query_params) == {}  # the defaults make a bare link


# ----------------------------------------------------------------------------- every widget's extremes

EXTREMES = [
    ("select_slider", "context_log", [1, 2**20]),
    ("number_input", "context", [1, 2**24]),
    ("number_input", "batch", [1, 65_536]),
    ("selectbox", "kv_dtype", ["auto", *CACHE_DTYPES]),
    ("selectbox", "weight_dtype", ["native", *WEIGHT_DTYPES]),
    ("selectbox", "layout", LAYOUTS),
    ("selectbox", "gpu", [*GPUS, "custom"]),
    ("number_input", "memory_gb", [1.0, 10_000.0]),
    ("number_input", "bandwidth_tb_s", [0.01, 1000.0]),
    ("number_input", "n_gpus", [1, 1024]),
    ("slider", "utilization", [5, 100]),
    ("number_input", "reserved_gib", [0.0, 1000.0]),
    ("number_input", "tp", [0, 1024]),
    ("number_input", "pp", [1, 64]),
    ("toggle", "dp_attention", [True, False]),
    ("selectbox", "block_size", [16, 32, 64, 128]),
    ("number_input", "batched_tokens", [1, 1 << 20]),
    ("number_input", "kv_budget_gib", [0.0, 100_000.0]),
]
# values the default 8 GPUs cannot be laid out in (TP1024, PP64 on 8 GPUs): an st.error says so and the
# page stops. 1,024 GPUs render: TP is chosen per model (TP64 for both) and the rest are replicas.
PARTIAL = {("tp", 1024), ("pp", 64)}


@pytest.mark.parametrize("kind,field,values", EXTREMES, ids=[e[1] for e in EXTREMES])
def test_every_widget_at_its_extremes(kind, field, values):
    at = run()
    if field in ("memory_gb", "bandwidth_tb_s"):  # shown only for a custom GPU
        at.selectbox(key=P + "gpu").set_value("custom").run()
        ok(at, allow_no_fit=True)  # the custom GPU starts at 80 GB: 8 x 80 GB cannot hold deepseek-v3
    if kind == "selectbox":  # the options as labelled: "native" is named by what the models released
        label = {"native": "released (each model's own)"} if field == "weight_dtype" else {}
        assert at.selectbox(key=P + field).options == [label.get(str(v), str(v)) for v in values]
    for v in values:
        getattr(at, kind)(key=P + field).set_value(v).run()
        ok(at, allow_no_fit=True)
        assert getattr(at, kind)(key=P + field).value == v
        planned = rendered(at, ["llama-3.1-70b", "deepseek-v3"])
        if (field, v) in PARTIAL:
            assert errors(at), "a layout the GPUs or the models cannot take, without a word"
        else:
            assert len(planned) == 2
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
    assert (t["fits"] == "no").all() and (t["KV budget / GPU"] == "none").all()
    assert charts(at) == 3


TOP = dict(context="16777216", batch="65536", gpu="custom", mem="10000", bw="1000", gpus="1024", util="100")
TOP_ENGINE = dict(block="128", mnbt="1048576", kvb="100000")


@pytest.mark.parametrize(
    "query,planned",
    [
        # everything at its top: the largest context, batch and machine, PP64 with DP attention (TP1 x
        # PP64 x DP16): deepseek-v3's 61 layers cannot fill 64 stages, llama-3.1-70b's 80 can
        ({**TOP, "pp": "64", "dpa": "1", **TOP_ENGINE}, ["llama-3.1-70b"]),
        # TP at its top over 1,024 GPUs: neither model's heads split 1,024 ways
        ({**TOP, "tp": "1024", **TOP_ENGINE}, []),
        # everything at its bottom: nothing fits
        (
            dict(context="1", gpu="custom", mem="1", bw="0.01", gpus="1", util="5", reserve="1000", mnbt="1"),
            ["llama-3.1-70b", "deepseek-v3"],
        ),
    ],  # fmt: skip
    ids=["all-max", "all-max-tp", "all-min"],
)
def test_all_extremes_at_once(query, planned):
    at = run(query)
    ok(at, allow_no_fit=True)
    assert rendered(at, ["llama-3.1-70b", "deepseek-v3"]) == planned
    assert dict(at.query_params) == query


NOT_TP8 = {"gpt2": 12, "qwen2.5-7b": 28}  # presets whose query heads TP8 cannot split: TP4 x DP2 is chosen


def test_every_preset_at_the_largest_context_and_batch():
    names = preset_names()
    for i in range(0, len(names), 4):
        group = names[i : i + 4]
        at = run({"models": ",".join(group), "context": str(2**24), "batch": "65536"})
        ok(at, allow_no_fit=True)
        assert rendered(at, group) == group
        for m in set(group) & set(NOT_TP8):
            assert f"TP was chosen as 4: the widest tensor parallel size that splits {m}'s heads" in markdown(at)
    at = run({"models": "gpt2", "tp": "8"})  # asked for explicitly, TP8 cannot split 12 heads: said so
    assert rendered(at, ["gpt2"]) == []
    assert any("gpt2 cannot be planned under TP8" in e and "(12)" in e for e in errors(at))


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
    assert "requests of 5,000 tokens fit" in markdown(at)
    at.select_slider(key=P + "context_log").set_value(8192).run()
    ok(at)
    assert at.number_input(key=P + "context").value == 8192
    assert "requests of 8,192 tokens fit" in markdown(at) and "5,000" not in markdown(at)


# ----------------------------------------------------------------------------- bring your own config


def paste(at: AppTest, text: str) -> AppTest:
    at.text_area(key=P + "paste").input(text).run()
    return at


GOOD = (CONFIGS / "llama-3.1-8b.json").read_text()  # 32 query and 8 key/value heads: TP8 splits them


def test_pasted_good_config_joins_the_table():
    text = GOOD
    at = paste(run(), text)
    ok(at)
    assert len(at.success) == 1 and "llama" in unescaped(at.success[0].value)
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


def test_pasted_config_tp_cannot_split_says_so_and_the_rest_renders():
    at = paste(run(), (CONFIGS / "qwen2.5-7b.json").read_text())  # 28 query heads: not under TP8
    no_exception(at)
    assert len(at.success) == 1  # the config itself is fine
    models = ["llama-3.1-70b", "deepseek-v3", "your config"]
    assert rendered(at, models) == models  # TP chosen for it: 4, with 2 replicas
    assert "**your config** under TP4 x DP2 replicas" in markdown(at)
    at.number_input(key=P + "tp").set_value(8).run()  # TP8 asked for: it cannot be split, and says so
    assert errors(at) == [
        "your config cannot be planned under TP8: tensor parallel size 8 does not divide the query heads (28)."
    ]
    assert rendered(at, models) == ["llama-3.1-70b", "deepseek-v3"]


def test_breaking_a_pasted_config_drops_it_and_fixing_it_brings_it_back():
    text = GOOD
    at = paste(run(), text)
    assert "your config" in table(at).index
    assert '"hidden_size": 4096' in text
    paste(at, text.replace('"hidden_size": 4096', '"hidden_size": 0'))
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
    gpus="4",
    util="80",
    reserve="1.5",
    tp="2",
    pp="2",
    dpa="1",
    block="64",
    mnbt="2048",
    kvb="3.5",
    mml="4096",
    mns="32",
    long="1",
    vllm="0.20.0",
    pc="on",
    mtp="2",
)


def test_full_link_restores_every_widget_and_is_written_back_unchanged():
    assert set(FULL_VIEW) == QUERY_KEYS - {"cfg"}  # every field of the view (the config has its own tests)
    at = run(FULL_VIEW)
    ok(at)
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
    assert at.number_input(key=P + "n_gpus").value == 4
    assert at.slider(key=P + "utilization").value == 80
    assert at.number_input(key=P + "reserved_gib").value == 1.5
    assert at.number_input(key=P + "tp").value == 2
    assert at.number_input(key=P + "pp").value == 2
    assert at.toggle(key=P + "dp_attention").value is True
    assert at.selectbox(key=P + "block_size").value == 64
    assert at.number_input(key=P + "batched_tokens").value == 2048
    assert at.number_input(key=P + "kv_budget_gib").value == 3.5
    assert at.number_input(key=P + "max_model_len").value == 4096
    assert at.number_input(key=P + "max_num_seqs").value == 32
    assert at.toggle(key=P + "allow_long").value is True
    assert at.selectbox(key=P + "vllm_version").value == "0.20.0"
    assert at.selectbox(key=P + "prefix_caching").value == "on"
    assert at.number_input(key=P + "mtp_tokens").value == 2
    assert dict(at.query_params) == FULL_VIEW
    t = table(at)
    assert list(t.index) == ["gpt2", "deepseek-v4-flash"]
    assert (t["KV budget / GPU"] == "3.5 GiB").all()  # the given KV memory, not the GPU's
    text = markdown(at)
    assert "under TP2 x PP2 x DP-attention 1 (EP2)" in text and "requests of 5,000 tokens" in text
    # MTP drafts (mtp=2) are modelled for hybrids only: both plans say they are estimates, and why
    assert "drafts are planned for Gated DeltaNet and Mamba-2 hybrids only" in " ".join(c.value for c in at.caption)
    assert len(memory_rows(at)) == 4  # two stages of each model
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
    (
        "parallel-garbage",
        {"tp": "-1", "pp": "65", "dpa": "2", "block": "17", "mnbt": "-1", "kvb": "nan"},
        [
            "tensor parallel size",
            "pipeline parallel size",
            "data-parallel attention",
            "block size",
            "max_num_batched_tokens",
            "KV memory per GPU",
        ],
    ),  # fmt: skip
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


# ----------------------------------------------------------------------------- parallelism and vLLM's numbers


def test_layout_that_does_not_divide_the_gpus_is_one_error_and_stops():
    at = run({"tp": "3"})
    no_exception(at)
    assert errors(at) == [
        "TP x PP = 3 x 1 = 3 does not divide 8 GPU(s): TP x PP x DP must equal the GPUs. Change the GPUs, TP or PP."
    ]
    assert charts(at) == 0 and not results(at)
    assert at.number_input(key=P + "tp").value == 3 and at.query_params["tp"] == "3"  # the link keeps it


def test_model_tp_cannot_split_gets_an_error_and_the_others_render():
    at = run({"models": "llama-3.1-70b,gpt2", "gpus": "6", "tp": "6"})
    no_exception(at)
    assert errors(at) == [
        "llama-3.1-70b cannot be planned under TP6: tensor parallel size 6 does not divide the query heads (64)."
    ]
    assert rendered(at, ["llama-3.1-70b", "gpt2"]) == ["gpt2"]  # 12 heads: 2 per rank


def test_deepseek_v2_lite_reproduces_vllms_log():
    """vLLM on 4 GPUs, TP2 x PP2, logged 'Available KV cache memory: 12.1334 GiB', 'GPU KV cache size:
    807,792 tokens' and 'Maximum concurrency for 1,024 tokens per request: 788.86x'."""
    at = run({"models": "deepseek-v2-lite", "gpus": "4", "tp": "2", "pp": "2", "kvb": "12.1334", "context": "1024"})
    ok(at)
    t = table(at)
    assert t.loc["deepseek-v2-lite", "blocks / GPU"] == "50,487"
    assert t.loc["deepseek-v2-lite", "KV cache (tokens)"] == "807,792"
    assert t.loc["deepseek-v2-lite", "concurrency"] == "788.86x"
    assert "under TP2 x PP2: 788.86 requests of 1,024 tokens fit" in markdown(at)
    assert memory_rows(at) == ["deepseek-v2-lite, stage 1 (layers 0-13)", "deepseek-v2-lite, stage 2 (layers 14-26)"]


def test_data_parallel_attention_toggle():
    at = run()
    at.toggle(key=P + "dp_attention").set_value(True).run()
    ok(at, allow_no_fit=True)
    assert at.query_params["dpa"] == "1" and url_state(at).dp_attention is True
    t = table(at)
    assert t.loc["deepseek-v3", "concurrency"] == "22.73x"  # TP1 x DP8: one latent per request
    assert t.loc["deepseek-v3", "fits"] == "yes"
    assert t.loc["llama-3.1-70b", "fits"] == "no"  # the whole of llama-3.1-70b on every GPU
    assert errors(at) == [e for e in errors(at) if e.startswith("llama-3.1-70b: ") and "do not fit" in e]
    assert len(errors(at)) == 1
    assert "DP-attention 8 (EP8)" in markdown(at)
    at.toggle(key=P + "dp_attention").set_value(False).run()
    ok(at)
    assert table(at).loc["deepseek-v3", "concurrency"] == "4.55x" and "dpa" not in at.query_params


def test_pipeline_stages_each_get_a_bar():
    at = run({"pp": "2"})
    ok(at)
    assert memory_rows(at) == [
        "llama-3.1-70b, stage 1 (layers 0-39)",
        "llama-3.1-70b, stage 2 (layers 40-79)",
        "deepseek-v3, stage 1 (layers 0-30)",
        "deepseek-v3, stage 2 (layers 31-60)",
    ]
    assert "under TP4 x PP2" in markdown(at)


# MLA beside Kimi Delta Attention and V4's compressed layers; DSA (deepseek-v3.2) is one group of one kind: exact
ESTIMATED = ["kimi-linear-48b-a3b", "deepseek-v4-flash"]


def test_models_vllm_allocates_otherwise_say_estimate():
    at = run({"models": ",".join([*ESTIMATED, "deepseek-v3.2", "llama-3.1-70b"])})
    ok(at)
    t = table(at)
    assert (t.loc[ESTIMATED, "blocks / GPU"] == "estimate").all()
    assert (t.loc[ESTIMATED, "KV cache (tokens)"] == "estimate").all()
    for m in ("deepseek-v3.2", "llama-3.1-70b"):  # planned block by block
        assert t.loc[m, "blocks / GPU"].replace(",", "").isdigit()
        assert t.loc[m, "KV cache (tokens)"].replace(",", "").isdigit()
    assert "state / request" in t.columns  # kimi-linear keeps a recurrent state
    estimates = [unescaped(c.value) for c in at.caption if unescaped(c.value).startswith("Estimate:")]
    assert len(estimates) == len(ESTIMATED), estimates


def test_vllms_limits_show_with_the_plan():
    """Qwen3-235B asked for 131,072-token requests: vLLM serves 40,960 (its config) and runs none of them; with
    --max-model-len 131072 the page says vLLM refuses to start, naming the config's length and the switch
    that allows it; short requests run at most max_num_seqs at once."""
    base = {"models": "qwen3-235b-a22b", "context": "131072"}
    at = run(base)
    ok(at)
    t = table(at)
    assert t.loc["qwen3-235b-a22b", "max_model_len"] == "40,960"
    assert t.loc["qwen3-235b-a22b", "running at once"] == "0"
    text = markdown(at)
    assert "40,960 tokens, the max_model_len" in text
    assert any("longer than max_model_len 40,960" in unescaped(c.value) for c in at.caption)
    refused = run({**base, "mml": "131072"})
    no_exception(refused)
    assert any("vLLM refuses to start" in unescaped(e.value) for e in refused.error)
    assert table(refused).loc["qwen3-235b-a22b", "running at once"] == "does not start"
    short = run({"models": "llama-3.1-70b", "context": "1024", "mns": "64"})
    ok(short)
    assert table(short).loc["llama-3.1-70b", "running at once"] == "64"


def latex(at: AppTest) -> list[str]:
    return [x.value for x in at.get("latex")]


def test_formulas_follow_the_layout_and_say_what_they_compute():
    """DeepSeek-V3 in the fp8_ds_mla layout: the bytes/token formula is 61 x 656 B (40,016 B/token), the one
    whose 16 tokens make the 640,256-byte block the concurrency divides by, not the bf16 latent's 70,272; int8
    writes its scales out. Qwen3-Next keeps a state per request: its formula is one request's bytes."""
    at = run({"models": "deepseek-v3", "layout": "fp8_ds_mla"})
    ok(at)
    shown = " ".join(latex(at))
    assert r"61 \times (512 + 4 \times 4 + 2 \times 64) = 40{,}016\ \text{B/token}" in shown
    assert r"16 \times 40{,}016 = 640{,}256" in shown and "70{,}272" not in shown
    int8 = " ".join(latex(run({"models": "deepseek-v3", "kv": "int8"})))
    assert r"61 \times ((512 + 64) \times 1 + 2 \times (8 + 1)) = 36{,}234\ \text{B/token}" in int8
    hybrid = latex(run({"models": "qwen3-next-80b-a3b"}))[0].strip("$\n")
    assert hybrid.startswith(r"\text{bytes of one request of } N \text{ tokens} = 12 \times 2{,}048 \times N + ")
    assert "bytes/token" not in hybrid


def test_pool_tokens_and_the_longest_request_are_explained_where_shown():
    """Llama-4-Scout at 1,048,576 tokens: '1,016,741 blocks of 16 tokens per GPU (15,199,164 tokens)' is followed
    by why the tokens are not blocks x 16 (4 KV-cache groups) and why the cache alone could hold a request of
    16,194,112 tokens, longer than that count."""
    at = run({"models": "llama-4-scout", "context": "1048576"})
    ok(at)
    text = markdown(at)
    assert "1,016,741 blocks of 16 tokens per GPU (15,199,164 tokens)" in text
    assert "the cache alone could hold 16,194,112 tokens" in text
    assert "Why 15,199,164 tokens and not 1,016,741 blocks x 16 = 16,267,856: " in text
    assert "(1,016,740 - 4,608) x 16 = 16,194,112 tokens, more than the 15,199,164 above." in text


def test_the_weights_option_is_named_by_what_it_is():
    """'native' is DeepSeek-V3's released checkpoint (fp8, bf16 embedding and lm_head), which plans 37,236 blocks
    against all-fp8's 37,442: the box, the sentence and the takeaways name it so, while the link keeps w=native."""
    at = run({"models": "deepseek-v3"})
    ok(at)
    box = at.selectbox(key=P + "weight_dtype")
    released = "released: fp8, bf16 embedding and lm_head"
    assert box.value == "native" and box.options[0] == released and "fp8" in box.options
    text = markdown(at)
    assert f"The weights ({released}) take " in text and "37,236 blocks" in text
    assert f"its weights ({released}) take" in text
    box.set_value("fp8").run()
    assert at.query_params["w"] == "fp8"
    assert "The weights (fp8) take " in markdown(at) and "37,442 blocks" in markdown(at)
    assert run().selectbox(key=P + "weight_dtype").options[0] == "released (each model's own)"


def test_headline_metrics_lead_with_each_plans_numbers():
    """Concurrency at the context, the longest request and the decode-step bound of every model, as st.metric,
    with the numbers the table shows; the wide table says it scrolls."""
    at = run()
    ok(at)
    t = table(at)
    shown = [(m.label, m.value) for m in at.metric]
    labels = ["Concurrency at 128K tokens", "Max context per request (tokens)", "Decode step ≥"]
    assert [label for label, _ in shown] == labels * 2
    for i, m in enumerate(["llama-3.1-70b", "deepseek-v3"]):
        table_row = list(t.loc[m, ["concurrency", "max context", "decode step ≥"]])
        assert [value for _, value in shown[3 * i : 3 * i + 3]] == table_row
    assert any("scroll the table sideways" in c.value for c in at.caption)


@pytest.mark.parametrize(
    "step",
    [s for p in paths().values() for s in p.steps if s.page == "planner" and "'" in s.look],
    ids=lambda s: s.title,
)
def test_every_quoted_line_a_workshop_step_points_at_is_on_the_page(step):
    """A guided step's 'look' names what to find in quotes ('Cache copies per request', 'pooled would say'):
    at the step's view each quoted name is a line of the page's text or a column of its table. DeepSeek-V3 on
    8 x H200 as TP8 keeps 8 copies of each request's latent."""
    at = run(step.view)
    ok(at)
    shown = markdown(at) + "\n" + "\n".join(table(at).columns)
    for name in re.findall(r"'([^']+)'", step.look):
        assert name in shown, name
    if step.view.get("tp") == "8":
        assert "Cache copies per request: 8." in markdown(at)


def test_every_cache_dtype_offered_is_in_the_legend_with_the_accountings_bits():
    """'Cache dtypes compared' lists every option of the cache dtype box, auto first; its bytes per 128 values
    are the accounting's: Llama-3.1-8B (32 layers x 8 kv heads of 128, K and V) caches 32 x 2 x 8 x that many
    bytes per token in each dtype. q8_0 is 8.5 bits (34 B per 32 values), int8 8.25, tq3.5 3.625 (its 2-byte
    norm per vector), bf16 16; the box's help points to the legend whatever is selected."""
    at = run({"models": "llama-3.1-8b"})
    ok(at)
    shown = legend(at)
    box = at.selectbox(key=P + "kv_dtype")
    assert list(shown.index) == list(box.options) == ["auto", *CACHE_DTYPES]
    spec = preset("llama-3.1-8b")
    for d in CACHE_DTYPES:
        assert kv_bytes_per_token(spec, d) == 32 * 2 * 8 * shown.loc[d, "bytes per 128 values"], d
        assert shown.loc[d, "bits per value, scales included"] == 8 * shown.loc[d, "bytes per 128 values"] / 128
    bits = shown["bits per value, scales included"]
    assert (bits["q8_0"], bits["int8"], bits["tq3.5"], bits["bf16"], bits["auto"]) == (8.5, 8.25, 3.625, 16, 16)
    assert shown.loc["q8_0", "one scale serves"] == "32 values" and shown.loc["int8", "one scale serves"] == "64 values"
    assert "bf16 for llama-3.1-8b" in shown.loc["auto", "what it is"]
    for kv in ("auto", "q8_0"):
        box.set_value(kv).run()
        assert "'Cache dtypes compared', below the controls" in at.selectbox(key=P + "kv_dtype").help


def test_the_layout_box_gives_each_layouts_bytes_per_token_per_layer():
    """DeepSeek-V3's MLA layer: materialised (the MHA of equal heads) 81,920 B, the bf16 latent 1,152 B, the fp8
    latent 576 B, fp8_ds_mla 656 B per token per layer, from the accounting; a model without MLA adds nothing."""
    at = run({"models": "deepseek-v3,llama-3.1-8b"})
    ok(at)
    shown = at.selectbox(key=P + "layout").help
    assert (
        "deepseek-v3, per token per layer: materialised (bf16) 81,920 B, latent (bf16) 1,152 B, latent (fp8) 576 B, "
        "fp8_ds_mla 656 B"
    ) in unescaped(shown)
    assert "llama-3.1-8b" not in shown


def test_each_plan_shows_the_lines_vllm_logs():
    """The engine's own view: beside each plan, the lines vLLM prints about its pool (DeepSeek-V2-Lite on 4
    GPUs, TP2 x PP2, 12.1334 GiB of KV memory, max_model_len 1,024: PR 20665's log)."""
    at = run({"models": "deepseek-v2-lite", "gpus": "4", "tp": "2", "pp": "2", "kvb": "12.1334", "context": "1024",
              "mml": "1024"})  # fmt: skip
    ok(at)
    assert [c.value for c in at.code if "GPU KV cache size" in c.value] == [
        "Available KV cache memory: 12.13 GiB\nGPU KV cache size: 807,792 tokens\n"
        "Maximum concurrency for 1,024 tokens per request: 788.86x"
    ]


def test_hybrid_models_show_vllms_block_padding_and_pool_lines_per_release():
    """Qwen3-Next on 4 x H100 at TP4: vLLM 0.11.0 raises the block to 272 tokens (bf16) and pads the state
    page by 1.49%; the page prints those lines under the model's verdict, and 0.11.0's whole-block count."""
    at = run(dict(models="qwen3-next-80b-a3b", gpu="H100 SXM", gpus="4", tp="4", vllm="0.11.0", context="32768"))
    ok(at)
    logged = "\n".join(c.value for c in at.code)
    assert "Setting attention block size to 272 tokens" in logged
    assert "Padding mamba page size by 1.49%" in logged and "Available KV cache memory: " in logged
    assert "blocks of 272 tokens per GPU" in markdown(at)
    assert any("vLLM 0.11.0 would log" in c.value for c in at.caption)
    at = run(dict(models="qwen3.5-27b", gpu="H100 SXM", gpus="1", mtp="1", pc="off", mml="131072", mns="64"))
    ok(at)
    assert "Setting attention block size" in "\n".join(c.value for c in at.code)
    at = run(dict(models="nemotron-h-56b", gpu="H100 SXM", gpus="2", mtp="1"))
    assert any("MTP draft tokens need the model's MTP layers" in e.value for e in at.error)


def test_other_engines_show_their_own_lines_and_how_they_differ():
    """The expander beside the plans: llama.cpp's caches for the same requests (gpt-oss-120b's sliding window
    becomes 768 cells per sequence, and why) and SGLang's pool on the same memory, each with its log lines."""
    at = run({"models": "gpt-oss-120b,llama-3.1-70b", "context": "32768", "batch": "2"})
    ok(at)
    text = markdown(at)
    assert "768 sliding-window cells per sequence, not 128" in text
    assert "llama-server -c 65536 -np 2" in text
    code = "\n".join(c.value for c in at.code)
    assert "llama_kv_cache_iswa: creating     SWA KV cache, size = 768 cells" in code
    assert "KV Cache is allocated. #tokens: " in code and "max_total_num_tokens=" in code
    assert "SWA pools" in text  # SGLang's rules do not cover gpt-oss's sliding layers: said, not guessed


def test_block_size_control_sizes_the_pool():
    at = run({"models": "gpt2", "block": "64"})
    ok(at)
    assert "blocks of 64 tokens per GPU" in markdown(at)
