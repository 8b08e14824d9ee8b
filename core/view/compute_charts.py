"""Charts of what decoding costs in FLOPs and bytes (Compute & roofline, Inside MLA, Sparse & compressed): the
roofline with each design on it, quantities per token vs context, and measured FLOPs per design."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

from core.view.labels import Axis, direct_labels, label_frame, with_labels
from core.view.theme import NEUTRAL, context_x, model_colors

ROOF_HEIGHT = 440  # px of the roofline's plot; its labels are placed for this height


def roofline_chart(roof: pd.DataFrame, points: pd.DataFrame, title: str) -> alt.LayerChart:
    """Log-log roofline: the roof of one GPU, and each design's decode (whole step: filled square; attention core
    alone: hollow circle) at its arithmetic intensity. Designs often sit at the same place on the roof (MHA and
    materialised MLA both at 1 FLOP per byte), so every point carries its design's name as a direct label, placed
    by label_frame where it overlaps no other label, point or the roof, with a leader line to its point."""
    xa = Axis(float(roof.intensity.min()), float(roof.intensity.max()), log=True)
    low = min(roof.attainable_tflops.min(), points.attainable_tflops.min())
    ya = Axis(10 ** math.floor(math.log10(low)), 3 * float(roof.attainable_tflops.max()), log=True)
    x = alt.X(
        "intensity:Q",
        title="arithmetic intensity (FLOP per byte, log scale)",
        scale=xa.scale(),
        axis=alt.Axis(values=xa.decades(), format="~g"),
    )
    y = alt.Y(
        "attainable_tflops:Q",
        title="attainable TFLOP/s (log scale)",
        scale=ya.scale(),
        axis=alt.Axis(values=ya.decades(), format="~g"),
    )
    line = alt.Chart(roof).mark_line(color=NEUTRAL, strokeWidth=3).encode(x=x, y=y)
    colors = model_colors(points["design"])
    short = points.assign(name=points["design"].str.split(" (", n=1, regex=False).str[0])
    labels = label_frame(short, "intensity", "attainable_tflops", "name", xa, ya, ROOF_HEIGHT, lines=[roof])
    base = alt.Chart(with_labels(short, labels))
    pts = base.mark_point(size=150, strokeWidth=2.5, opacity=0.9).encode(
        x=x,
        y=y,
        color=alt.Color("design:N", title=None, scale=colors, sort=None),
        shape=alt.Shape(
            "what:N",
            title=None,
            scale=alt.Scale(domain=["whole decode step", "attention core"], range=["square", "circle"]),
            legend=alt.Legend(orient="top", columns=2),
        ),
        fill=alt.condition(
            "datum.what == 'whole decode step'", alt.Color("design:N", scale=colors), alt.value("transparent")
        ),
        tooltip=[
            "design",
            "what",
            alt.Tooltip("intensity:Q", format=".1f"),
            "bound",
            alt.Tooltip("step_ms:Q", format=".2f", title="step ms"),
            alt.Tooltip("tokens_per_s:Q", format=",.0f", title="tokens/s"),
        ],
    )
    text = direct_labels(base, "intensity", "attainable_tflops", "name", xa, ya, alt.Color("design:N", scale=colors))
    return alt.layer(line, pts, *text).properties(width=720, height=ROOF_HEIGHT, title=title)


def per_token_chart(df: pd.DataFrame, quantity: str, title: str) -> alt.Chart:
    """One quantity per decoded token vs context (log-log), a line per design."""
    d = df[(df["quantity"] == quantity) & (df["value"] > 0)]
    unit = "bytes" if "bytes" in quantity else "FLOPs"
    return (
        alt.Chart(d)
        .mark_line(strokeWidth=2.5)
        .encode(
            x=context_x(),
            y=alt.Y(
                "value:Q",
                title=f"{quantity} ({unit}, log scale)",
                scale=alt.Scale(type="log"),
                axis=alt.Axis(format="~s"),
            ),
            color=alt.Color("design:N", title=None, scale=model_colors(df["design"]), sort=None),
            tooltip=["design", alt.Tooltip("context:Q", format=","), alt.Tooltip("value:Q", format=".3s")],
        )
        .properties(width=720, height=400, title=title)
    )


def parts_vs_context(df: pd.DataFrame, title: str) -> alt.Chart:
    """FLOPs per decoded token by part vs context (log-log), in the model's colour, a line style per part. Zero
    values (no indexer yet below one compressed entry) are left out: a log axis has no zero."""
    return (
        alt.Chart(df[df["flops"] > 0])
        .mark_line(strokeWidth=2.5)
        .encode(
            x=context_x(),
            y=alt.Y(
                "flops:Q",
                title="FLOPs per decoded token (log scale)",
                scale=alt.Scale(type="log"),
                axis=alt.Axis(format="~s"),
            ),
            color=alt.Color("model:N", title=None, scale=model_colors(df["model"]), sort=None),
            strokeDash=alt.StrokeDash("part:N", title=None, scale=alt.Scale(range=[[1, 0], [10, 5], [2, 3]])),
            tooltip=["model", "part", alt.Tooltip("context:Q", format=","), alt.Tooltip("flops:Q", format=".3s")],
        )
        .properties(width=720, height=400, title=title)
    )


def flops_chart(df: pd.DataFrame, title: str) -> alt.TopLevelMixin:
    """Measured FLOPs per design, one panel per step (prefill, decode), each on its own linear scale."""
    colors = model_colors(df["design"])
    panels = []
    for step in df["step"].unique():
        panels.append(
            alt.Chart(df[df["step"] == step])
            .mark_bar()
            .encode(
                x=alt.X(
                    "design:N",
                    title=None,
                    sort=None,
                    axis=alt.Axis(labelAngle=-35, labelLimit=160, labelOverlap=False),
                ),
                y=alt.Y("flops:Q", title="FLOPs (measured)", axis=alt.Axis(format="~s")),
                color=alt.Color("design:N", scale=colors, legend=None),
                tooltip=["design", "step", alt.Tooltip("flops:Q", format=",")],
            )
            .properties(width=250, height=260, title=step)
        )
    return alt.hconcat(*panels).properties(title=title)
