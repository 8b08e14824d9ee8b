"""Real model: what every kind of cache compression costs a real pretrained decoder (SmolLM2-135M), on one
held-out text, against the bytes it saves."""

import math
import threading

import pandas as pd
import streamlit as st

from app_pages import workshop_ui as ws
from app_pages.figures import downloads, figure, show
from app_pages.layout import table, takeaways
from app_pages.links import link_state
from app_pages.real_panel import real_results as results
from core.lab import real_methods
from core.lab import realquality as rq
from core.layers import quant as qz
from core.model.hf_config import from_hf_config
from core.view import glossary
from core.view import takeaways as tk
from core.view.real_charts import pareto_chart, pareto_frame
from core.view.urlcodec import dump_state
from core.view.urlstate import REAL_FAMILIES, REAL_METRICS, REAL_Y_MAX, RealState

P = "real."
MHA2MLA = pd.DataFrame(  # arXiv 2502.14837 v1, Table 1: SmolLM-135M (v1), six-benchmark average after fine-tuning
    {
        "d_kv per kv head": [None, 32, 16, 8],
        "d_c here (3 kv heads)": [None, 96, 48, 24],
        "cache vs GQA": ["100%", "31.25%", "18.75%", "12.5%"],
        "MHA2MLA avg score, fine-tuned 2.25B tokens": [44.25, 43.06, 41.84, 40.97],
    }
)


sweep = rq.shipped
# One live run at a time for the whole server: each takes a core for 10-30 s, and a room's slider moves need the
# rest. A second visitor who presses the button waits for the first run (or gets its cached answer).
LIVE_RUN = threading.Lock()


@st.cache_resource(show_spinner="Loading SmolLM2-135M from its GGUF (about 10 s)...")
def model():
    from core.lab import smollm

    return smollm.load()


@st.cache_data(
    show_spinner="Running this method on the real model (about 10 s; MLA's first run 30 s)...", max_entries=32
)
def live(label: str) -> dict:
    with LIVE_RUN:
        s, nbytes = rq.live(model(), real_methods.method_of(label))
    return {"nll": s.nll, "kl": s.kl, "agree": s.agree, "tokens": s.tokens, "bytes": nbytes}


def controls() -> RealState:
    """The view's widgets; a widget hidden in this view (the y range under passkey retrieval, the passkey
    context elsewhere) keeps its value in session state for when it comes back."""
    ss, default = st.session_state, RealState()
    a, b = st.columns([3, 2])
    a.segmented_control("Quality measure (y)", REAL_METRICS, key=P + "metric", required=True)
    b.pills("Families", REAL_FAMILIES, key=P + "families", selection_mode="multi")
    c, _, e = st.columns([2, 1, 3])
    for name in ("y_max", "context"):
        ss.setdefault(P + "keep." + name, getattr(default, name))
        if P + name in ss:
            ss[P + "keep." + name] = ss[P + name]
        else:
            ss[P + name] = ss[P + "keep." + name]
    if ss[P + "metric"] == "passkey retrieval":
        c.segmented_control("Passkey context (tokens)", (1024, 2048), key=P + "context", required=True)
    elif ss[P + "metric"] == "perplexity":
        c.segmented_control(
            "y axis up to", REAL_Y_MAX, key=P + "y_max", required=True, help="times the uncompressed perplexity"
        )
    e.selectbox("Method in detail", [m.label for m in real_methods.methods()], key=P + "method", format_func=qz.label)
    return RealState(
        ss[P + "metric"], tuple(ss[P + "families"]), ss[P + "keep.y_max"], ss[P + "method"], ss[P + "keep.context"]
    )


st.title("Real model: what compression costs")
ws.lesson("real_model", P)
link_state(RealState, P)


@st.fragment
def view() -> None:
    s = controls()
    ws.publish(dump_state(s))
    df, meta = results(), sweep()
    named = df.assign(method=df["method"].map(qz.label))  # the names every page uses for the quantizers
    ref = df[df.method == real_methods.REFERENCE.label].iloc[0]
    shown = named[named.family.isin(("none", *s.families))]
    reference = {"perplexity": ref.perplexity}.get(s.metric)
    y_max = float(s.y_max[:-1]) * ref.perplexity if s.metric == "perplexity" and s.y_max != "all" else None
    d = pareto_frame(shown, s.metric, s.context, y_max)
    where = f"passkey in {s.context:,} tokens" if s.metric == "passkey retrieval" else "held-out Hamlet"
    title, sub = f"SmolLM2-135M: {s.metric} vs KV cache size", f"{meta['model']}; {where}"
    chart = figure(pareto_chart, d, s.metric, title, reference, sub)
    show(chart, key=P + "pareto")
    downloads(chart, d, "real-model-pareto", P + "dl_pareto")
    if s.metric == "passkey retrieval":
        st.caption(
            "Each trial hides a 5-digit key in Hamlet; the cache is compressed before the question arrives (one "
            "compression for any question), the hard case for SnapKV, whose votes then come from the last 32 "
            "tokens of text rather than from the question."
        )
    left_out = len(shown) - len(d) - (s.metric == "KL divergence")
    if left_out > 0:
        st.caption(f"{left_out} method(s) above the y range are left out of the picture; the table has them all.")

    row = df[df.method == s.method].iloc[0]
    spec = from_hf_config(meta["config"], name="SmolLM2-135M-Instruct")
    st.subheader(qz.label(s.method))
    m1, m2, m3, m4, m5 = st.columns(5)
    m1.metric(
        "cache per token",
        f"{row.bytes_per_token:,.0f} B",
        f"{row.vs_bf16:.1%} of bf16",
        delta_color="off",
        delta_arrow="off",
    )
    m2.metric("perplexity", f"{row.perplexity:,.2f}", f"{row.ppl_increase:+,.2f}", delta_color="inverse")
    m3.metric("KL per token (nats)", f"{row.kl:.3g}", help=glossary.tip("KL divergence"))
    m4.metric("top-1 agreement", f"{row.top1:.1%}")
    m5.metric(f"passkey at {s.context:,}", f"{row[f'passkey_{s.context}']:.0%}")
    st.latex(rq.bytes_formula(spec, real_methods.method_of(s.method)))
    if st.button("Run this method on the model now", key=P + "run", icon=":material/play_arrow:"):
        got = live(s.method)
        shipped = meta["quality"][s.method][0]
        st.success(
            f"Window 1 of {meta['protocol']['windows']} ({got['tokens']} scored tokens), measured now: perplexity "
            f"{math.exp(got['nll'] / got['tokens']):,.3f}, KL {got['kl'] / got['tokens']:.5f}, top-1 "
            f"{got['agree'] / got['tokens']:.1%}, {got['bytes']:,} B stored for {meta['protocol']['context']:,} "
            f"tokens. The shipped sweep holds perplexity {math.exp(shipped[0] / shipped[3]):,.3f} and "
            f"{shipped[4]:,} B for the same window."
        )
    st.caption(
        f"{meta['model']}: 30 layers, GQA with 9 query and 3 key/value heads of 64. Quality from "
        f"{meta['protocol']['windows']} windows of held-out text ({int(ref.tokens):,} scored tokens, context "
        f"{meta['protocol']['context']:,}); passkeys from {meta['protocol']['passkey_trials']} trials per context. "
        f"Uncompressed perplexity {ref.perplexity:.2f}, passkey {ref[f'passkey_{s.context}']:.0%}."
    )
    takeaways(tk.real_model(named, qz.label(s.method), s.context))


view()
st.subheader("Every method")
full = results().assign(method=lambda f: f["method"].map(qz.label))
shown = full[["family", "method", "bytes_per_token", "vs_bf16", "perplexity", "ppl_increase", "kl", "top1",
              "passkey_1024", "passkey_2048"]]  # fmt: skip
shown.columns = ["family", "method", "bytes per token", "of bf16", "perplexity", "increase", "KL (nats)", "top-1",
                 "passkey 1,024", "passkey 2,048"]  # fmt: skip
table(shown.style.format({"bytes per token": "{:,.0f}", "of bf16": "{:.1%}", "perplexity": "{:,.2f}",
                          "increase": "{:+,.2f}", "KL (nats)": "{:.4f}", "top-1": "{:.1%}", "passkey 1,024": "{:.0%}",
                          "passkey 2,048": "{:.0%}"}))  # fmt: skip
st.download_button("CSV", full.to_csv(index=False), "real-model-methods.csv", "text/csv", key=P + "csv")
with st.expander("Beside MHA2MLA's published SmolLM-135M figures"):
    st.markdown(
        "MHA2MLA (Ji et al. 2025, arXiv 2502.14837, Table 1) converts **SmolLM-135M** (v1, a base model) with "
        "4 RoPE pairs per head (S_2-norm) and a joint SVD, then **fine-tunes on 2.25B tokens**, and reports the "
        "average of six commonsense benchmarks. Here the converted cache is used **as converted, with no "
        "training**, on SmolLM2-135M-Instruct with Q4_1 weights, and measured by perplexity on Hamlet. The "
        "cache sizes line up (d_c = 3 x d_kv), the quality measures do not."
    )
    table(MHA2MLA)
with st.expander("How each method is measured"):
    st.markdown(rq.__doc__)
