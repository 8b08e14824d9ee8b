"""Chart builders (pure: data in, alt.Chart out) and offline export to PNG/SVG (vl-convert)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from core import accounting as acc
from core.specs import ModelSpec

GIB = 2**30
GPU_COLOR = "#a855f7"  # the memory line: purple, a colour no model line uses, visible on dark and light
MODEL_COLORS = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#06b6d4", "#ec4899"]
FONT = 14  # large enough to read when the chart is pasted into a slide
# 1, 4, ..., 256, 1K, 4K, ..., 1M (binary K and M, as context lengths are written)
TOKENS_LABEL = (
    "datum.value >= 1048576 ? datum.value / 1048576 + 'M' : "
    "datum.value >= 1024 ? datum.value / 1024 + 'K' : datum.value"
)


def cache_vs_context(
    models: dict[str, ModelSpec], contexts: list[int], kv_dtype: str = "bf16", batch: int = 1
) -> pd.DataFrame:
    """Long table: model, design, context, KV cache bytes and GiB."""
    rows = []
    for label, spec in models.items():
        for n in contexts:
            b = acc.kv_cache_bytes(spec, n, batch, kv_dtype)
            rows.append({"model": label, "design": spec.design, "context": n, "kv_bytes": b, "kv_gib": b / GIB})
    return pd.DataFrame(rows)


def _style(chart: alt.Chart) -> alt.Chart:
    return (
        chart.configure_axis(labelFontSize=FONT, titleFontSize=FONT)
        .configure_legend(labelFontSize=FONT, titleFontSize=FONT, labelLimit=400, orient="bottom", columns=2)
        .configure_title(fontSize=FONT + 2)
    )


def cache_chart(
    df: pd.DataFrame, gpu_label: str, gpu_gib: float, context: int, title: str = "KV cache vs context"
) -> alt.Chart:
    """Log-log KV cache (GiB) vs context, a line per model, the GPU's memory as a dashed rule and the
    chosen context as a vertical rule."""
    x = alt.X(
        "context:Q",
        scale=alt.Scale(type="log", base=2, domain=[int(df.context.min()), int(df.context.max())]),
        axis=alt.Axis(title="context (tokens, log scale)", values=[4**k for k in range(11)], labelExpr=TOKENS_LABEL),
    )
    y = alt.Y("kv_gib:Q", scale=alt.Scale(type="log"), axis=alt.Axis(title="KV cache (GiB, log scale)", format="~g"))
    lines = (
        alt.Chart(df)
        .mark_line(strokeWidth=3)
        .encode(
            x=x,
            y=y,
            color=alt.Color("model:N", title=None, scale=alt.Scale(range=MODEL_COLORS)),
            tooltip=[
                "model",
                "design",
                alt.Tooltip("context:Q", format=","),
                alt.Tooltip("kv_gib:Q", format=".3~f", title="GiB"),
            ],
        )
    )
    gpu = pd.DataFrame({"gib": [gpu_gib], "label": [f"{gpu_label}: {gpu_gib:.1f} GiB"]})
    rule = alt.Chart(gpu).mark_rule(strokeDash=[8, 4], color=GPU_COLOR, strokeWidth=2).encode(y="gib:Q")
    text = (
        alt.Chart(gpu)
        .mark_text(align="left", dx=6, dy=-8, color=GPU_COLOR, fontSize=FONT, fontWeight="bold")
        .encode(y="gib:Q", x=alt.value(0), text="label:N")
    )
    now = alt.Chart(pd.DataFrame({"context": [context]})).mark_rule(color="#6b7280").encode(x="context:Q")
    return _style(alt.layer(lines, rule, text, now).properties(width=720, height=420, title=title))


def to_png(chart: alt.TopLevelMixin | str, scale: float = 2.0) -> bytes:
    """PNG of a chart (or of its Vega-Lite JSON), rendered offline by vl-convert."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(chart if isinstance(chart, str) else chart.to_json(), scale=scale)


def to_svg(chart: alt.TopLevelMixin | str) -> str:
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart if isinstance(chart, str) else chart.to_json())
