"""Compute & roofline: FLOPs and bytes per decoded token, arithmetic intensity on GPU rooflines, decode
timed on this machine, and where materialised, expanded and absorbed MLA cross over."""

import pandas as pd
import streamlit as st
import torch

from app_pages import workshop_ui as ws
from app_pages.figures import chart_spec, downloads, show
from app_pages.layout import table, takeaways
from app_pages.links import link_state
from core.accounting import mla_paths
from core.accounting import roofline as rl
from core.lab import measure
from core.model.gpus import GPUS
from core.model.presets import load_preset
from core.model.units import fmt_bytes
from core.view import glossary
from core.view import takeaways as tk
from core.view.compute_charts import per_token_chart, roofline_chart
from core.view.frames import CONTEXTS
from core.view.theme import token_label
from core.view.urlcodec import dump_state
from core.view.urlstate import ComputeState

P = "compute."
# Headers of the crossover table: the engine's path names are the page's words, so a path's columns are its
# name and the quantity ("expanded_flops" -> "expanded FLOPs").
CROSSOVER_HEADERS = {
    "query_len": "new tokens",
    **{f"{p}_flops": f"{p} FLOPs" for p in mla_paths.PATHS},
    **{f"{p}_bytes": f"{p} cache bytes" for p in mla_paths.PATHS},
    "fewer_flops": "fewer FLOPs (absorbed or expanded)",
    "fewer_bytes": "fewer bytes (absorbed or materialised)",
}
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
QUANTITIES = ("decode: attention FLOPs", "decode: cache bytes read", "prefill: attention FLOPs per token")


@st.cache_resource
def designs() -> list[rl.RooflineDesign]:
    return rl.designs(load_preset)


@st.cache_data
def per_token() -> pd.DataFrame:
    return rl.per_token_table(designs(), CONTEXTS)


@st.cache_resource(show_spinner="Measuring this machine's copy bandwidth and matmul rate...")
def machine(device: str) -> dict:
    return {
        "bandwidth": measure.copy_bandwidth(device),
        "peak": measure.matmul_rate(device),
        "llc": measure.last_level_cache_bytes(device),
    }


@st.cache_data(show_spinner=False, max_entries=64)
def measured_row(device: str, label: str, n: int) -> dict:
    """One design timed at one context (cached apart: adding a context times only the new ones)."""
    m = machine(device)
    r = measure.decode_benchmark(measure.DESIGNS[label], n, 1, device, bandwidth=m["bandwidth"], peak_flops=m["peak"])
    return {
        "design": label,
        "context": n,
        "measured ms": r.seconds * 1e3,
        "predicted ms (bytes / bandwidth)": r.predicted_seconds * 1e3,
        "roofline ms": r.roofline_seconds * 1e3,
        "cache read": fmt_bytes(r.bytes_read),
        "% of copy bandwidth": 100 * r.fraction_of_bandwidth,
        "bound": r.bound,
        "why": measure.explain(r, m["llc"]),
    }


def measured(device: str, contexts: tuple[int, ...]) -> pd.DataFrame:
    """Every design at every context, with a progress bar while the new ones are timed."""
    pairs = [(label, n) for label in measure.DESIGNS for n in contexts]
    bar = st.progress(0.0, text=f"Timing {len(pairs)} decode steps...")
    rows = []
    for i, (label, n) in enumerate(pairs, 1):
        rows.append(measured_row(device, label, n))
        bar.progress(i / len(pairs), text=f"Timed {label} at {token_label(n)} tokens ({i} of {len(pairs)})")
    bar.empty()
    return pd.DataFrame(rows)


@st.cache_data(max_entries=512, show_spinner=False)
def roof_view(gpu_name: str, context: int, batch: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The designs on one GPU's roofline at one context and batch, and the whole step's table as shown (numbers
    formatted): once per view for the whole server, since a room asks for the same views again and again."""
    pts = rl.roofline_points(designs(), GPUS[gpu_name], context, batch)
    whole = pts[pts.what == "whole decode step"][["design", "intensity", "bound", "step_ms", "tokens_per_s"]]
    shown = pd.DataFrame(
        {
            "design": whole["design"],
            "FLOP/byte": whole["intensity"].map("{:.1f}".format),
            "bound": whole["bound"],
            "step ≥ ms": whole["step_ms"].map("{:.2f}".format),
            "tokens/s ≤": whole["tokens_per_s"].map("{:,.0f}".format),
        }
    )
    return pts, shown


@st.cache_data(max_entries=8, show_spinner=False)
def per_token_figure(quantity: str, big: bool) -> dict:
    """The per-token chart's spec, keyed on what it shows (its table is fixed), not on a digest of the table."""
    return chart_spec(
        per_token_chart, (per_token(), quantity, f"{quantity}, one sequence, all layers, bf16 cache"), {}, big
    )


@st.cache_data(max_entries=256, show_spinner=False)
def roofline_figure(gpu_name: str, context: int, batch: int, big: bool) -> dict:
    pts, _ = roof_view(gpu_name, context, batch)
    title = f"{gpu_name}: batch {batch}, context {context:,} (datasheet roofs)"
    return chart_spec(roofline_chart, (rl.roof(GPUS[gpu_name]), pts, title), {}, big)


@st.cache_data(max_entries=512, show_spinner=False)
def view_takeaways(gpu_name: str, context: int, batch: int) -> list[str]:
    pts, _ = roof_view(gpu_name, context, batch)
    return tk.compute(ComputeState(gpu_name, context, batch), GPUS[gpu_name], pts)


@st.cache_data(show_spinner=False)
def crossover() -> tuple[pd.DataFrame, float]:
    """Materialised, expanded and absorbed MLA with DeepSeek-V2-Lite's shapes (fixed: no control changes it),
    and the query length below which absorbing costs fewer FLOPs at 128K tokens."""
    spec = mla_paths.V2_LITE_MLA
    cross = mla_paths.mla_crossover(spec, [1024, 16384, 131072], (1,), (1, 16, 128, 512, 1024))
    shown = (
        cross[["context", "query_len", "absorbed_flops", "expanded_flops", "materialised_flops", "absorbed_bytes",
               "materialised_bytes", "fewer_flops", "fewer_bytes"]]
        .rename(columns=CROSSOVER_HEADERS)
    )  # fmt: skip
    return shown, mla_paths.query_len_crossover(spec, 131072)


@st.fragment
def view() -> None:
    """The page below the lesson: a move reruns this alone, not the navigation and the lesson."""
    a, b, c = st.columns([1, 2, 1])
    a.selectbox("GPU", list(GPUS), key=P + "gpu", help=glossary.tip("GPU"))
    b.select_slider(
        "Context (tokens, log scale)", CONTEXTS, key=P + "context", format_func=token_label,
        help=glossary.tip("context"),
    )  # fmt: skip
    c.select_slider("Batch (sequences)", BATCHES, key=P + "batch", help=glossary.tip("batch"))
    ss = st.session_state
    gpu = GPUS[ss[P + "gpu"]]

    st.subheader("Per decoded token: FLOPs and bytes vs context")
    st.radio("Show", QUANTITIES, key=P + "quantity", horizontal=True, help=glossary.tip("attention core"))
    s = ComputeState(ss[P + "gpu"], ss[P + "context"], ss[P + "batch"], ss[P + "quantity"])
    ws.publish(dump_state(s))
    pt = per_token()
    ptc = per_token_figure(s.quantity, ws.presenting())
    show(ptc, width="stretch", key=P + "per_token")
    downloads(ptc, pt, "per-token", P + "dl_pt")
    st.caption(
        "MHA and MQA are Llama-3.1-70B's shapes with 64 and 1 kv heads; MLA, DSA and V4 are DeepSeek-V3, V3.2 and "
        "V4-Pro from their configs. Attention FLOPs are the attention core's (scores and value mixing over the "
        "cached tokens, no projections). Prefill: a causal prefill of N tokens, divided by N."
    )

    st.subheader(f"Roofline on {s.gpu}: where decode sits")
    pts, whole = roof_view(s.gpu, s.context, s.batch)
    rc = roofline_figure(s.gpu, s.context, s.batch, ws.presenting())
    show(rc, width="stretch", key=P + "roofline")
    downloads(rc, pts, "roofline", P + "dl_roof")
    ridge = gpu.bf16_tflops / gpu.bandwidth_tb_s
    table(whole)
    core = pts[pts.what == "attention core"].set_index("design")["intensity"]
    n_h = next(d for d in designs() if d.label.startswith("MLA absorbed")).spec.attention[0].n_heads
    st.markdown(
        f"The ridge of {s.gpu} sits at **{ridge:.0f} FLOP/byte** ({gpu.bf16_tflops:,.0f} TFLOP/s over "
        f"{gpu.bandwidth_tb_s} TB/s). GQA's attention core does about n_h / n_kv = "
        f"**{core['GQA (Llama-3.1-70B)']:.0f}** FLOPs per byte it reads at any batch (each sequence reads its own "
        f"cache); absorbed MLA about 2 n_h = 2 x {n_h} = {2 * n_h}; exactly, 2 n_h (2 d_c + d_r) FLOPs per "
        f"(d_c + d_r) x 2 bf16 bytes = **{core['MLA absorbed (DeepSeek-V3)']:.0f}**, a little under 2 n_h because "
        "the rope key is read but enters only the scores, not the value mixing. That is close to the ridge even at "
        "batch 1. The whole step's intensity grows with batch because the weights are read once for all sequences."
    )

    st.subheader("Measure here")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = st.multiselect(
        "Contexts to time", [1024, 4096, 16384, 65536], default=[1024, 4096, 16384], key=P + "measure_contexts",
        format_func=token_label,
    )  # fmt: skip
    st.toggle(f"Time decode steps on this {device.upper()}", key=P + "measure")
    if st.session_state[P + "measure"] and chosen:
        m = machine(device)
        st.markdown(
            f"This {device.upper()}: copy bandwidth **{m['bandwidth'] / 1e9:,.1f} GB/s** (a large tensor copy, read + "
            f"write), matmul **{m['peak'] / 1e9:,.0f} GFLOP/s**"
            + (f", last-level cache {fmt_bytes(m['llc'])}" if m["llc"] else "")
            + ". Layers: DeepSeek-V2-Lite's attention (16 heads, d_c 512, d_r 64) and MHA/GQA/MQA of the same width."
        )
        md = measured(device, tuple(sorted(chosen)))
        table(
            md.style.format({"measured ms": "{:.3f}", "predicted ms (bytes / bandwidth)": "{:.3f}",
                             "roofline ms": "{:.3f}", "% of copy bandwidth": "{:.0f}%"}),
            # wide enough for "MLA materialised" (the grid sizes columns to the header otherwise), and kept in
            # view when the timing columns scroll
            column_config={"design": st.column_config.TextColumn("design", width="medium", pinned=True)},
        )  # fmt: skip
        st.caption(
            "Median of repeated runs after warm-up, the last-level cache flushed before each; the decode kernels "
            "read each cached byte once, in a single pass. The project's benchmark times the same kernels at 4K-64K "
            "tokens, outside the app."
        )
    else:
        st.info("Timing runs real decode steps on this machine (a few seconds each); switch it on to start.")

    st.subheader("Materialised, expanded or absorbed MLA: who wins where")
    cross, query_len = crossover()
    table(cross)
    st.markdown(
        "With DeepSeek-V2-Lite's shapes, absorbing W^UK and W^UV costs fewer FLOPs than expanding keys and values "
        f"from the latent at every step (expanded) while fewer than about **{query_len:.0f}** query tokens arrive "
        "at once (decode, or a prompt fed a few tokens at a time); a long prefill is cheaper expanded. The absorbed "
        "path always reads the latent, the smallest cache: that is why DeepSeek decodes absorbed and prefills "
        "expanded. Materialised MLA "
        "caches the expanded keys and values once: the fewest FLOPs of all, and the largest cache to read."
    )
    takeaways(view_takeaways(s.gpu, s.context, s.batch))


st.title("Compute & roofline")
ws.lesson("compute", P)
link_state(ComputeState, P, grids={"context": CONTEXTS, "batch": BATCHES})
view()
