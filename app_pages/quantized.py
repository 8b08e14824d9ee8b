"""Quantized caches: every scheme of core.quant on real keys, values and MLA latents, with what it costs
and what it loses."""

import pandas as pd
import streamlit as st

from app_pages import workshop_ui as ws
from app_pages.figures import downloads, figure, show
from app_pages.layout import table, takeaways
from app_pages.links import link_state
from app_pages.real_panel import lead
from app_pages.resources import minilm_model, passage_ids, require_minilm
from core.lab import quantlab
from core.lab.passages import load_passages
from core.model.dtypes import cache_dtype
from core.view import glossary
from core.view import takeaways as tk
from core.view.quality_charts import bias_chart, pareto_chart, rotation_chart
from core.view.urlcodec import dump_state
from core.view.urlstate import QuantState

RANKS = list(quantlab.LATENT_RANKS)
P = "quant."
METRICS = ("output error", "key error", "value error", "score error", "probability TV")


model = minilm_model


def ids(passage: int):
    return passage_ids(passage)[0]


@st.cache_data(show_spinner="Quantizing the real keys and values with every scheme...")
def errors(layer: int, passage: int) -> pd.DataFrame:
    return quantlab.scheme_errors(model(), layer, ids(passage))


@st.cache_resource
def shipped_latents() -> dict:
    return quantlab.shipped_latents()


@st.cache_data(show_spinner="Quantizing the MLA latents...")
def latents(layer: int, passage: int, rank: int) -> pd.DataFrame:
    """Made when the app was built (scripts/quant_latents.py, checked against fresh runs by the tests), or
    computed now."""
    key = f"{layer}|{passage}|{rank}"
    if key in shipped_latents():
        return pd.DataFrame(shipped_latents()[key])
    return quantlab.latent_errors(model(), layer, ids(passage), rank)


@st.cache_data(show_spinner=False)
def bias(layer: int, passage: int) -> pd.DataFrame:
    return quantlab.inner_product_bias(model(), layer, ids(passage))


@st.cache_data(show_spinner=False)
def rotation(layer: int, passage: int) -> pd.DataFrame:
    return quantlab.rotation_effect(model(), layer, ids(passage))


def controls() -> None:
    names = [p.title for p in load_passages()]
    a, b, _ = st.columns([1, 2, 3])
    a.selectbox("Layer", list(range(6)), key=P + "layer")
    b.selectbox("Text", list(range(len(names))), key=P + "passage", format_func=lambda i: names[i])


def state() -> QuantState:
    ss = st.session_state
    return QuantState(ss[P + "layer"], ss[P + "passage"], ss[P + "rank"], ss[P + "metric"])


@st.fragment
def schemes(layer: int, passage: int) -> None:
    """The error metric reruns this section only."""
    st.columns([1, 2])[0].selectbox("Error shown", METRICS, key=P + "metric")
    s = state()
    ws.publish(dump_state(s))
    df = quantlab.labelled(errors(layer, passage))
    pc = figure(pareto_chart, df, "bytes per token", s.metric, f"Layer {layer}: {s.metric} vs cache bytes per token")
    show(pc, width="stretch", key=P + "pareto")
    downloads(pc, df, "quantization-pareto", P + "dl_pareto")
    shown = df[["scheme", "bits per element", "bytes per token", *METRICS]].copy()
    table(
        shown.style.format(
            {"bits per element": "{:.2f}", "bytes per token": "{:,.0f}", **{m: "{:.2%}" for m in METRICS}}
        )
    )
    fp16 = df.set_index("scheme").loc["fp16", "bytes per token"]
    st.caption(
        f"Bytes per token for one layer's keys and values (12 heads x 32 x 2; fp16: {fp16:,.0f} B). Bits include "
        "every scale, zero, norm and codebook for this many tokens; KIVI's 128 most recent tokens stay in fp16, "
        "which dominates a short text. The +qjl schemes store the unbiased-scores reconstruction, which trades "
        "squared error for bias."
    )
    with st.expander("What each scheme stores"):
        table(df[["scheme", "description"]])
    same = quantlab.shared_with_planner()
    tq = cache_dtype("tq3.5")
    st.caption(
        f"Names follow the Memory planner's cache dtypes: {', '.join(same)} here store the same bytes per vector as "
        f"the planner's {', '.join(same.values())}. The planner's tq3.5 counts its norm too: {tq.vector_bytes(128)} B "
        f"for a 128-value head, {8 * tq.vector_bytes(128) / 128:g} bits per value, and on this page's 32-value heads "
        f"{8 * tq.vector_bytes(32) / 32:g}; tq3 (3 bits of code) has no planner twin. The planner's int8 and int4 keep "
        f"a scale per {cache_dtype('int8').group_size} values; int8 per token and int4 per token here keep one "
        "per head vector."
    )


@st.fragment
def latent_section(layer: int, passage: int) -> None:
    """The latent rank reruns this section only."""
    st.select_slider("MLA latent rank", RANKS, key=P + "rank", help=glossary.tip("latent"))
    s = state()
    ws.publish(dump_state(s))
    lat = latents(layer, passage, s.rank)
    best = lat.set_index("scheme")
    lat = quantlab.labelled(lat)
    lc = figure(
        pareto_chart,
        lat,
        "bytes per token",
        "error vs MLA layer",
        f"Layer {layer} as MLA at rank {s.rank}: latent quantized",
    )
    show(lc, width="stretch", key=P + "latent")
    downloads(lc, lat, "latent-quantization", P + "dl_latent")
    st.markdown(
        f"At rank {s.rank} the unquantized MLA layer already differs from the original by "
        f"**{best.loc['fp16', 'error vs original layer']:.1%}** (the latent-rank lesson); quantizing the latent to 8 "
        f"bits per token adds {best.loc['int8-token', 'error vs MLA layer']:.1%} on top, to 4 bits per token "
        f"{best.loc['int4-token', 'error vs MLA layer']:.1%}. The two compressions multiply: "
        f"{s.rank} numbers x bits instead of 768 x 16 bits per token."
    )


st.title("Quantized caches")
ws.lesson("quantized", P)
init = link_state(QuantState, P, grids={"rank": RANKS})
lead(("quantization",), "perplexity", "quant.real")
require_minilm()
controls()
s = state()
ws.publish(dump_state(s))

st.subheader("Bytes per token vs what is lost (real keys and values, per head)")
schemes(s.layer, s.passage)

st.subheader("Quantizing the MLA latent instead")
latent_section(s.layer, s.passage)

st.subheader("Inner products: the bias of MSE quantizers, and QJL's correction")
bd = bias(s.layer, s.passage)
bc = figure(bias_chart, bd, f"Layer {s.layer}, head 0: estimated q . k against the truth")
show(bc, key=P + "bias")
downloads(bc, bd, "inner-product-bias", P + "dl_bias")
one = bd[bd.bits == 1].set_index("estimator")["ratio"]
st.markdown(
    f"A quantizer that minimises squared error shrinks vectors toward the codebook's centres, so scores come out "
    f"too small: at 1 bit the MSE-only estimate is **{one['MSE only']:.2f}x** the true inner product (2/pi = 0.64 in "
    f"theory). A 1-bit QJL sketch of the residual (sign(S r) and ||r||) makes the estimate unbiased: "
    f"**{one['MSE + QJL']:.2f}x**, at the price of more variance (TurboQuant, arXiv 2504.19874; QJL, arXiv 2406.03482)."
)

st.subheader("What a random rotation does to outlier channels")
rd = rotation(s.layer, s.passage)
ratios = quantlab.outlier_ratio(rd)
rc = figure(rotation_chart, rd, f"Layer {s.layer} keys: channel RMS, sorted")
show(rc, width="stretch", key=P + "rotation")
downloads(rc, rd, "rotation-outliers", P + "dl_rot")
st.markdown(
    f"Before rotation the largest key channel has **{ratios['before rotation']:.1f}x** the median channel's RMS; after "
    f"a random orthogonal rotation **{ratios['after rotation']:.1f}x**. With the energy spread evenly, one scale (a "
    "norm) per vector and one codebook per coordinate fit every coordinate: that is why TurboQuant rotates first."
)
takeaways(tk.quantized(s.layer, quantlab.labelled(errors(s.layer, s.passage))))
