"""Overview: why the KV cache decides long-context inference, and DeepSeek V4's claims recomputed."""

import functools
import inspect

import pandas as pd
import streamlit as st

from app_pages import workshop_ui as ws
from app_pages.figures import downloads, figure, show
from app_pages.layout import table, takeaways
from app_pages.resources import preset
from core.accounting import totals as acc
from core.accounting.base import design_of
from core.accounting.claims import PUBLISHED_FLOPS_FRACTION, PUBLISHED_KV_FRACTION, v4_claims
from core.accounting.formulas import bytes_per_token_latex
from core.model.dtypes import CACHE_DTYPES
from core.model.gpus import GPUS
from core.model.presets import preset_names
from core.model.units import fmt_bytes, fmt_params, fmt_si
from core.view import glossary
from core.view import takeaways as tk
from core.view.frames import CONTEXTS, GIB, cache_vs_context
from core.view.memory_charts import cache_chart
from core.view.text import plain
from core.view.theme import token_label
from core.view.urlstate import MAX_CONTEXT, OverviewState, parse_overview, serialise_overview


def controls(init: OverviewState) -> OverviewState:
    names = preset_names()
    a, b, c, d = st.columns([3, 1.2, 1, 0.8])
    models = a.multiselect("Models", names, default=list(init.models), max_selections=6, key="overview.models")
    gpu = b.selectbox("GPU", list(GPUS), index=list(GPUS).index(init.gpu), key="overview.gpu", help=glossary.tip("GPU"))
    kv = c.selectbox(
        "Cache dtype",
        list(CACHE_DTYPES),
        index=list(CACHE_DTYPES).index(init.kv_dtype),
        key="overview.kv",
        help=glossary.tip("dtype"),
    )
    batch = d.number_input("Sequences", 1, 4096, init.batch, key="overview.batch")
    ctx = init.context if init.context in CONTEXTS else min(CONTEXTS, key=lambda n: (abs(n - init.context), n))
    if ctx != init.context:
        st.warning(f"Link: context {int(init.context):,} is not offered here; showing the nearest, {ctx:,}.")
    context = st.select_slider(
        "Context length (tokens, log scale)",
        CONTEXTS,
        value=ctx,
        format_func=token_label,
        key="overview.context",
        help=glossary.tip("context"),
    )
    return OverviewState(tuple(models) or init.models, int(context), gpu, kv, int(batch))


@functools.cache
def source(fn) -> str:
    """A function's source, read from disk once per process."""
    return inspect.getsource(fn)


@st.cache_data(max_entries=64, show_spinner=False)  # keyed on any subset of the presets a link names
def curves(models: tuple[str, ...], kv: str, batch: int) -> pd.DataFrame:
    return cache_vs_context({m: preset(m) for m in models}, CONTEXTS, kv, batch)


@st.cache_data(max_entries=256, show_spinner=False)
def summary(s: OverviewState, gpu_bytes: int) -> pd.DataFrame:
    """The table under the chart, once per view for the whole server."""
    rows = []
    stateful = any(acc.state_bytes(preset(m)) for m in s.models)
    for m in s.models:
        spec = preset(m)
        kv = acc.kv_cache_bytes(spec, s.context, s.batch, s.kv_dtype)
        state = acc.state_bytes(spec, s.batch)
        pc = acc.param_count(spec)
        rows.append(
            {
                "model": m,
                "attention": spec.design,
                "params total / active": f"{fmt_params(pc.total)} / {fmt_params(pc.active)}",
                "KV / token": fmt_bytes(acc.kv_bytes_per_token(spec, s.kv_dtype)),
                f"KV cache at {token_label(s.context)} x {s.batch}": fmt_bytes(kv),
                **({f"fixed state x {s.batch}": fmt_bytes(state) if state else "none"} if stateful else {}),
                f"% of {s.gpu}": f"{100 * (kv + state) / gpu_bytes:.1f}%",
                "fit (cache only)": f"{gpu_bytes // max((kv + state) // s.batch, 1):,}",
                "FLOPs / token": fmt_si(acc.decode_cost(spec, s.context, s.kv_dtype).model_flops, "FLOP"),
            }
        )
    return pd.DataFrame(rows)


def claims_panel() -> None:
    st.subheader("DeepSeek V4's claims, recomputed from the config files")
    st.markdown(
        "Published: at 1M tokens V4-Pro needs **27%** of V3.2's single-token FLOPs and **10%** of its KV cache. "
        "Both numbers below come from DeepSeek's released config.json files of V4-Pro and V3.2 through the same "
        "accounting as every other number here (analytic: 1M tokens are not run on this machine)."
    )
    cols = st.columns(2)
    for col, precision in zip(cols, ("bf16", "production"), strict=True):
        c = v4_claims(precision=precision)
        with col, st.container(border=True):
            st.markdown(f"**{precision}**: {c.description}")
            x, y = st.columns(2)
            x.metric(
                "V4-Pro KV cache / V3.2",
                f"{100 * c.kv_fraction:.1f}%",
                f"{1 / c.kv_fraction:.2f}x smaller; published {100 * PUBLISHED_KV_FRACTION:.0f}%",
                delta_color="off",
                delta_arrow="off",
                help=glossary.tip("V4"),
            )
            y.metric(
                "V4-Pro FLOPs / V3.2",
                f"{100 * c.flops_fraction:.1f}%",
                f"{1 / c.flops_fraction:.2f}x fewer; published {100 * PUBLISHED_FLOPS_FRACTION:.0f}%",
                delta_color="off",
                delta_arrow="off",
                help=glossary.tip("FLOPs"),
            )
            st.caption(
                f"KV cache at 1,048,576 tokens: V3.2 {fmt_bytes(c.v32_kv_bytes)}, V4-Pro {fmt_bytes(c.v4_kv_bytes)}. "
                f"Whole-model FLOPs per token: V3.2 {fmt_si(c.v32_flops, 'FLOP')} (the indexer scores all 1M tokens "
                f"in each of 61 layers), V4-Pro {fmt_si(c.v4_flops, 'FLOP')}."
            )
    st.caption(
        "Why bf16 gives 8.7x and the paper 9.5x: production V3.2 stores 656 B latents (fp8_ds_mla) + 132 B fp8 indexer "
        "keys per token per layer; V4 stores 584 B fp8/bf16 entries and 68 B fp4 indexer keys, "
        "so its share shrinks more."
    )


@st.fragment
def view(state: OverviewState) -> None:
    """The controls and everything they change: a move reruns this alone, not the lesson, the claims or the
    navigation (a room of people moving sliders pays for the view only)."""
    s = controls(state)
    ws.publish(serialise_overview(s))
    gpu = GPUS[s.gpu]
    gpu_gib = gpu.memory_bytes / GIB
    df = curves(s.models, s.kv_dtype, s.batch)
    title = f"KV cache vs context, {s.batch} sequence(s), {s.kv_dtype}"
    chart = figure(cache_chart, df, f"{s.gpu} ({gpu.memory_gb:g} GB)", gpu_gib, s.context, title)
    show(chart, width="stretch", key="overview.chart")
    downloads(chart, df, f"kv-cache-{s.kv_dtype}", "overview.dl")
    table(summary(s, gpu.memory_bytes))
    st.caption(
        f"{s.gpu}: {gpu.memory_gb:g} GB (vendor, decimal) = {gpu_gib:.1f} GiB. 'Fit': sequences whose cache alone "
        "(with its fixed state, for hybrids) "
        "fits (the Memory planner adds weights and headroom). FLOPs / token: whole model, one decoded token. "
        "Context goes up to "
        f"{MAX_CONTEXT:,} tokens; everything here is exact arithmetic on the configs, checked by tests against real "
        "layers."
    )
    with st.expander("Formulas, with these models' numbers"):
        for m in s.models:
            st.markdown(f"**{m}** ({preset(m).design})")
            st.latex(bytes_per_token_latex(preset(m), s.kv_dtype))
    with st.expander("Show the code behind the cache numbers"):
        layer_specs = {type(a): a for name in s.models for a in preset(name).attention}
        for a in layer_specs.values():  # each design's own accounting module
            st.code(source(type(design_of(a)).cache_rows), language="python")
    takeaways(tk.overview(s, {m: preset(m) for m in s.models}, gpu))


st.title("Why the KV cache decides long-context inference")
ws.lesson("overview", "overview.")
state = parse_overview(st.query_params.to_dict())
for note in state.notices:
    st.warning(f"Link: {plain(note, 300)}.")
view(state)
claims_panel()
