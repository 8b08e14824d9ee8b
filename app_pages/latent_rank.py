"""Latent rank: how many latent directions real pretrained keys and values need, measured on real text."""

from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages import workshop_ui as ws
from app_pages.figures import downloads, figure, show
from app_pages.layout import takeaways
from app_pages.links import link_state
from app_pages.real_panel import lead
from app_pages.resources import minilm_model, passage_ids, require_minilm
from core.lab import lowrank as lr
from core.lab.passages import load_passages
from core.model.units import fmt_bytes
from core.view import glossary
from core.view import takeaways as tk
from core.view.attention_charts import energy_chart, errors_chart, spectra_chart
from core.view.urlcodec import dump_state
from core.view.urlstate import LatentState

P = "latent."
RANKS = [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384]
PILL_RANKS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 384]  # powers of two and the full width; the 10% rank joins them


model = minilm_model
token_ids = passage_ids


def passages() -> tuple:
    return load_passages()


@st.cache_data(show_spinner=False)
def spectra_frames(layer: int, head: int, passage: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Singular values and energy of W_K, W_V, [W_K; W_V] and of the joint activations [K | V]."""
    h = None if head < 0 else head
    w = lr.spectra(model(), layer, h)
    a = lr.activation_spectra(model(), layer, token_ids(passage), h)
    mats = {"W_K": w.key, "W_V": w.value, "[W_K; W_V] (weights)": w.joint, "[K | V] on the text (activations)": a.joint}
    sv, en = [], []
    for name, s in mats.items():
        e = lr.energy(s)
        for i, (v, c) in enumerate(zip(s.tolist(), e.tolist(), strict=True)):
            sv.append({"matrix": name, "index": i + 1, "value": v})
            en.append({"matrix": name, "rank": i + 1, "energy": c})
    return pd.DataFrame(sv), pd.DataFrame(en)


@st.cache_resource
def shipped() -> dict:
    """Every layer and text at every rank, made when the app was built (scripts/rank_sweeps.py) and checked
    against fresh runs by the tests."""
    return lr.shipped_sweeps()


@st.cache_data(show_spinner="Converting the layer at every rank...")
def sweep(layer: int, passage: int) -> pd.DataFrame:
    if (key := f"{layer}|{passage}") in shipped():
        df = shipped()[key]
        return df[df["rank"].isin(RANKS)].reset_index(drop=True)
    return lr.rank_sweep(model(), layer, token_ids(passage), RANKS)


@st.cache_data(show_spinner=False, max_entries=256)
def at_rank(layer: int, passage: int, rank: int) -> pd.Series:
    if (key := f"{layer}|{passage}") in shipped():
        df = shipped()[key]
        return df[df["rank"] == rank].iloc[0]
    return lr.rank_sweep(model(), layer, token_ids(passage), [rank]).iloc[0]


def crossing(layer: int, passage: int) -> lr.Crossing:
    """Where the output error first drops below 10%: read off every rank 1..384 when the sweep was shipped,
    else off the ranks the page's sweep measured."""
    full = shipped().get(f"{layer}|{passage}")
    return lr.error_crossing(full if full is not None else sweep(layer, passage), tk.ERROR_SHARE)


def rank_controls(cross: lr.Crossing) -> None:
    """The useful ranks as pills (powers of two, the full width 384, the 10% rank) beside an exact number
    input; both set the one key the link round-trips ("latent.rank"), and neither reruns per key press."""
    ss = st.session_state
    options = sorted({*PILL_RANKS, *([cross.rank] if cross.rank else [])})
    ss[P + "rank_pick"] = ss[P + "rank"] if ss[P + "rank"] in options else None  # the pill of the rank shown

    def picked() -> None:
        if ss[P + "rank_pick"] is not None:  # a click on the selected pill clears it: keep the rank
            ss[P + "rank"] = ss[P + "rank_pick"]

    def label(r: int) -> str:
        return f"{r} ({cross.threshold:.0%} rank)" if r == cross.rank else str(r)

    a, b, c = st.columns([4, 1, 1.3])
    a.pills("Latent rank d_c", options, key=P + "rank_pick", format_func=label, on_change=picked,
            help=glossary.tip("latent"))  # fmt: skip
    b.number_input("Exact d_c", 1, 384, step=1, key=P + "rank", help="any rank from 1 to 384; Enter applies it")
    c.metric(
        f"output error < {cross.threshold:.0%} from d_c",
        "none" if cross.rank is None else str(cross.rank),
        help=f"The smallest measured rank whose layer output error is below {cross.threshold:.0%}; measured: "
        f"{cross.measured_text()}. The error is read, not interpolated.",
    )


@st.cache_data(show_spinner=False)
def tiny_energy() -> pd.DataFrame:
    from core.lab import tiny

    rows = []
    for name in ("tiny-mha", "tiny-gqa"):
        model = tiny.load(Path(__file__).resolve().parent.parent / "assets" / "models" / f"{name}.safetensors")
        for what, s in tiny.kv_spectra(model).items():
            label = f"{name} [W_K; W_V] (weights)" if what == "weights" else f"{name} cache (activations)"
            rows += [{"matrix": label, "rank": i + 1, "energy": float(e)} for i, e in enumerate(lr.energy(s))]
    return pd.DataFrame(rows)


def controls() -> None:
    a, b, c, _ = st.columns([1, 1, 2, 2])
    a.selectbox("Layer", list(range(6)), key=P + "layer")
    b.selectbox("Head", [-1, *range(12)], key=P + "head", format_func=lambda h: "all (joint)" if h < 0 else str(h))
    names = [p.title for p in passages()]
    c.selectbox("Text", [-1, *range(len(names))], key=P + "passage",
                format_func=lambda i: "all passages" if i < 0 else names[i])  # fmt: skip


def state() -> LatentState:
    ss = st.session_state
    return LatentState(ss[P + "layer"], ss[P + "head"], ss[P + "passage"], ss[P + "rank"])


st.title("Latent rank")
ws.lesson("latent_rank", P)
init = link_state(LatentState, P)
lead(("low rank",), "perplexity", "latent.real", y_cap=None)
require_minilm()
controls()
s = state()
ws.publish(dump_state(s))

sv, en = spectra_frames(s.layer, s.head, s.passage)
who = "all heads jointly" if s.head < 0 else f"head {s.head}"
st.subheader("Singular values: weights vs what the layer computes on text")
spc = figure(spectra_chart, sv, f"Layer {s.layer}, {who}")
show(spc, width="stretch", key=P + "spectra")
downloads(spc, sv, "spectra", P + "dl_sv")


@st.fragment
def at_the_rank(en: pd.DataFrame, who: str) -> None:
    """The latent rank reruns this part only: the energy and error charts, and the numbers at the rank."""
    st.subheader("Energy captured by the first d_c directions")
    rank_controls(crossing(st.session_state[P + "layer"], st.session_state[P + "passage"]))
    s = state()
    ws.publish(dump_state(s))
    enc = figure(energy_chart, en, s.rank, f"Layer {s.layer}, {who}: cumulative share of squared singular values")
    show(enc, width="stretch", key=P + "energy")
    downloads(enc, en, "energy", P + "dl_en")

    def share(matrix: str) -> float:
        """Energy kept by the first d_c directions (1 when d_c reaches the matrix's rank, e.g. fewer tokens)."""
        m = en[en["matrix"] == matrix]
        return float(m[m["rank"] == min(s.rank, int(m["rank"].max()))]["energy"].iloc[0])

    w_share, a_share = share("[W_K; W_V] (weights)"), share("[K | V] on the text (activations)")
    st.markdown(
        f"The first **{s.rank}** directions keep **{w_share:.0%}** of the energy of the weights [W_K; W_V] but "
        f"**{a_share:.0%}** of the keys and values the layer actually computes on this text: activations are "
        "lower-rank than the weights, which is why a latent can be much narrower than 2 x 384."
    )

    st.subheader("What the converted layer loses")
    sw = sweep(s.layer, s.passage)
    row = at_rank(s.layer, s.passage, s.rank)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("layer output error", f"{row.out_error:.1%}", help=glossary.tip("output error"))
    c2.metric("keys / values error", f"{row.k_error:.1%} / {row.v_error:.1%}")
    c3.metric("probabilities (mean TV)", f"{row.probs_tv:.3f}", help=glossary.tip("total variation"))
    mha = lr.mha_cache_bytes_per_token(model(), "bf16")
    c4.metric(
        "cache per token per layer (bf16)",
        fmt_bytes(int(row.cache_bytes_bf16)),
        f"{row.cache_share:.0%} of MHA's {fmt_bytes(mha)}",
        delta_color="off",
        delta_arrow="off",
        help=glossary.tip("latent"),
    )
    erc = figure(errors_chart, sw, s.rank, f"Layer {s.layer} converted to MLA by joint SVD, measured on the text")
    show(erc, width="stretch", key=P + "errors")
    downloads(erc, sw, "rank-sweep", P + "dl_sw")
    st.latex(
        rf"[W_K; W_V] \approx U_{{d_c}} \Sigma_{{d_c}} V_{{d_c}}^T,\qquad c_{{KV}} = x\,(\Sigma_{{d_c}} V_{{d_c}}^T)^T"
        rf"\in \mathbb{{R}}^{{{s.rank}}}"
    )
    st.latex(
        rf"\text{{cache}} = d_c \times 2\,\text{{B}} = {int(row.cache_bytes_bf16)}\ \text{{B}}"
        rf"\quad\text{{vs MHA}}\quad 2 \times 384 \times 2 = {mha}\ \text{{B per token per layer}}"
    )


at_the_rank(en, who)

st.subheader("The tiny models trained here")
tiny_df = tiny_energy()
tc = figure(
    energy_chart, tiny_df, 64, "Layer 0 of the tiny MHA and GQA models: energy of [W_K; W_V] and of their caches"
)
show(tc, width="stretch", key=P + "tiny")
downloads(tc, tiny_df, "tiny-energy", P + "dl_tiny")
r90 = tiny_df[tiny_df.energy >= 0.9].groupby("matrix")["rank"].min()
st.markdown(
    "The passkey models of the Needle in a haystack lesson (2 layers, about 345K parameters each, trained for this "
    "app): the MLA model was trained with a latent of "
    "d_c = 64 (dashed line) plus a 16-wide rope key. Unlike MiniLM, the tiny MHA model's cache is not much lower-rank "
    f"than its weights: **{int(r90.get('tiny-mha cache (activations)', 0))}** directions hold 90% of the cache's "
    "energy "
    f"(weights: **{int(r90.get('tiny-mha [W_K; W_V] (weights)', 0))}**) out of 256. Yet the MLA model, trained with 64 "
    "from the start, retrieves as well as MHA: energy after training is not what a model trained with the smaller "
    "cache needs."
)

st.caption(
    "Relative errors are Frobenius norms over every token and head; probabilities use the mean total-variation "
    "distance per query row. The biases stay outside the latent, so rank 384 reproduces the layer exactly. "
    "The 'floor' column of the CSV is the best any rank-d_c latent linear in x could do on this text: the room an "
    "activation-aware conversion (or brief fine-tuning, as MHA2MLA does) has."
)
takeaways(tk.latent_rank(s.layer, who, crossing(s.layer, s.passage), lr.mha_cache_bytes_per_token(model(), "bf16"), en))
