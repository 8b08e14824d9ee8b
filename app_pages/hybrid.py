"""Hybrid models: real Gated DeltaNet and Mamba-2 layers beside an attention layer, and the cache and state
of today's hybrid models from their config files."""

import pandas as pd
import streamlit as st

from app_pages import workshop_ui as ws
from app_pages.figures import downloads, figure, show
from app_pages.layout import table as common_table
from app_pages.layout import takeaways
from app_pages.links import link_state
from app_pages.resources import preset, require_minilm
from core.accounting import totals as acc
from core.accounting import whatif
from core.accounting.describe import describe
from core.accounting.formulas import bytes_per_token_latex
from core.lab.hybrid import SmallHybrid, run, shipped_runs
from core.model.units import fmt_bytes, fmt_si
from core.view import glossary
from core.view import takeaways as tk
from core.view.frames import CONTEXTS, breakdown_table
from core.view.memory_charts import breakdown_chart, held_chart
from core.view.theme import token_label
from core.view.urlcodec import dump_state
from core.view.urlstate import HYBRID_MODELS, HYBRID_TOKENS, HybridState

P = "hybrid."
REAL_CONTEXTS = CONTEXTS[10:]  # 1K to 1M tokens


@st.cache_resource
def shipped() -> dict:
    return shipped_runs()


@st.cache_data(max_entries=32, show_spinner="Running the layers...")
def measured(tokens_: int, source: str) -> pd.DataFrame:
    """The run of the layers at `tokens_`: made when the app was built (scripts/hybrid_runs.py, checked
    against fresh runs by the tests), or run now."""
    key = f"{tokens_}|{source}"
    return pd.DataFrame(shipped()[key]) if key in shipped() else run(SmallHybrid(tokens_), source)


st.title("Hybrid models: a fixed state beside a growing cache")
ws.lesson("hybrid", P)
link_state(HybridState, P, grids={"context": REAL_CONTEXTS})


def show_link() -> None:
    """The whole view into the address bar (each section writes all of it)."""
    ss = st.session_state
    ws.publish(dump_state(HybridState(ss[P + "tokens"], ss[P + "source"], ss[P + "model"], ss[P + "context"])))


@st.fragment
def run_section() -> None:
    """The token count and the input rerun this section only."""
    a, b = st.columns([3, 1])
    a.select_slider("Tokens", HYBRID_TOKENS, key=P + "tokens")
    b.radio("Input", ["random", "text"], key=P + "source", horizontal=True,
            format_func={"random": "seeded random", "text": "real text (MiniLM)"}.get)  # fmt: skip
    ss = st.session_state
    show_link()
    if ss[P + "source"] == "text":
        require_minilm()
    df = measured(ss[P + "tokens"], ss[P + "source"])
    held = figure(
        held_chart,
        df,
        "accounted_kib",
        "measured_kib",
        f"What each layer holds per sequence after N tokens (fp32), N up to {ss[P + 'tokens']:,}",
        "KiB held (log scale)",
    )
    show(held, width="stretch", key=P + "held")
    downloads(held, df, "hybrid-bytes-held", P + "dl_held")
    st.markdown(
        "**And the compute of each new token**: attention reads every key it has; the recurrent layers read "
        "their state."
    )
    flops = figure(
        held_chart,
        df,
        "step_flops_accounted",
        "step_flops_measured",
        "FLOPs of the next decoded token (FlopCounterMode points, accounting line)",
        "FLOPs per step (log scale)",
        "~s",
    )
    show(flops, width="stretch", key=P + "flops")
    downloads(flops, df, "hybrid-step-flops", P + "dl_flops")
    last = df[df.context == df.context.max()]
    common_table(
        pd.DataFrame(
            {
                "layer": last.layer,
                "keeps": last.holds,
                f"measured nbytes at {last.context.iloc[0]:,} tokens": last.measured_bytes.map(fmt_bytes),
                "accounting": last.accounted_bytes.map(fmt_bytes),
                "equal": (last.measured_bytes == last.accounted_bytes).map({True: "yes", False: "NO"}),
                "next step FLOPs (FlopCounterMode)": last.step_flops_measured.map(lambda v: fmt_si(v, "FLOP")),
                "accounting FLOPs": last.step_flops_accounted.map(lambda v: fmt_si(v, "FLOP")),
            }
        ),
        hide_index=True,
        width="stretch",
    )
    spec = SmallHybrid().specs
    st.caption(
        "Width 64, float32, seeded. Attention: 4 query heads sharing 2 kv heads of 16, so 2 x 2 x 16 x 4 B = 256 B "
        "per token. Gated DeltaNet: 2 key heads of 32 and 4 value heads of 16 (state 4 x 32 x 16 plus a 3-step "
        f"convolution over {spec['Gated DeltaNet'].conv_dim} channels). Mamba-2: 4 heads of 16 with state size 16. "
        "Scaled down from Qwen3-Next (32 value heads of 128) and Nemotron-H (256 heads of 64, state 256). "
        "Each layer reads the tokens in pieces with its cache or state passed in and returned; the points are "
        "the tensors' nbytes, the lines the accounting's formulas. Bytes and FLOPs depend on shapes only, so the "
        "runs at every token count were made once when the app was built, and the app's tests run the layers "
        "again and check every number."
    )


def what_if(m, context: int, kv: int) -> None:
    """What the model's design saves, priced by the same accounting: the cache with every windowed or chunked
    layer made global, and one recurrent layer's state against what an attention layer caches per token."""
    wide, layers = whatif.all_global(m), whatif.state_per_layer(m)
    if not (wide or layers):
        return
    u, v, _ = st.columns(3)
    if wide:
        kv_wide = acc.kv_cache_bytes(wide, context)
        terms = " + ".join(
            f"{t.n_layers} x {t.rows:,} x {t.bytes_per_row:,} B" for t in acc.kv_cache(wide, context).terms
        )
        u.metric(
            "Cache with every layer global",
            fmt_bytes(kv_wide),
            f"{kv_wide / kv:.2f}x the real cache",
            delta_color="off",
            delta_arrow="off",
            help=glossary.tip("full attention"),
        )
        st.markdown(
            f"**What if every layer were global:** each sliding-window or chunked layer, with its own heads, would "
            f"cache all {context:,} tokens: {terms} (layers x rows x bytes per row) = {fmt_bytes(kv_wide)}, "
            f"{kv_wide / kv:.2f}x the {fmt_bytes(kv)} the windows and chunks keep; they save {fmt_bytes(kv_wide - kv)}."
        )
    for one in layers:
        parts = " + ".join(f"{name} {rows:,} x {per_row:,} B" for name, rows, per_row in one.tensors)
        v.metric(f"Fixed state of one {one.kind} layer", fmt_bytes(one.bytes), help=glossary.tip("fixed state"))
        per_token = whatif.attention_bytes_per_token_per_layer(m)
        same = (
            f": what one attention layer of this model caches for {one.bytes / per_token:,.0f} tokens "
            f"({per_token:,} B per token)"
            if per_token
            else ""
        )
        st.markdown(
            f"**One {one.kind} layer's state** is {parts} = {one.bytes:,} B ({fmt_bytes(one.bytes)}) per sequence "
            f"at any context, in each of {one.n_layers} layers{same}."
        )


@st.fragment
def models_section() -> None:
    """The model and the context rerun this section only."""
    c, d = st.columns([1, 2])
    c.selectbox("Model", HYBRID_MODELS, key=P + "model")
    d.select_slider(
        "Context (tokens, log scale)",
        REAL_CONTEXTS,
        key=P + "context",
        format_func=token_label,
        help=glossary.tip("context"),
    )
    ss = st.session_state
    model, context = ss[P + "model"], ss[P + "context"]
    show_link()
    m = preset(model)
    kv, state = acc.kv_cache_bytes(m, context), acc.state_bytes(m)
    x, y, z = st.columns(3)
    x.metric(f"KV cache at {token_label(context)} (bf16)", fmt_bytes(kv), help=glossary.tip("KV cache"))
    y.metric("Fixed state per sequence", fmt_bytes(state) if state else "none", help=glossary.tip("fixed state"))
    z.metric("State share of the request", f"{state / (kv + state):.1%}" if kv + state else "-")
    what_if(m, context, kv)
    bd = breakdown_table({model: m}, context, 1, "bf16", "latent")
    bc = figure(breakdown_chart, bd, f"{model} at {context:,} tokens: what each layer type keeps")
    show(bc, width="stretch", key=P + "breakdown")
    downloads(bc, bd, f"{model}-breakdown", P + "dl_breakdown")
    table = bd[["layer type", "tensor", "layers", "rows per layer", "bytes per row", "bytes"]].copy()
    table["size"] = table.pop("bytes").map(fmt_bytes)
    common_table(table.style.format("{:,}", subset=["layers", "rows per layer", "bytes per row"]))
    st.latex(bytes_per_token_latex(m))
    st.markdown("\n".join(f"- {line}" for line in describe(m)))
    st.caption(
        "Analytic: these are the accounting's exact numbers for the whole model at this context (nothing of this size "
        "runs here); the small layers above check the same formulas against real tensors. State dtypes follow vLLM's "
        "defaults for each model (Qwen3.5, Nemotron-H, Kimi-Linear: fp32 recurrent state; Qwen3-Next: the model dtype)."
    )
    # The end of the page, inside the fragment that holds the model and context, so they follow them.
    takeaways(tk.hybrid(model, m, context))


st.subheader("Run here: three small toy layers on the same tokens")
run_section()
st.subheader("Today's hybrid models, from their config files")
models_section()
