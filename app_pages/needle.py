"""Needle in a haystack: which compression loses the needle first, and at what cache size, on tiny
models trained here."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages import workshop_ui as ws
from app_pages.figures import downloads, figure, show
from app_pages.layout import takeaways
from app_pages.links import link_state
from app_pages.real_panel import lead
from core.lab import needle as nd
from core.lab import tiny
from core.layers import quant as qz
from core.model.presets import load_preset
from core.model.units import fmt_bytes
from core.view import glossary
from core.view import takeaways as tk
from core.view.quality_charts import needle_heatmap, needle_summary_chart
from core.view.text import plain
from core.view.urlcodec import dump_state
from core.view.urlstate import NeedleState

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "assets" / "needle" / "results.json"
P = "needle."


@st.cache_resource
def model(name: str) -> tiny.TinyLM:
    return tiny.load(ROOT / "assets" / "models" / f"{name}.safetensors")


@st.cache_resource
def precomputed() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"heatmaps": {}, "summary": {}}


@st.cache_data(show_spinner="Running the model on 600 prompts with this compression...")
def heat(name: str, method: str, strength: str) -> pd.DataFrame:
    m = nd.Method(method, None if method == "none" else _typed(method, strength))
    key = f"{name}|{m.label}"
    if key in precomputed()["heatmaps"]:
        return pd.DataFrame(precomputed()["heatmaps"][key])
    return nd.heatmap(model(name), m, nd.LENGTHS, nd.DEPTHS, n=30, seed=0)


@st.cache_data(show_spinner="Sweeping every method at every strength (about a minute)...")
def summary(name: str) -> pd.DataFrame:
    if name in precomputed()["summary"]:
        return pd.DataFrame(precomputed()["summary"][name])
    return nd.summary(model(name), 256, 40, seed=1)


def method_name(label: str) -> str:
    """A method label as every page names it: a quantization scheme in brackets by its shared name
    ("quantization (int8-token)" is "quantization (int8 per token)")."""
    head, sep, rest = label.partition(" (")
    return f"{head} ({qz.label(rest[:-1])})" if sep and rest.endswith(")") else label


def _typed(method: str, strength: str):
    return strength if method == "quantization" else int(strength)


def controls(init: NeedleState) -> NeedleState:
    ss = st.session_state
    a, b, c = st.columns([1, 1, 2])
    a.selectbox("Model", nd.MODELS, key=P + "model", help=glossary.tip("toy"))
    b.selectbox("Compression", nd.METHODS, key=P + "method")
    method = ss[P + "method"]
    if method == "none":
        c.caption("No compression: the full cache.")
        strength = ""
    else:
        options = [str(x) for x in nd.STRENGTHS[method]]
        switched = ss.get(P + "last_method") not in (None, method)  # a new method starts at its default
        if switched or ss.get(P + "strength") not in options:
            if not switched and ss.get(P + "last_method") is None and init.strength:
                st.warning(
                    f"Link: strength {plain(init.strength, 40)} is not offered for {plain(method)}; showing the "
                    f"default, {nd.DEFAULT_STRENGTH[method]}."
                )
            ss[P + "strength"] = str(nd.DEFAULT_STRENGTH[method])
        unit = {"quantization": "scheme", "low rank": "rank r", "top-k": "k tokens", "pooling": "m tokens per entry"}
        shown = qz.label if method == "quantization" else str
        c.select_slider(f"Strength ({unit.get(method, 'tokens kept')})", options, key=P + "strength", format_func=shown)
        strength = ss[P + "strength"]
    ss[P + "last_method"] = method
    return NeedleState(ss[P + "model"], method, strength)


st.title("Needle in a haystack")
ws.lesson("needle", P)
init = link_state(NeedleState, P)
lead(("quantization", "eviction", "low rank"), "passkey retrieval", "needle.real")
s = controls(init)
ws.publish(dump_state(s))

label = method_name(nd.Method(s.method, None if s.method == "none" else _typed(s.method, s.strength)).label)
st.subheader(f"{s.model}: {label}")
hd = heat(s.model, s.method, s.strength)
base = heat(s.model, "none", "")
hc = figure(needle_heatmap, hd, f"Retrieval accuracy, {label}")
show(hc, key=P + "heat")
downloads(hc, hd, "needle-heatmap", P + "dl_heat")
c1, c2, c3 = st.columns(3)
c1.metric(
    "accuracy (all cells)",
    f"{hd['accuracy'].mean():.0%}",
    f"{hd['accuracy'].mean() - base['accuracy'].mean():+.0%} vs none",
    help=glossary.tip("accuracy"),
)
at256 = hd[hd.length == 256]
kept, raw = int(at256["cache_bytes"].iloc[0]), int(at256["raw_bytes"].iloc[0])
c2.metric(
    "cache at 256 tokens",
    fmt_bytes(kept),
    f"of {fmt_bytes(raw)} uncompressed",
    delta_color="off",
    delta_arrow="off",
    help=glossary.tip("KV cache"),
)
c3.metric("worst cell", f"{hd['accuracy'].min():.0%}")
st.caption(
    "30 prompts per cell, fixed seed; accuracy is an exact match of both digits (chance 1%). The cache is compressed "
    "after the prompt; the question and both answer digits are decoded from the compressed cache."
)
cfg, v3 = model(s.model).cfg, load_preset("deepseek-v3")
st.caption(
    f"Scaled-down toys: {s.model} has {cfg.n_layers} layers of width {cfg.d_model}; DeepSeek-V3 has "
    f"{len(v3.attention)} of {v3.hidden_size:,} ({len(v3.attention) / cfg.n_layers:.0f}x the layers, "
    f"{v3.hidden_size / cfg.d_model:.0f}x the width)."
)

st.subheader("Accuracy vs cache size, every method")
sm = summary(s.model)
sm = sm.assign(label=sm["label"].map(method_name))
sc = figure(needle_summary_chart, sm, f"{s.model} at 256 tokens, accuracy averaged over needle depths")
show(sc, width="stretch", key=P + "summary")
downloads(sc, sm, "needle-summary", P + "dl_summary")
with st.expander("How each method compresses"):
    st.markdown(nd.__doc__.split("Methods (strength in brackets):")[1])
takeaways(tk.needle(s.model, label, hd, base, sm))
