"""Inside MLA: MHA, GQA and MLA (materialised and absorbed) built from the sliders, run, and measured."""

import numpy as np
import pandas as pd
import streamlit as st
import torch

from app_pages import workshop_ui as ws
from app_pages.figures import downloads, figure, show
from app_pages.layout import table, takeaways
from app_pages.links import link_state
from app_pages.resources import preset
from core.accounting import totals as acc
from core.lab import inside
from core.lab.inside import (
    InsideConfig,
    agreement,
    dataflow_dot,
    random_input,
    rope_experiment,
    run_designs,
    text_input,
)
from core.model.units import fmt_bytes
from core.view import glossary
from core.view import takeaways as tk
from core.view.attention_charts import attention_heatmap
from core.view.compute_charts import flops_chart
from core.view.frames import heatmap_frame, mla_layout_table
from core.view.text import plain
from core.view.urlcodec import dump_state
from core.view.urlstate import WIDTHS, InsideState

P = "inside."
DESIGNS = ("MHA", "GQA", "MLA materialised", "MLA absorbed")
DTYPES = {"fp64": torch.float64, "fp32": torch.float32}


GRIDS = {  # the wide controls: an exact number, snapped to the step the layers take
    "head_dim": range(4, 257, 4),
    "kv_lora_rank": range(4, 1025, 4),
    "rope_dim": range(0, 129, 2),
    "q_lora_rank": range(0, 2049, 8),
    "seq_len": range(4, 1025, 4),
}


def _snap(field: str, label: str) -> None:
    """A typed value off the grid becomes the nearest step (said under the controls)."""
    grid, v = GRIDS[field], st.session_state[P + field]
    snapped = min(max(grid.start + round((v - grid.start) / grid.step) * grid.step, grid.start), grid[-1])
    if snapped != v:
        st.session_state[P + field] = snapped
        st.session_state[P + "snapped"] = f"{label}: {v:,} is not offered; using {snapped:,} (steps of {grid.step})."


def exact(col, label: str, field: str, help: str) -> None:
    """A number input for a control with hundreds of stops: type the value, or step with +/-."""
    grid = GRIDS[field]
    col.number_input(label, grid.start, grid[-1], step=grid.step, key=P + field, help=help,
                     on_change=_snap, args=(field, label))  # fmt: skip


def controls() -> InsideState:
    ss = st.session_state
    a, b, c, d = st.columns(4)
    a.select_slider("Model width E", list(WIDTHS), key=P + "d_model", help=glossary.tip("model width"))
    b.slider("Query heads", 1, 64, key=P + "n_heads", help=glossary.tip("head"))
    divisors = [g for g in range(1, ss[P + "n_heads"] + 1) if ss[P + "n_heads"] % g == 0]
    if ss[P + "n_kv_heads"] not in divisors:  # keep GQA valid when the head count changes
        ss[P + "n_kv_heads"] = max(g for g in divisors if g <= ss[P + "n_kv_heads"])
    c.select_slider("KV heads (GQA)", divisors, key=P + "n_kv_heads", help=glossary.tip("kv head"))
    exact(d, "Head dim", "head_dim", glossary.tip("head"))
    e, f, g, h = st.columns(4)
    exact(e, "Latent rank d_c", "kv_lora_rank", glossary.tip("latent"))
    f.slider("Rope dim d_r", 0, 128, step=2, key=P + "rope_dim", help=glossary.tip("rope key"))
    exact(g, "Query rank (0: full)", "q_lora_rank", glossary.tip("query rank"))
    exact(h, "Sequence length T", "seq_len", "Tokens in the prompt; one more is decoded after it.")
    if note := ss.pop(P + "snapped", None):
        st.caption(plain(note, 200))
    i, j, k, _ = st.columns(4)
    i.radio("Input", ["random", "text"], key=P + "source", horizontal=True,
            format_func={"random": "seeded random", "text": "real text (MiniLM)"}.get)  # fmt: skip
    j.radio("Precision", ["fp64", "fp32"], key=P + "precision", horizontal=True, help="fp64 shows exact agreement")
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    if ss[P + "device"] not in devices:
        ss[P + "device"] = "cpu"
    k.radio("Device", devices, key=P + "device", horizontal=True)
    if ss[P + "heat_head"] >= ss[P + "n_heads"]:  # the heatmap head must exist (before the URL is written)
        ss[P + "heat_head"] = 0
    values = {f: ss[P + f] for f in InsideState.__dataclass_fields__ if f != "notices"}
    return InsideState(**values)


def run(cfg: InsideConfig, source: str, precision: str, device: str) -> dict:
    """Plain data for the page: caches, FLOPs, agreement and attention maps of every design, each layer run
    (and cached) apart, keyed on only what it reads: the heatmap and RoPE controls rerun nothing, a
    latent-rank move reruns MLA only, a kv-heads move GQA only."""
    parts = [run_part(inside.part_config(cfg, p), p, source, precision, device) for p in inside.PARTS]
    return {
        "runs": {k: v for part in parts for k, v in part["runs"].items()},
        "agree": parts[-1]["agree"],
        "rope": parts[-1]["rope"],
    }


@st.cache_data(max_entries=48, show_spinner="Running the layers...")
def run_part(cfg: InsideConfig, part: str, source: str, precision: str, device: str) -> dict:
    x = text_input(cfg.seq_len + 1, cfg.d_model) if source == "text" else random_input(cfg)
    runs = run_designs(cfg, x, DTYPES[precision], device, parts=(part,))
    mla = part == "MLA"
    return {
        "agree": agreement(runs["MLA materialised"].out, runs["MLA absorbed"].out) if mla else None,
        "rope": rope_experiment(cfg, x[:, :-1], DTYPES[precision]) if mla else None,
        "runs": {
            k: {
                "cached": [(c.name, c.shape, c.nbytes) for c in r.cached],
                "nbytes": r.cache_nbytes,
                "formula": r.cache_formula,
                "prefill": r.prefill_flops,
                "prefill_formula": r.prefill_formula,
                "decode": r.decode_flops,
                "decode_formula": r.decode_formula,
                "probs": r.probs.numpy().astype(np.float32),  # at most 128 x 128 per head
                "block": r.probs_block,
            }
            for k, r in runs.items()
        },  # fmt: skip
    }


def config(s: InsideState) -> InsideConfig:
    return InsideConfig(
        s.d_model, s.n_heads, s.n_kv_heads, s.head_dim, s.kv_lora_rank, s.rope_dim, s.q_lora_rank or None, s.seq_len
    )


def cache_table(res: dict, s: InsideState) -> pd.DataFrame:
    rows = []
    for k, r in res["runs"].items():
        rows.append(
            {
                "design": k,
                "cached tensors (shape)": ", ".join(f"{n} {tuple(sh)}" for n, sh, _ in r["cached"]),
                "measured nbytes": f"{r['nbytes']:,}",
                "formula": f"{r['formula']:,}",
                "per token": fmt_bytes(r["nbytes"] // s.seq_len),
                "match": "yes" if r["nbytes"] == r["formula"] else "NO",
            }
        )
    return pd.DataFrame(rows)


def flops_table(res: dict, s: InsideState) -> pd.DataFrame:
    rows = []
    for k, r in res["runs"].items():
        rows.append(
            {
                "design": k,
                f"prefill {s.seq_len} tokens (measured)": f"{r['prefill']:,}",
                "prefill (formula)": f"{r['prefill_formula']:,}",
                "decode 1 token (measured)": f"{r['decode']:,}",
                "decode (formula)": f"{r['decode_formula']:,}",
                "match": "yes" if (r["prefill"], r["decode"]) == (r["prefill_formula"], r["decode_formula"]) else "NO",
            }
        )
    return pd.DataFrame(rows)


def link() -> InsideState:
    """The view from the widgets, written into the address bar (sections rerun alone write it too)."""
    ss = st.session_state
    s = InsideState(**{f: ss[P + f] for f in InsideState.__dataclass_fields__ if f != "notices"})
    ws.publish(dump_state(s))
    return s


@st.fragment
def rope_section(cfg: InsideConfig) -> None:
    """The toggle reruns this section only."""
    st.toggle("Apply RoPE to the key rebuilt from the latent instead", key=P + "coupled_rope")
    s = link()
    r = run_part(inside.part_config(cfg, "MLA"), "MLA", s.source, s.precision, s.device)["rope"]
    if s.coupled_rope:
        st.error(
            "Absorbing W_UK into the query now gives the wrong answer: relative output error "
            f"**{r.coupled_error:.2%}**. The score q_s . R_t W_UK c_t has the key's rotation R_t between the query "
            "and W_UK, so W_UK cannot be folded into the query once: it would have to be redone for every (query, "
            "key) pair."
        )
    else:
        st.success(
            "With the decoupled rope key, absorbed equals materialised: relative output error "
            f"{r.decoupled_error:.1e}. Turn the toggle on to see what breaks."
        )
    st.markdown(
        f"The price of decoupling: a {s.rope_dim}-wide rope key per token, {fmt_bytes(r.rope_key_bytes_per_token)} "
        f"next to the {fmt_bytes(r.latent_bytes_per_token)} latent "
        f"({r.rope_key_bytes_per_token / max(r.latent_bytes_per_token, 1):.0%} more cache), "
        "and 2 n_h d_r more FLOPs per pair."
    )


@st.fragment
def attention_pattern(cfg: InsideConfig) -> None:
    """The design and head rerun this section only."""
    s = link()
    h1, h2 = st.columns(2)
    h1.selectbox("Design", DESIGNS, key=P + "heat_design", help=glossary.tip("materialised"))
    h2.slider("Head", 0, max(s.n_heads - 1, 1), key=P + "heat_head", disabled=s.n_heads == 1)
    design = st.session_state[P + "heat_design"]
    part = next(p for p, designs in inside.PARTS.items() if design in designs)  # only that layer's cached run
    heat = run_part(inside.part_config(cfg, part), part, s.source, s.precision, s.device)["runs"][design]
    hd = heatmap_frame(heat["probs"], min(st.session_state[P + "heat_head"], s.n_heads - 1), block=heat["block"])
    title = f"{st.session_state[P + 'heat_design']}, head {st.session_state[P + 'heat_head']}"
    hm = figure(attention_heatmap, hd, title)
    show(hm, key=P + "heatmap")
    downloads(hm, hd, "attention-heatmap", P + "dl_heat")


st.title("Inside MLA")
ws.lesson("inside_mla", P)
init = link_state(
    InsideState,
    P,
    grids=GRIDS,
)
if init.device == "cuda" and not torch.cuda.is_available():
    st.warning("Link: device cuda is not available on this server; running on the CPU.")
s = controls()
try:
    cfg = config(s)
except ValueError as e:
    st.error(plain(e, 400))
    st.stop()
ws.publish(dump_state(s))
res = run(cfg, s.source, s.precision, s.device)
runs = res["runs"]

st.subheader("What each design caches")
table(cache_table(res, s))
mla = cfg.specs()["MLA"]
latent_width = mla.kv_lora_rank + mla.qk_rope_head_dim
st.latex(
    rf"\text{{MHA}}: 2\,n_h\,d_h = 2 \times {s.n_heads} \times {s.head_dim} = {2 * s.n_heads * s.head_dim}"
    rf"\quad \text{{GQA}}: 2\,n_{{kv}}\,d_h = {2 * s.n_kv_heads * s.head_dim}"
    rf"\quad \text{{MLA}}: d_c + d_r = {mla.kv_lora_rank} + {mla.qk_rope_head_dim} = {latent_width}"
    r"\ \text{numbers per token}"
)
st.caption(
    f"Measured: the `nbytes` of the cache tensors after a prefill of {s.seq_len} tokens in {s.precision}. "
    "MLA materialised caches per-head K and V expanded from the latent (as Hugging Face's code does); absorbed "
    "caches the latent."
)

st.subheader("DeepSeek-V3's cache per token and layer: MLA vs MHA with the same heads")
v3 = preset("deepseek-v3")
layouts = mla_layout_table(v3)
table(layouts.style.format("{:,}", subset=list(layouts.columns[3:5])).format("{:.1f}x", subset=[layouts.columns[5]]))
m3 = v3.attention[0]
st.caption(
    f"The same numbers at DeepSeek-V3's real shapes, from the accounting the layers above are checked against. An "
    f"MHA layer of equal heads caches {m3.n_heads} keys of {m3.qk_nope_head_dim} + {m3.qk_rope_head_dim} = "
    f"{m3.qk_head_dim} and {m3.n_heads} values of {m3.v_head_dim} per token, what the materialised layout stores; "
    f"the latent is {m3.kv_lora_rank} + {m3.qk_rope_head_dim} numbers. vLLM's fp8_ds_mla layout stores the latent "
    "in fp8 with one fp32 scale per 128 values beside a bf16 rope key."
)

st.subheader("Data flow, with the live shapes")
tabs = st.tabs(list(DESIGNS))
for tab, design in zip(tabs, DESIGNS, strict=True):
    with tab:
        st.graphviz_chart(dataflow_dot(design, cfg), width="stretch")
st.caption("Blue: cached. Amber: rebuilt from the cache. Grey: computed and thrown away.")

st.subheader("Attention block FLOPs: counted by PyTorch, next to the formula")
table(flops_table(res, s))
fl = pd.DataFrame(
    [{"design": k, "step": f"prefill {s.seq_len}", "flops": r["prefill"]} for k, r in runs.items()]
    + [{"design": k, "step": "decode 1", "flops": r["decode"]} for k, r in runs.items()]
)
flc = figure(flops_chart, fl, "Attention block FLOPs, measured (FlopCounterMode)")
show(flc, key=P + "flops_chart")
downloads(flc, fl, "inside-flops", P + "dl_flops")

st.subheader("Materialised vs absorbed: same weights, same function")
a = res["agree"]
n, ab = runs["MLA materialised"], runs["MLA absorbed"]
c1, c2, c3, c4 = st.columns(4)
c1.metric("max |materialised - absorbed|", f"{a.max_abs_diff:.1e}", help=glossary.tip("absorbed"))
c2.metric("1 - cosine similarity", f"{1 - a.cosine:.1e}", help=glossary.tip("cosine similarity"))
c3.metric(
    "cache, materialised / absorbed",
    f"{n['nbytes'] / ab['nbytes']:.1f}x",
    f"{fmt_bytes(n['nbytes'])} vs {fmt_bytes(ab['nbytes'])}",
    delta_color="off",
    delta_arrow="off",
    help=glossary.tip("materialised"),
)
c4.metric(
    "prefill FLOPs, absorbed / materialised",
    f"{ab['prefill'] / n['prefill']:.2f}x",
    f"decode {ab['decode'] / n['decode']:.2f}x",
    delta_color="off",
    delta_arrow="off",
    help=glossary.tip("prefill"),
)
per_pair_n, per_pair_a = acc.pair_flops(mla, "materialised"), acc.pair_flops(mla, "absorbed")
st.markdown(
    "Per (query, cached token) pair the materialised attention core costs 2 n_h (d_nope + d_r + d_v) = "
    f"**{per_pair_n:,}** FLOPs and "
    f"the absorbed attention core 2 n_h (2 d_c + d_r) = **{per_pair_a:,}**. Absorbed reads a {latent_width}"
    f"-wide latent per token instead of {s.n_heads} x ({s.head_dim + s.rope_dim} + {s.head_dim}) numbers: at decode, "
    "where bytes read decide the time, absorbed wins; in a long prefill, where every query meets every key and "
    + (
        "FLOPs decide, materialised wins here."
        if per_pair_n < per_pair_a
        else "FLOPs decide, absorbed still wins here."
    )
)


st.subheader("Why RoPE is decoupled")
rope_section(cfg)


st.subheader("Attention pattern")
attention_pattern(cfg)
tokens = "MiniLM embeddings of the shipped text" if s.source == "text" else "seeded random"
st.caption(f"Device: {s.device}. Precision: {s.precision}. Tokens: {tokens}.")
takeaways(tk.inside_mla(s, runs))
