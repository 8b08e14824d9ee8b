"""The real model's answer, at the top of a lesson that otherwise measures a stand-in (Quantized caches, Latent
rank, Needle): SmolLM2-135M's shipped sweep for this page's family, its Pareto picture and one takeaway."""

import pandas as pd
import streamlit as st

from app_pages.figures import downloads, figure, show
from core.lab import realquality as rq
from core.view import takeaways as tk
from core.view.real_charts import pareto_chart, pareto_frame


@st.cache_data(show_spinner=False)
def real_results() -> pd.DataFrame:
    """Every method on SmolLM2-135M (core.lab.realquality.frame of the shipped sweep)."""
    return rq.frame(rq.shipped())


def lead(families: tuple[str, ...], metric: str, key: str, context: int = 1024, y_cap: float | None = 10) -> None:
    """A bordered box: the families' methods on the real model (perplexity capped at `y_cap` times the
    uncompressed one, None for no cap), a takeaway with their numbers, and a link to the Real model page."""
    df = real_results()
    ref = df[df.family == "none"].set_index("method").loc["fp32"]
    shown = df[df.family.isin(("none", *families))]
    y_max = y_cap * ref.perplexity if metric == "perplexity" and y_cap else None
    d = pareto_frame(shown, metric, context, y_max)
    what = f"passkey in {context:,} tokens" if metric == "passkey retrieval" else "held-out Hamlet"
    with st.container(border=True):
        st.markdown(f"**First, on a real model: SmolLM2-135M ({', '.join(families)}, {what})**")
        reference = ref.perplexity if metric == "perplexity" else None
        sub = f"SmolLM2-135M-Instruct, Q4_1 weights dequantized; {what}"
        chart = figure(pareto_chart, d, metric, f"SmolLM2-135M: {metric} vs KV cache size", reference, sub)
        show(chart, key=key)
        downloads(chart, d, f"real-model-{'-'.join(f.replace(' ', '-') for f in families)}", key + ".dl")
        if len(d) < len(shown):
            st.caption(
                f"{len(shown) - len(d)} setting(s) above {y_cap:g}x the uncompressed perplexity are off the chart."
            )
        for line in tk.real_family(df, families, metric, context):
            st.markdown(f"- {line}")
        st.page_link(
            "app_pages/real_model.py",
            label="Every family, every number: the Real model page",
            icon=":material/model_training:",
        )
