"""Memory planner: weights + KV cache + headroom on GPUs, what fits, and a card for architecture reviews."""

import datetime
import json
from types import SimpleNamespace

import pandas as pd
import streamlit as st

import core
from app_pages import workshop_ui as ws
from app_pages.figures import chart_spec, downloads, show
from app_pages.layout import table as common_table
from app_pages.layout import takeaways
from app_pages.links import link_state
from app_pages.resources import preset
from core.accounting import planner as pl
from core.accounting.describe import describe
from core.accounting.formulas import budget_latex, bytes_per_token_latex, concurrency_latex
from core.accounting.plan_inputs import PlanInputs, plan_inputs
from core.accounting.totals import LAYOUTS, check_layout, kv_bytes_per_token, param_count, state_bytes
from core.model.dtypes import CACHE_DTYPES, WEIGHT_DTYPES
from core.model.gpus import GPUS
from core.model.hf_config import from_hf_config, load_config_text
from core.model.presets import preset_names
from core.model.specs import ModelSpec, MoEMLP
from core.model.units import fmt_bytes, fmt_params
from core.view.export import to_png
from core.view.frames import CONTEXTS, GIB, breakdown_table, cache_vs_context, memory_parts
from core.view.memory_charts import breakdown_chart, cache_chart, memory_chart, review_card
from core.view.text import plain, truncate
from core.view.theme import token_label
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
from core.workshop import glossary
from core.workshop import takeaways as tk

P = "planner."
AUTO_HELP = "auto: the model's dtype (float32 checkpoints downcast to bf16), as vLLM's kv_cache_dtype auto"
TP_HELP = (
    "Splits every layer over TP GPUs: query heads, projections and experts are divided. GQA key/value "
    "heads are divided too until there are fewer than TP of them, then each GPU keeps one copy. MLA's "
    "latent (and DSA's indexer key, V4's entries) is one vector shared by all heads: every TP GPU stores "
    "it whole."
)
PP_HELP = (
    "Splits the layers into PP stages on different GPUs (as vLLM's get_pp_indices does): each GPU stores "
    "only its stage's layers, weights and cache; the stage with the least room decides for all."
)
DPA_HELP = (
    "DeepSeek-style serving: the GPUs form DP groups that each serve their own requests with a whole "
    "copy of the attention and dense weights; routed experts are dealt out over all GPUs (expert "
    "parallelism). Without it, GPUs beyond TP x PP are whole replicas."
)
BLOCK_HELP = "Tokens per cache block: 16 is vLLM's default; FlashMLA needs 64, CUTLASS MLA 128."
BATCHED_HELP = (
    "vLLM's max_num_batched_tokens (8,192 by default for its API server): a sliding-window layer must keep "
    "room for a window plus the tokens in flight."
)
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
        "Context (tokens, log scale)",
        CONTEXTS,
        key=P + "context_log",
        format_func=token_label,
        on_change=sync_slider,
        help=glossary.tip("context"),
    )
    b.number_input("Exact context (tokens)", 1, MAX_TYPED_CONTEXT, key=P + "context", on_change=sync_number)
    c.number_input("Concurrent requests", 1, 65_536, key=P + "batch", help=glossary.tip("concurrency"))
    c1, c2, c3 = st.columns(3)
    kv = ss[P + "kv_dtype"]
    c1.selectbox(
        "Cache dtype",
        ["auto", *CACHE_DTYPES],
        key=P + "kv_dtype",
        help=AUTO_HELP if kv == "auto" else CACHE_DTYPES[kv].description,
    )
    c2.selectbox("Weights", ["native", *WEIGHT_DTYPES], key=P + "weight_dtype", help="native: as released (config)")
    c3.selectbox("MLA cache layout", list(LAYOUTS), key=P + "layout", help=LAYOUT_HELP)
    g1, g2, g3, g4 = st.columns(4)
    gpu = g1.selectbox("GPU", [*GPUS, "custom"], key=P + "gpu", help=glossary.tip("GPU"))
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
    p1, p2, p3 = st.columns(3)
    p1.number_input("Tensor parallel (TP, 0: every GPU of a stage)", 0, 1024, key=P + "tp", help=TP_HELP)
    p2.number_input("Pipeline parallel (PP)", 1, 64, key=P + "pp", help=PP_HELP)
    p3.toggle("DP attention, experts over all GPUs", key=P + "dp_attention", help=DPA_HELP)
    v1, v2, v3 = st.columns(3)
    v1.selectbox("Block size (tokens)", [16, 32, 64, 128], key=P + "block_size", help=BLOCK_HELP)
    v2.number_input("max_num_batched_tokens", 1, 1 << 20, key=P + "batched_tokens", help=BATCHED_HELP)
    v3.number_input(
        "KV memory per GPU (GiB, 0: from the memory)", 0.0, 100_000.0, step=1.0, key=P + "kv_budget_gib",
        help="vLLM logs it as 'Available KV cache memory'; set it to reproduce a log",
    )  # fmt: skip
    values = {f: ss[P + f] for f in PlannerState.__dataclass_fields__ if f not in ("notices", "config")}
    values["models"] = tuple(values["models"])
    return PlannerState(**values, config=token if CUSTOM in values["models"] else "")


def results_table(plans: dict, specs: dict, s: PlannerState) -> pd.DataFrame:
    rows = []
    stateful = any(p.stages[0].state_bytes for p in plans.values())
    for m, p in plans.items():
        spec = specs[m]
        rows.append(
            {
                "model": m,
                "attention": spec.design,
                "params": fmt_params(param_count(spec).total) if not spec.params_unknown else "unknown",
                **(
                    {"state / request": fmt_bytes(state_bytes(spec)) if state_bytes(spec) else "none"}
                    if stateful
                    else {}
                ),
                "weights / GPU": fmt_bytes(p.weights_bytes_per_gpu),
                "KV budget / GPU": fmt_bytes(p.kv_budget_bytes_per_gpu) if p.kv_budget_bytes_per_gpu >= 0 else "none",
                "blocks / GPU": f"{p.num_blocks:,}" if p.exact else "estimate",
                "KV cache (tokens)": f"{p.kv_cache_tokens:,}" if p.exact else "estimate",
                "fits": "yes" if p.fits else "no",
                "concurrency": f"{p.max_concurrency:,.2f}x",
                "pooled would say": f"{p.pooled_concurrency:,.2f}x",
                "max context": "unbounded" if p.max_context is None else f"{p.max_context:,}",
                "decode step ≥": f"{p.step_seconds * 1e3:,.2f} ms",
                "tokens/s ≤": f"{p.tokens_per_second:,.0f}",
            }
        )
    return pd.DataFrame(rows)


def verdict(m: str, spec: ModelSpec, p: pl.Plan, s: PlannerState) -> None:
    par = p.parallel
    if p.kv_budget_bytes_per_gpu < 0:
        st.error(
            f"{m}: the weights ({fmt_bytes(p.weights_bytes_per_gpu)} per GPU under {par.describe()}) and the "
            f"reserved memory do not fit in {fmt_bytes(p.usable_bytes)} per GPU; add GPUs, shard further or "
            "choose smaller weights."
        )
        return
    ctx = "any context (every layer keeps a bounded cache)" if p.max_context is None else f"{p.max_context:,} tokens"
    pool = (
        f"{p.num_blocks:,} blocks of {p.allocator.block_size} tokens per GPU ({p.kv_cache_tokens:,} tokens)"
        if p.exact
        else f"{fmt_bytes(p.kv_budget_bytes_per_gpu)} per GPU"
    )
    st.markdown(
        f"**{m}** under {par.describe()}: {p.max_concurrency:,.2f} requests of {s.context:,} tokens fit. The "
        f"weights take {fmt_bytes(p.weights_bytes_per_gpu)} per GPU and leave {pool} for the cache; "
        f"{s.batch} concurrent request(s) can each hold up to {ctx}."
    )
    if p.replication > 1.01:
        st.markdown(
            f"Pooled memory would suggest {p.pooled_concurrency:,.2f} requests, not {p.max_concurrency:,.2f}: "
            f"{pl.copies_reason(spec, par.tp)}, so TP{par.tp} keeps {p.replication:.3g} copies of each request's "
            f"cache and holds {p.replication:.3g}x less cache than {par.tp} pooled GPUs."
        )
    elif par.dp_attention and not any(isinstance(mm, MoEMLP) for mm in spec.mlp):
        st.markdown(f"{m} has no routed experts: data-parallel attention keeps a whole copy of it on every DP group.")
    if not s.tp and not par.dp_attention and par.tp * par.pp < s.n_gpus:
        st.markdown(
            f"TP was chosen as {par.tp}: the widest tensor parallel size that splits {m}'s heads and divides the "
            f"GPUs of a stage; the other GPUs hold {par.dp} whole replicas."
        )
    for note in p.notes:
        st.caption(plain(note, 400))


@st.cache_data(max_entries=64, show_spinner=False, hash_funcs={ModelSpec: hash})
def kv_curves(specs: dict, kv_dtype: str, batch: int, layout: str) -> pd.DataFrame:
    """Every model's cache on the context grid: 21 contexts x every layer, once per view (not per move). A
    spec is keyed by its own hash (frozen dataclasses): Streamlit's generic hasher walks every layer."""
    return cache_vs_context(specs, CONTEXTS, kv_dtype, batch, layout)


# A resource, not data: the view is read on every rerun and never changed (tables go to st.dataframe and the
# CSV, specs to st.vega_lite_chart, which copies what it alters), so no copy of three chart specs per rerun.
@st.cache_resource(max_entries=256, show_spinner=False, hash_funcs={ModelSpec: hash})
def planned(
    specs: dict[str, ModelSpec],
    inputs: PlanInputs,
    s: PlannerState,
    big: bool,
) -> SimpleNamespace:
    """Plan every model of the view and draw the tables, formulas and takeaways from the plans: once per view
    for the whole server (a room moves the same sliders), not on every rerun."""
    hw, plans, errors = inputs.hardware, {}, []
    for m, spec in specs.items():
        shard_as = inputs.parallelism(spec)  # PP is checked by plan_inputs
        try:
            plans[m] = inputs.plan(spec, shard_as)
        except ValueError as e:  # TP that does not divide the heads, PP above the layers, a partial llama.cpp block
            errors.append(f"{plain(m)} cannot be planned under {shard_as.describe()}: {plain(e, 300)}")
    if not plans:
        return SimpleNamespace(plans={}, errors=errors)
    specs = {m: specs[m] for m in plans}
    kv_dtypes = {p.kv_dtype for p in plans.values()}
    kv_dtype = next(iter(kv_dtypes)) if len(kv_dtypes) == 1 else "bf16"
    formulas = {}
    for m, spec in specs.items():
        p = plans[m]
        formulas[m] = [r"\text{bytes/token} = " + bytes_per_token_latex(spec, p.kv_dtype), budget_latex(p, hw)]
        if p.exact and p.kv_budget_bytes_per_gpu > 0:
            formulas[m].append(concurrency_latex(p))
    layouts = " / ".join(dict.fromkeys(p.parallel.describe() for p in plans.values()))
    memory = memory_parts(plans)
    usable = f"{hw.name} usable ({s.utilization}%): {hw.usable_bytes / GIB:,.1f} GiB"
    mem_title = f"One GPU of each stage, {s.batch} request(s) of {s.context:,} tokens, {layouts}"
    mem_args = (memory, hw.usable_bytes / GIB, usable, mem_title)
    curves = kv_curves(specs, kv_dtype, s.batch, s.layout)
    kv_title = f"KV cache of {s.batch} request(s), unsharded, {kv_dtype}, {s.layout} layout"
    pooled = (f"{hw.n_gpus} x {hw.name} usable, pooled", hw.n_gpus * hw.usable_bytes / GIB)
    breakdown = breakdown_table(specs, s.context, s.batch, kv_dtype, s.layout)
    bd_title = f"Where the cache goes at {token_label(s.context)} tokens"
    return SimpleNamespace(
        plans=plans,
        errors=errors,
        kv_dtype=kv_dtype,
        layouts=layouts,
        table=results_table(plans, specs, s),
        memory=memory,
        mem_args=mem_args,
        mem_chart=chart_spec(memory_chart, mem_args, {}, big),
        curves=curves,
        kv_chart=chart_spec(cache_chart, (curves, *pooled, min(s.context, MAX_CONTEXT), kv_title), {}, big),
        breakdown=breakdown,
        bd_chart=chart_spec(breakdown_chart, (breakdown, bd_title), {}, big),
        described={m: describe(spec) for m, spec in specs.items()},
        formulas=formulas,
        takeaways=tk.planner(s, plans, specs),
    )


@st.fragment
def view(custom: ModelSpec | None, token: str) -> None:
    """The controls and everything below them: a move reruns this alone, not the navigation, the lesson and
    the config upload (which is above it: reading a config reruns the page, and the view with it)."""
    s = controls(custom, token)
    if s.models:  # an empty selection is a moment in editing, not a view worth a link
        ws.publish(dump_state(s))
    if not s.models:
        st.info("Pick at least one model.")
        return
    try:
        inputs = plan_inputs(s.plan_settings())
    except ValueError as e:
        st.error(f"{plain(e, 300)} Change the GPUs, TP or PP.")
        return
    hw, alloc = inputs.hardware, inputs.allocator
    specs = {("your config" if m == CUSTOM else m): (custom if m == CUSTOM else preset(m)) for m in s.models}
    for m, spec in list(specs.items()):
        if spec.params_unknown and alloc.kv_budget_bytes is None:  # a KV-only config: weights unknown
            st.warning(
                f"{m}: the config has no {', '.join(spec.params_unknown)}, so its weights are unknown; give the KV "
                f"memory per GPU to plan it. Its KV cache is exact: "
                f"{fmt_bytes(kv_bytes_per_token(spec, pl.auto_kv_dtype(spec) if s.kv_dtype == 'auto' else s.kv_dtype))}"
                " per token."
            )
            del specs[m]
    if s.layout != "latent":
        for m, spec in specs.items():
            try:
                check_layout(spec, s.layout)
            except ValueError:
                st.info(
                    f"{m}: the {s.layout} layout applies to MLA, DSA and DeepSeek V4 layers; {m} is shown as it is."
                )
    v = planned(specs, inputs, s, ws.presenting())
    for error in v.errors:
        st.error(error)
    if not v.plans:
        return
    plans, specs, kv_dtype, layouts = v.plans, {m: specs[m] for m in v.plans}, v.kv_dtype, v.layouts

    st.subheader("What each model caches")
    for m, lines in v.described.items():
        st.markdown(f"**{plain(m)}**\n" + "\n".join(f"- {plain(line, 600)}" for line in lines))

    st.subheader("Memory on one GPU")
    st.caption(
        f"{s.n_gpus} GPUs as {layouts}: {TP_HELP if any(p.parallel.tp > 1 for p in plans.values()) else ''} "
        f"{PP_HELP if s.pp > 1 else ''} {DPA_HELP if s.dp_attention else ''}".strip()
    )
    mem_df, mem_args, mem_chart = v.memory, v.mem_args, v.mem_chart
    show(mem_chart, width="stretch", key=P + "mem_chart")
    downloads(mem_chart, mem_df, "memory", P + "dl_mem")
    for m, p in plans.items():
        verdict(m, specs[m], p, s)
    table = v.table
    common_table(table)
    st.caption(
        f"{plain(hw.name)}: {hw.memory_bytes / 1e9:g} GB per GPU (vendor, decimal) = {hw.memory_bytes / GIB:,.1f} GiB. "
        f"Blocks hold {s.block_size} tokens of every layer of one KV-cache group, as vLLM 0.33 allocates them; "
        "concurrency is vLLM's 'Maximum concurrency' (blocks per GPU / blocks per request, times the DP groups) "
        "and 'KV cache (tokens)' its 'GPU KV cache size'; max context keeps vLLM's null block out. 'Pooled "
        "would say' divides all GPUs' memory by one unsharded request, as if the cache could be spread freely. "
        "Models vLLM allocates with other page rules are estimated in bytes and say so. Decode step and "
        "tokens/s are memory-bound limits: the stages in turn, each GPU reading its weights and its share of the "
        "cache at the datasheet bandwidth; real engines reach a fraction of it."
    )

    st.subheader("KV cache vs context")
    curves, kv = v.curves, v.kv_chart
    show(kv, width="stretch", key=P + "kv_chart")
    downloads(kv, curves, "kv-vs-context", P + "dl_kv")
    st.caption(
        "The whole cache of the requests, before sharding, against all GPUs' memory pooled: an upper bound. "
        "The plan above is what the GPUs really hold once weights and copies are placed."
    )

    st.subheader("By layer type and tensor")
    bd, bdc = v.breakdown, v.bd_chart
    show(bdc, width="stretch", key=P + "bd_chart")
    downloads(bdc, bd, "cache-breakdown", P + "dl_bd")

    with st.expander("Formulas, with these numbers", expanded=True):
        for m, formulas in v.formulas.items():
            st.markdown(f"**{m}**")
            for formula in formulas:
                st.latex(formula)

    st.subheader("Review card")
    inputs = [
        f"{hw.n_gpus} x {hw.name} as {layouts}, {s.utilization}% usable, {s.reserved_gib:g} GiB reserved per GPU"
        + (f", KV memory given as {s.kv_budget_gib:g} GiB per GPU" if s.kv_budget_gib else ""),
        f"{s.batch} request(s) of {s.context:,} tokens; cache {s.kv_dtype}"
        + (f" = {kv_dtype}" if s.kv_dtype == "auto" else "")
        + f" ({s.layout} layout); weights {s.weight_dtype}; vLLM blocks of {s.block_size}, "
        f"max_num_batched_tokens {s.batched_tokens:,}",
    ]
    footer = (
        f"KV Cache Lab {core.__version__}, {datetime.date.today():%Y-%m-%d}. Bytes in binary units (GiB); "
        "GPU memory from vendor datasheets (GB)."
    )
    card_title = f"KV cache plan: {', '.join(specs)}"
    st.download_button(  # the card is built on click only: a rerun does not pay for it
        "Download the review card (PNG)",
        lambda: to_png(review_card(card_title, inputs, table, memory_chart(*mem_args), footer)),
        "kv-cache-review-card.png", "image/png",
        key=P + "card", on_click="ignore", icon=":material/slideshow:",
    )  # fmt: skip
    st.caption("The address bar holds this whole view: copy it to share exactly what you see.")
    takeaways(v.takeaways)


st.title("Memory planner")
ws.lesson("planner", P)
init = link_state(
    PlannerState, P, extra=lambda init: {"context_log": min(CONTEXTS, key=lambda n: abs(n - init.context))}
)
custom, token = custom_config(init.config)
if CUSTOM in init.models and custom is None and not init.config:
    st.warning(
        "Link: it names your own config.json but does not carry it (too long for a link, or damaged): "
        "upload or paste the file above to see it."
    )
view(custom, token)
