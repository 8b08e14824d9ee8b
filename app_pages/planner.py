"""Memory planner: weights + KV cache + headroom on GPUs, what fits, and a link to the Review sheet."""

from types import SimpleNamespace

import pandas as pd
import streamlit as st

from app_pages import workshop_ui as ws
from app_pages.figures import chart_spec, downloads, show
from app_pages.layout import table as common_table
from app_pages.layout import takeaways
from app_pages.links import link_state
from app_pages.planner_inputs import DPA_HELP, PP_HELP, TP_HELP, P, controls, custom_config
from app_pages.resources import preset
from core.accounting import planner as pl
from core.accounting.describe import describe
from core.accounting.formulas import budget_latex, bytes_per_token_latex, concurrency_latex, symbols_legend
from core.accounting.plan_inputs import PlanInputs, plan_inputs
from core.accounting.totals import check_layout, kv_bytes_per_token, param_count, state_bytes
from core.model.dtypes import weights_label
from core.model.specs import ModelSpec, MoEMLP
from core.model.units import fmt_bytes, fmt_params
from core.view import takeaways as tk
from core.view.engines import engine_views
from core.view.frames import CONTEXTS, GIB, breakdown_table, cache_vs_context, memory_parts
from core.view.memory_charts import breakdown_chart, cache_chart, memory_chart
from core.view.plan_text import headlines, pool_arithmetic
from core.view.text import plain
from core.view.theme import token_label
from core.view.urlcodec import dump_state
from core.view.urlstate import CUSTOM, MAX_CONTEXT, PlannerState, review_link


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
                "running at once": "does not start" if p.startup_error else f"{p.max_running_requests:,}",
                "max_model_len": "unknown" if p.max_model_len is None else f"{p.max_model_len:,}",
            }
        )
    return pd.DataFrame(rows)


def verdict(m: str, spec: ModelSpec, p: pl.Plan, s: PlannerState, why_pool: list[str], log: list[str]) -> None:
    par, weights = p.parallel, weights_label(s.weight_dtype, spec.native_weights)
    if p.kv_budget_bytes_per_gpu < 0:
        st.error(
            f"{m}: the weights ({weights}, {fmt_bytes(p.weights_bytes_per_gpu)} per GPU under {par.describe()}) "
            f"and the reserved memory do not fit in {fmt_bytes(p.usable_bytes)} per GPU; add GPUs, shard further or "
            "choose smaller weights."
        )
        return
    if p.startup_error:
        st.error(f"{m}: {plain(p.startup_error, 600)}")
    if p.max_context is None:
        ctx = "any context (every layer keeps a bounded cache)"
    elif p.max_context == p.max_model_len != p.pool_max_context:
        held = "any length" if p.pool_max_context is None else f"{p.pool_max_context:,} tokens"
        ctx = f"{p.max_context:,} tokens, the max_model_len (the cache alone could hold {held})"
    else:
        ctx = f"{p.max_context:,} tokens"
    seqs = "unknown" if p.max_num_seqs is None else f"{p.max_num_seqs:,}"
    running = (
        f" vLLM runs {p.max_running_requests:,} of them at once (max_num_seqs {seqs} per engine)."
        if not p.startup_error
        else ""
    )
    pool = (
        f"{p.num_blocks:,} blocks of {p.block_size} tokens per GPU ({p.kv_cache_tokens:,} tokens)"
        if p.exact
        else f"{fmt_bytes(p.kv_budget_bytes_per_gpu)} per GPU"
    )
    if p.startup_error:
        st.markdown(
            f"**{m}** under {par.describe()}: vLLM does not start with these settings (see above). The weights "
            f"({weights}) take {fmt_bytes(p.weights_bytes_per_gpu)} per GPU and leave {pool} for the cache, which "
            f"would hold {p.max_concurrency:,.2f} requests of {s.context:,} tokens."
        )
    else:
        st.markdown(
            f"**{m}** under {par.describe()}: {p.max_concurrency:,.2f} requests of {s.context:,} tokens fit in the "
            f"cache.{running} The weights ({weights}) take {fmt_bytes(p.weights_bytes_per_gpu)} per GPU and leave "
            f"{pool} for the cache; {s.batch} concurrent request(s) can each hold up to {ctx}."
        )
    for line in why_pool:  # why the tokens are not blocks x block size, and how a request can be longer
        st.markdown(line)
    if log:  # the engine's own view: what it prints about this pool at start-up
        st.caption(f"vLLM {s.vllm_version} would log, for requests of max_model_len tokens:")
        st.code("\n".join(log), language=None)
    if p.replication > 1.01:
        st.markdown(
            f"**Cache copies per request: {p.replication:.3g}.** "
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
        if note != p.startup_error:
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
        formulas[m] = [bytes_per_token_latex(spec, p.kv_dtype, s.layout), budget_latex(p, hw)]
        if p.exact and p.kv_budget_bytes_per_gpu > 0:
            formulas[m].append(concurrency_latex(p))
    legends = {m: symbols_legend(specs[m], plans[m].kv_dtype, s.layout) for m in specs}
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
        legends=legends,
        pools={m: pool_arithmetic(p) for m, p in plans.items()},
        logs={m: inputs.log_lines(specs[m], p.parallel, p) for m, p in plans.items()},
        engines={m: engine_views(specs[m], p, s.batch) for m, p in plans.items()},
        headlines={m: headlines(p) for m, p in plans.items()},
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
    plans, specs, layouts = v.plans, {m: specs[m] for m in v.plans}, v.layouts

    for m, p in plans.items():  # the headline numbers first, from the plans already made
        name, *cols = st.columns([0.8, 1.1, 1.3, 0.9])
        name.markdown(f"**{plain(m)}**  \n{p.parallel.describe()}")
        for col, h in zip(cols, v.headlines[m], strict=True):
            col.metric(h.label, h.value, help=h.help)

    st.subheader("What each model caches")
    for m, lines in v.described.items():
        st.markdown(f"**{plain(m)}**\n" + "\n".join(f"- {plain(line, 600)}" for line in lines))

    st.subheader("Memory on one GPU")
    st.caption(
        f"{s.n_gpus} GPUs as {layouts}: {TP_HELP if any(p.parallel.tp > 1 for p in plans.values()) else ''} "
        f"{PP_HELP if s.pp > 1 else ''} {DPA_HELP if s.dp_attention else ''}".strip()
    )
    mem_df, mem_chart = v.memory, v.mem_chart
    show(mem_chart, width="stretch", key=P + "mem_chart")
    downloads(mem_chart, mem_df, "memory", P + "dl_mem")
    for m, p in plans.items():
        verdict(m, specs[m], p, s, v.pools[m], v.logs[m])
    with st.expander("The same requests on llama.cpp and SGLang"):
        st.caption(
            f"llama.cpp as `llama-server -c {s.context * s.batch} -np {s.batch}` with its defaults (-ub 512, flash "
            "attention); SGLang's token pool given the memory vLLM's plan leaves its cache on one GPU. Each engine's "
            "own log lines, as it prints them."
        )
        for m, views in v.engines.items():
            for ev in views:
                st.markdown(f"**{plain(m)}** on {ev.engine}, run as {plain(ev.setup)}: {plain(ev.summary, 600)}")
                if ev.lines:
                    st.code("\n".join(ev.lines), language=None)
    table = v.table
    st.caption(f"{len(table.columns)} columns: scroll the table sideways to see them all.")
    common_table(table)
    st.caption(
        f"{plain(hw.name)}: {hw.memory_bytes / 1e9:g} GB per GPU (vendor, decimal) = {hw.memory_bytes / GIB:,.1f} GiB. "
        f"Blocks hold {s.block_size} tokens of every layer of one KV-cache group, as vLLM {s.vllm_version} allocates "
        "them (hybrid models: the block grows until one attention page holds a state page); "
        "concurrency is vLLM's 'Maximum concurrency' (blocks per GPU / blocks per request, times the DP groups) "
        "and 'KV cache (tokens)' its 'GPU KV cache size'; max context is the longest request the cache holds "
        "(vLLM's null block kept out), never above max_model_len; 'running at once' is what the scheduler runs, "
        "at most max_num_seqs per engine. 'Pooled "
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
            st.caption(v.legends[m])

    st.subheader("Review sheet")
    params, kept_here = review_link(s)
    st.page_link(
        "app_pages/review.py",
        label="Compare these models side by side on the Review sheet (PNG, SVG and PDF for a slide)",
        icon=":material/slideshow:",
        query_params=params,
    )
    for line in kept_here:
        st.caption(plain(line[0].upper() + line[1:] + ".", 300))
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
