"""Memory planner: weights + KV cache + headroom on GPUs, what fits, and a card for architecture reviews."""

import datetime
import json
from pathlib import Path

import pandas as pd
import streamlit as st

import core
from core.accounting import planner as pl
from core.accounting.describe import describe
from core.accounting.formulas import budget_latex, bytes_per_token_latex, concurrency_latex
from core.accounting.totals import LAYOUTS, check_layout, kv_bytes_per_token, param_count
from core.model.dtypes import CACHE_DTYPES, WEIGHT_DTYPES
from core.model.gpus import GPUS
from core.model.hf_config import from_hf_config, load_config_text
from core.model.presets import preset_names
from core.model.specs import ModelSpec
from core.model.units import fmt_bytes, fmt_params
from core.view.charts import (
    CONTEXTS,
    GIB,
    breakdown_chart,
    breakdown_table,
    cache_chart,
    cache_vs_context,
    memory_chart,
    memory_parts,
    review_card,
    style,
    to_png,
    token_label,
)
from core.view.text import plain, truncate
from core.view.urlstate import (
    CUSTOM,
    MAX_CONTEXT,
    MAX_LINK_CONFIG_CHARS,
    MAX_TYPED_CONTEXT,
    PlannerState,
    decode_config,
    dump_state,
    encode_config,
)
from pages.common import downloads, ensure_router, link_state, preset

LESSON = Path(__file__).resolve().parent.parent / "assets" / "lessons" / "planner.md"
P = "planner."
LAYOUT_HELP = (
    "latent: DeepSeek's absorbed cache (c_KV + rope key); materialised: per-head K and V, as HF's code "
    "caches them; fp8_ds_mla: vLLM's fp8 layout, 656 B per token per layer for V3 shapes"
)


def custom_config(link_token: str) -> tuple[ModelSpec | None, str]:
    """The user's own config.json (upload > paste > link), parsed; errors are shown, never raised.
    Returns the spec and the token that carries it in the link ('' when too long)."""
    with st.expander("Your own config.json", expanded=bool(link_token)):
        up = st.file_uploader("Upload a config.json (up to 1 MiB)", type=["json"], key=P + "upload")
        pasted = st.text_area("...or paste its text", key=P + "paste", height=120)
        text, source = "", ""
        if up is not None:
            text, source = up.getvalue(), truncate(up.name, 80)
        elif pasted.strip():
            text, source = pasted, "the pasted config"
        elif link_token:
            try:
                text, source = decode_config(link_token), "the config in the link"
            except ValueError as e:
                st.error(f"{plain(e, 400)}.")
        if not source:
            return None, ""
        try:  # decoding, size, depth, JSON: every problem is one sentence naming the source
            cfg = load_config_text(text, source)
            spec = from_hf_config(cfg, name=str(cfg.get("_name_or_path") or cfg.get("model_type") or "your model"))
        except ValueError as e:
            msg = str(e)
            msg = msg if msg.startswith(source) else f"{source}: {msg}"
            st.error(plain(msg[:1].upper() + msg[1:], 400))
            return None, ""
        st.success(
            f"Read {plain(source)}: {plain(spec.model_type, 60)}, {spec.n_layers} layers, "
            f"attention {plain(spec.design)}."
        )
        token = encode_config(json.dumps(cfg, separators=(",", ":")))
        if len(token) > MAX_LINK_CONFIG_CHARS:
            st.info(f"This config is {len(token):,} characters encoded, too long for a link: share the file too.")
            token = ""
        return spec, token


def sync_slider() -> None:
    st.session_state[P + "context"] = st.session_state[P + "context_log"]


def sync_number() -> None:
    st.session_state[P + "context_log"] = min(CONTEXTS, key=lambda n: abs(n - st.session_state[P + "context"]))


def controls(custom: ModelSpec | None, token: str) -> PlannerState:
    ss = st.session_state
    options = preset_names() + ([CUSTOM] if custom else [])
    if custom and CUSTOM not in ss[P + "models"] and not ss.get(P + "custom_added") and len(ss[P + "models"]) < 4:
        ss[P + "models"] = [*ss[P + "models"], CUSTOM]  # a newly read config joins the comparison once
        ss[P + "custom_added"] = True
    if not custom:
        ss[P + "custom_added"] = False  # a config read again later joins again
    ss[P + "models"] = [m for m in ss[P + "models"] if m in options]

    def label(m: str) -> str:
        return f"your config: {custom.name}" if m == CUSTOM and custom else m

    st.multiselect("Models (up to four)", options, key=P + "models", max_selections=4, format_func=label)
    a, b, c = st.columns([3, 1, 1])
    a.select_slider(
        "Context (tokens, log scale)", CONTEXTS, key=P + "context_log", format_func=token_label, on_change=sync_slider
    )
    b.number_input("Exact context (tokens)", 1, MAX_TYPED_CONTEXT, key=P + "context", on_change=sync_number)
    c.number_input("Concurrent requests", 1, 65_536, key=P + "batch")
    c1, c2, c3 = st.columns(3)
    c1.selectbox(
        "Cache dtype", list(CACHE_DTYPES), key=P + "kv_dtype", help=CACHE_DTYPES[ss[P + "kv_dtype"]].description
    )
    c2.selectbox("Weights", ["native", *WEIGHT_DTYPES], key=P + "weight_dtype", help="native: as released (config)")
    c3.selectbox("MLA cache layout", list(LAYOUTS), key=P + "layout", help=LAYOUT_HELP)
    g1, g2, g3, g4 = st.columns(4)
    gpu = g1.selectbox("GPU", [*GPUS, "custom"], key=P + "gpu")
    g2.number_input("GPUs", 1, 1024, key=P + "n_gpus")
    g3.slider("Memory the engine may use (%)", 5, 100, key=P + "utilization")
    g4.number_input(
        "Reserved per GPU (GiB)", 0.0, 1000.0, step=0.5, key=P + "reserved_gib",
        help="activations, CUDA graphs, buffers: vLLM measures this at start-up by profiling",
    )  # fmt: skip
    if gpu == "custom":
        h1, h2, _ = st.columns([1, 1, 2])
        h1.number_input("Memory per GPU (GB, decimal)", 1.0, 10_000.0, key=P + "memory_gb")
        h2.number_input("Bandwidth per GPU (TB/s)", 0.01, 1000.0, key=P + "bandwidth_tb_s")
    values = {f: ss[P + f] for f in PlannerState.__dataclass_fields__ if f not in ("notices", "config")}
    values["models"] = tuple(values["models"])
    return PlannerState(**values, config=token if CUSTOM in values["models"] else "")


def hardware(s: PlannerState) -> pl.Hardware:
    if s.gpu == "custom":
        mem, bw, name = int(s.memory_gb * 1e9), s.bandwidth_tb_s * 1e12, f"custom {s.memory_gb:g} GB GPU"
    else:
        g = GPUS[s.gpu]
        mem, bw, name = g.memory_bytes, g.bandwidth_tb_s * 1e12, s.gpu
    return pl.Hardware(name, mem, bw, s.n_gpus, s.utilization / 100, int(s.reserved_gib * GIB * s.n_gpus))


def results_table(plans: dict, specs: dict, s: PlannerState) -> pd.DataFrame:
    rows = []
    stateful = any(p.state_bytes for p in plans.values())
    for m, p in plans.items():
        spec = specs[m]
        rows.append(
            {
                "model": m,
                "attention": spec.design,
                "params": fmt_params(param_count(spec).total),
                **(
                    {"state / request": fmt_bytes(p.state_bytes // p.batch) if p.state_bytes else "none"}
                    if stateful
                    else {}
                ),
                "weights": fmt_bytes(p.weights_bytes),
                "KV / token": fmt_bytes(kv_bytes_per_token(spec, s.kv_dtype, s.layout)),
                f"KV{' + state' if stateful else ''} {s.batch} x {token_label(s.context)}": fmt_bytes(p.kv_paged_bytes),
                "KV budget": fmt_bytes(p.kv_budget_bytes) if p.kv_budget_bytes >= 0 else "none",
                "fits": "yes" if p.fits else "no",
                "concurrency": f"{p.max_concurrency:,.2f}x",
                "max context": "unbounded" if p.max_context is None else f"{p.max_context:,}",
                "decode step ≥": f"{p.step_seconds * 1e3:,.2f} ms",
                "tokens/s ≤": f"{p.tokens_per_second:,.0f}",
            }
        )
    return pd.DataFrame(rows)


def verdict(m: str, spec: ModelSpec, p: pl.Plan, s: PlannerState) -> None:
    if p.kv_budget_bytes < 0:
        st.error(
            f"{m}: the weights ({fmt_bytes(p.weights_bytes)}) and reserved memory do not fit in "
            f"{fmt_bytes(p.usable_bytes)}; add GPUs or choose smaller weights."
        )
        return
    blocks = f" ({p.num_blocks:,} blocks of 16 tokens)" if p.linear else ""
    ctx = "any context (every layer keeps a bounded cache)" if p.max_context is None else f"{p.max_context:,} tokens"
    per_request = pl.paged_request_bytes(spec, s.context, s.kv_dtype, s.layout)
    st.markdown(
        f"**{m}**: {p.max_concurrency:,.2f} requests of {s.context:,} tokens fit, because the weights "
        f"({fmt_bytes(p.weights_bytes)}) leave {fmt_bytes(p.kv_budget_bytes)} for the cache{blocks} and one request "
        f"needs {fmt_bytes(per_request)}; {s.batch} concurrent request(s) can each hold up to {ctx}."
    )


ensure_router()
st.title("Memory planner")
st.markdown(LESSON.read_text())
init = link_state(
    PlannerState, P, extra=lambda init: {"context_log": min(CONTEXTS, key=lambda n: abs(n - init.context))}
)
custom, token = custom_config(init.config)
if CUSTOM in init.models and custom is None and not init.config:
    st.warning(
        "Link: it names your own config.json but does not carry it (too long for a link, or damaged): "
        "upload or paste the file above to see it."
    )
s = controls(custom, token)
if s.models:  # an empty selection is a moment in editing, not a view worth a link
    st.query_params.from_dict(dump_state(s))
if not s.models:
    st.info("Pick at least one model.")
    st.stop()
hw = hardware(s)
specs = {("your config" if m == CUSTOM else m): (custom if m == CUSTOM else preset(m)) for m in s.models}
for m, spec in list(specs.items()):
    if spec.params_unknown:  # a KV-only config: the cache is exact, the weights are not known
        st.warning(
            f"{m}: the config has no {', '.join(spec.params_unknown)}, so its weights are unknown and it cannot "
            f"be planned. Its KV cache is exact: {fmt_bytes(kv_bytes_per_token(spec, s.kv_dtype))} per token."
        )
        del specs[m]
if not specs:
    st.stop()
if s.layout != "latent":
    for m, spec in specs.items():
        try:
            check_layout(spec, s.layout)
        except ValueError:
            st.info(f"{m}: the {s.layout} layout applies to MLA, DSA and DeepSeek V4 layers; {m} is shown as it is.")
plans = {m: pl.plan(spec, hw, s.context, s.batch, s.kv_dtype, s.weight_dtype, s.layout) for m, spec in specs.items()}

st.subheader("What each model caches")
for m, spec in specs.items():
    st.markdown(f"**{plain(m)}**\n" + "\n".join(f"- {plain(line, 600)}" for line in describe(spec)))

usable_name = f"{hw.n_gpus} x {hw.name} usable ({s.utilization}%)"
usable = f"{usable_name}: {hw.usable_bytes / GIB:,.1f} GiB"
st.subheader("Memory on the GPUs")
mem_df = memory_parts(plans)
mem_chart = memory_chart(mem_df, hw.usable_bytes / GIB, usable, f"{s.batch} request(s) of {s.context:,} tokens")
st.altair_chart(style(mem_chart), width="stretch", key=P + "mem_chart")
downloads(style(mem_chart), mem_df, "memory", P + "dl_mem")
for m, p in plans.items():
    verdict(m, specs[m], p, s)
table = results_table(plans, specs, s)
st.dataframe(table, hide_index=True, width="stretch")
st.caption(
    f"{plain(hw.name)}: {hw.memory_bytes / 1e9:g} GB per GPU (vendor, decimal) = {hw.memory_bytes / GIB:,.1f} GiB. "
    "Concurrency and max context count whole 16-token blocks, as vLLM allocates them; concurrency is vLLM's "
    "'Maximum concurrency' (blocks in the budget / blocks per request). Decode step and tokens/s are "
    "memory-bound limits for the whole batch: the bytes one step reads (weights once, each request's cache) "
    "divided by the GPUs' datasheet bandwidth; real engines reach a fraction of it."
)

st.subheader("KV cache vs context")
curves = cache_vs_context(specs, CONTEXTS, s.kv_dtype, s.batch, s.layout)
title = f"KV cache of {s.batch} request(s), {s.kv_dtype}, {s.layout} layout"
kv = style(cache_chart(curves, usable_name, hw.usable_bytes / GIB, min(s.context, MAX_CONTEXT), title))
st.altair_chart(kv, width="stretch", height=480, key=P + "kv_chart")
downloads(kv, curves, "kv-vs-context", P + "dl_kv")

st.subheader("By layer type and tensor")
bd = breakdown_table(specs, s.context, s.batch, s.kv_dtype, s.layout)
bdc = style(breakdown_chart(bd, f"Where the cache goes at {token_label(s.context)} tokens"))
st.altair_chart(bdc, width="stretch", key=P + "bd_chart")
downloads(bdc, bd, "cache-breakdown", P + "dl_bd")

with st.expander("Formulas, with these numbers", expanded=True):
    for m, spec in specs.items():
        st.markdown(f"**{m}**")
        st.latex(r"\text{bytes/token} = " + bytes_per_token_latex(spec, s.kv_dtype))
        st.latex(budget_latex(plans[m], hw))
        if plans[m].linear and plans[m].kv_budget_bytes > 0:
            st.latex(concurrency_latex(plans[m]))

st.subheader("Review card")
inputs = [
    f"{hw.n_gpus} x {hw.name}, {s.utilization}% usable, {s.reserved_gib:g} GiB reserved per GPU",
    f"{s.batch} request(s) of {s.context:,} tokens; cache {s.kv_dtype} ({s.layout} layout); weights {s.weight_dtype}",
]
footer = (
    f"KV Cache Lab {core.__version__}, {datetime.date.today():%Y-%m-%d}. Bytes in binary units (GiB); "
    "GPU memory from vendor datasheets (GB)."
)
card = review_card(f"KV cache plan: {', '.join(specs)}", inputs, table, mem_chart, footer)
st.download_button(
    "Download the review card (PNG)", lambda: to_png(card), "kv-cache-review-card.png", "image/png",
    key=P + "card", on_click="ignore", icon=":material/slideshow:",
)  # fmt: skip
st.caption("The address bar holds this whole view: copy it to share exactly what you see.")
