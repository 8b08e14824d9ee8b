"""Sparse & compressed attention: DeepSeek V3.2's indexer and V4's CSA/HCA/sliding layers, run small and
real, and V4's claims traced to their causes."""

import pandas as pd
import streamlit as st

from app_pages import workshop_ui as ws
from app_pages.figures import downloads, figure, show
from app_pages.layout import table, takeaways
from app_pages.links import link_state
from app_pages.resources import preset
from core.accounting.claims import PUBLISHED_FLOPS_FRACTION, PUBLISHED_KV_FRACTION, v4_claims
from core.lab.sparse import SmallSparse, claim_steps, dsa_selection, flops_vs_context, v4_visibility
from core.model.units import fmt_bytes, fmt_si
from core.view import glossary
from core.view import takeaways as tk
from core.view.attention_charts import selection_heatmap, visibility_heatmap
from core.view.compute_charts import parts_vs_context
from core.view.frames import CONTEXTS
from core.view.urlcodec import dump_state
from core.view.urlstate import SparseState

P = "sparse."
HCA_RATIOS = [2, 8, 16, 32, 64]
NO_DELTA = {"delta_color": "off", "delta_arrow": "off"}


def controls() -> None:
    a, b, _ = st.columns([1, 1, 2])
    a.slider("Tokens", 8, 256, step=8, key=P + "tokens")
    b.radio("Input", ["random", "text"], key=P + "source", horizontal=True,
            format_func={"random": "seeded random", "text": "real text (MiniLM)"}.get)  # fmt: skip


def state() -> SparseState:
    ss = st.session_state
    return SparseState(**{k: ss[P + k] for k in SparseState.__dataclass_fields__ if k != "notices"})


def config(s: SparseState) -> SmallSparse:
    return SmallSparse(s.tokens, s.index_topk, 4, s.hca_ratio, s.window)


def show_link() -> SparseState:
    """The view into the address bar (each section that changes part of it writes all of it)."""
    s = state()
    ws.publish(dump_state(s))
    return s


@st.cache_data(max_entries=64, show_spinner="Running the layers...")
def selection(cfg: SmallSparse, source: str) -> pd.DataFrame:
    return dsa_selection(cfg, source)


@st.cache_data(max_entries=64, show_spinner="Running the layers...")
def visibility(cfg: SmallSparse, kind: str, source: str) -> pd.DataFrame:
    return v4_visibility(cfg, kind, source)


@st.cache_data
def parts() -> pd.DataFrame:
    return flops_vs_context({"V3.2": preset("deepseek-v3.2"), "V4-Pro": preset("deepseek-v4-pro")}, CONTEXTS)


@st.cache_data
def claims(precision: str):
    steps = claim_steps(preset("deepseek-v3.2"), preset("deepseek-v4-pro"))
    return (
        v4_claims(precision=precision),
        steps,
        {p: v4_claims(precision=p).kv_fraction for p in ("bf16", "production")},
    )


@st.fragment
def dsa_section() -> None:
    """Top-k reruns this section only."""
    st.slider("Top-k (indexer, toy)", 1, 64, key=P + "index_topk", help=glossary.tip("top-k"))
    s = show_link()
    real_topk = preset("deepseek-v3.2").attention[0].index_topk
    st.caption(f"Scaled-down toy: top-k ({glossary.scale_note(s.index_topk, real_topk, 'keeps', 'V3.2')}).")
    sel = selection(config(s), s.source)
    hm = figure(
        selection_heatmap, sel, f"Indexer scores (grey) and the top {s.index_topk} tokens each query keeps (blue)"
    )
    show(hm, key=P + "dsa")
    downloads(hm, sel, "dsa-selection", P + "dl_dsa")


@st.fragment
def v4_section() -> None:
    """The window, the HCA ratio and the layer type rerun this section only."""
    a, b, c = st.columns([1, 1, 2])
    a.slider("Window (V4, toy)", 1, 64, key=P + "window", help=glossary.tip("sliding window"))
    b.select_slider("HCA compress ratio (toy)", HCA_RATIOS, key=P + "hca_ratio", help=glossary.tip("compress ratio"))
    ss = st.session_state
    c.radio("V4 layer type", ["CSA", "HCA", "SWA"], key=P + "kind", horizontal=True,
            format_func={"CSA": "CSA (ratio 4 + indexer)", "HCA": f"HCA (toy ratio {ss[P + 'hca_ratio']})",
                         "SWA": "sliding window only"}.get)  # fmt: skip
    s = show_link()
    vis = visibility(config(s), s.kind, s.source)
    vc = figure(visibility_heatmap, vis, f"{s.kind} layer: each query's view of the original tokens")
    show(vc, key=P + "v4")
    downloads(vc, vis, "v4-visibility", P + "dl_v4")
    v4 = preset("deepseek-v4-pro").attention
    real_hca, real_window = max(layer.compress_ratio for layer in v4), v4[0].sliding_window
    st.caption(
        f"Scaled-down toy of {s.tokens} tokens: HCA ratio "
        f"({glossary.scale_note(s.hca_ratio, real_hca, 'pools', 'V4-Pro')}), window "
        f"({glossary.scale_note(s.window, real_window, 'keeps', 'V4-Pro')}). "
        f"Real V4 layers (compressor with per-channel softmax pooling, indexer, window of {s.window} raw tokens, "
        "shared K=V head). An entry is shown over the tokens of its block and is usable once the block is complete; "
        "CSA entries also pool the 4 tokens before their block (overlapping windows). White: not reachable at all."
    )


@st.fragment
def claims_section() -> None:
    """The precision reruns this section only."""
    st.radio("Precision", ["bf16", "production"], key=P + "precision", horizontal=True)
    s = show_link()
    claim, steps, kv_fraction = claims(s.precision)
    kv = steps[(steps.what == "KV cache bytes") & (steps.precision == s.precision)].copy()
    kv["size"] = kv["value"].map(fmt_bytes)
    fl = steps[steps.what == "FLOPs per token"].copy()
    fl["FLOPs"] = fl["value"].map(lambda v: fmt_si(v, "FLOP"))
    a, b = st.columns(2)
    with a:
        st.markdown(f"**KV cache at 1,048,576 tokens ({s.precision})**")
        table(kv[["model", "part", "size"]])
        st.metric("V4-Pro / V3.2", f"{claim.kv_fraction:.1%}", f"published {PUBLISHED_KV_FRACTION:.0%}", **NO_DELTA)
    with b:
        st.markdown("**FLOPs per decoded token at 1,048,576 tokens**")
        table(fl[["model", "part", "FLOPs"]])
        st.metric(
            "V4-Pro / V3.2", f"{claim.flops_fraction:.1%}", f"published {PUBLISHED_FLOPS_FRACTION:.0%}", **NO_DELTA
        )
    st.markdown(
        f"{claim.description}. The cache ratio moves from {1 / kv_fraction['bf16']:.2f}x (bf16) to "
        f"{1 / kv_fraction['production']:.2f}x (production) because V4 stores its entries in fp8 with "
        "bf16 rope channels (584 B instead of 1,024 B) and its indexer keys in fp4 (68 B instead of 256 B), while "
        "V3.2's production cache (656 B + 132 B) shrinks less. The FLOP ratio comes from the indexer: V3.2 scores all "
        "1M tokens in every layer, V4 scores 262,144 entries in 30 layers; the weights term (2 x active params) is 75 "
        "vs 98 GFLOP."
    )


st.title("Sparse & compressed attention")
ws.lesson("sparse", P)
init = link_state(SparseState, P)
controls()
show_link()

st.subheader("DeepSeek V3.2: the lightning indexer picks the tokens")
dsa_section()
st.caption(
    "A real DSA layer (MLA + a 4-head indexer, top-k as set) on the input: I(t,s) = sum_j w_tj ReLU(q_tj . k_s), "
    "causal. Early queries keep every token they have; later ones only their top-k. The indexer itself still "
    "scores every earlier token: that term grows with the context."
)

st.subheader("What a decoded token costs, and where")
pf = parts()
pc = figure(parts_vs_context, pf, "Per decoded token, all layers: V3.2 (DSA) vs V4-Pro, from the config files")
show(pc, width="stretch", key=P + "parts")
downloads(pc, pf, "flops-by-part", P + "dl_parts")
v32 = pf[(pf.model == "V3.2") & (pf.context == 2**20)].set_index("part")["flops"]
st.markdown(
    f"At 1M tokens V3.2's indexer costs **{fmt_si(v32['indexer'], 'FLOP')}** per token, "
    f"{v32['indexer'] / v32.sum():.0%} of the total: 2 x 64 heads x 128 x N in each of 61 layers, O(N) per token "
    "and O(N^2) per sequence, while its attention core stops growing at 2,048 tokens. V4 scores compressed entries "
    "(N/4) in half of its layers and attends to N/128 entries in the other half."
)

st.subheader("DeepSeek V4: what a query can still see")
v4_section()

st.subheader("V4's claims, step by step")
claims_section()
takeaways(tk.sparse({p: claims(p)[0] for p in ("bf16", "production")}, pf))
