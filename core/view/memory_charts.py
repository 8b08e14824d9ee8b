"""Charts of what a cache and a GPU hold (Overview, Memory planner, Hybrid models): the cache vs context, memory
per GPU, the cache's breakdown by layer type and what each hybrid layer holds."""

from __future__ import annotations

import altair as alt
import pandas as pd

from core.view.theme import FONT, GPU_COLOR, context_x, model_colors


def cache_chart(  # unstyled: wrap in style() before showing
    df: pd.DataFrame, gpu_label: str, gpu_gib: float, context: int, title: str = "KV cache vs context"
) -> alt.Chart:
    """Log-log KV cache (GiB) vs context, a line per model, the GPU's memory as a dashed rule and the
    chosen context as a vertical rule. Models with a fixed-size state (linear attention, Mamba) get a
    second, dotted line in their colour for the state, which does not grow."""
    x = context_x().scale(type="log", base=2, domain=[int(df.context.min()), int(df.context.max())])
    stateful = "part" in df and (df["part"] == "fixed state").any()
    y_title = "KV cache and fixed state (GiB, log scale)" if stateful else "KV cache (GiB, log scale)"
    y = alt.Y("kv_gib:Q", scale=alt.Scale(type="log"), axis=alt.Axis(title=y_title, format="~g"))
    encoding = dict(
        x=x,
        y=y,
        color=alt.Color("model:N", title=None, scale=model_colors(df["model"]), sort=None),
        tooltip=[
            "model",
            "design",
            *(["part"] if stateful else []),
            alt.Tooltip("context:Q", format=","),
            alt.Tooltip("kv_gib:Q", format=".3~f", title="GiB"),
        ],
    )
    if stateful:
        encoding["strokeDash"] = alt.StrokeDash(
            "part:N",
            title=None,
            scale=alt.Scale(domain=["KV cache", "fixed state"], range=[[1, 0], [2, 3]]),
        )
        encoding["detail"] = "part:N"
    lines = alt.Chart(df).mark_line(strokeWidth=3).encode(**encoding)
    gpu = pd.DataFrame({"gib": [gpu_gib], "label": [f"{gpu_label}: {gpu_gib:.1f} GiB"]})
    rule = alt.Chart(gpu).mark_rule(strokeDash=[8, 4], color=GPU_COLOR, strokeWidth=2).encode(y="gib:Q")
    text = (
        alt.Chart(gpu)
        .mark_text(align="left", dx=6, dy=-8, color=GPU_COLOR, fontSize=FONT, fontWeight="bold")
        .encode(y="gib:Q", x=alt.value(0), text="label:N")
    )
    now = alt.Chart(pd.DataFrame({"context": [context]})).mark_rule(color="#6b7280").encode(x="context:Q")
    return alt.layer(lines, rule, text, now).properties(width=720, height=420, title=title)


PART_COLORS = {
    "weights": "#64748b",
    "KV cache": "#2563eb",
    "fixed state": "#7c3aed",
    "reserved": "#f59e0b",
    "free": "#10b981",
    "over capacity": "#dc2626",
}


def memory_chart(df: pd.DataFrame, usable_gib: float, label: str, title: str = "Memory on the GPUs") -> alt.Chart:
    """Horizontal stacked bars per model; the usable memory as a dashed rule."""
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("model:N", title=None, sort=None, axis=alt.Axis(labelLimit=300)),
            x=alt.X("sum(gib):Q", title="GiB", stack="zero"),
            color=alt.Color(
                "part:N",
                title=None,
                scale=alt.Scale(domain=list(PART_COLORS), range=list(PART_COLORS.values())),
                legend=alt.Legend(orient="top", columns=5),
            ),
            order=alt.Order("order:Q"),
            tooltip=["model", "part", alt.Tooltip("gib:Q", format=",.2f", title="GiB")],
        )
    )
    cap = pd.DataFrame({"gib": [usable_gib], "label": [label]})
    rule = alt.Chart(cap).mark_rule(strokeDash=[8, 4], color=GPU_COLOR, strokeWidth=2).encode(x="gib:Q")
    text = (
        alt.Chart(cap)
        .mark_text(align="right", dx=-6, dy=-6, color=GPU_COLOR, fontSize=FONT, fontWeight="bold", baseline="bottom")
        .encode(x="gib:Q", y=alt.value(0), text="label:N")
    )
    return alt.layer(bars, rule, text).properties(width=720, height=alt.Step(48), title=title)


def breakdown_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Share of each layer type and tensor in each model's cache (normalised bars)."""
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("model:N", title=None, sort=None, axis=alt.Axis(labelLimit=300)),
            x=alt.X("sum(bytes):Q", stack="normalize", title="share of what is kept", axis=alt.Axis(format="%")),
            color=alt.Color("part:N", title=None, scale=alt.Scale(scheme="tableau20")),
            tooltip=[
                "model",
                "part",
                "layers",
                alt.Tooltip("rows per layer:Q", format=","),
                alt.Tooltip("gib:Q", format=",.3f", title="GiB"),
            ],
        )
        .properties(width=720, height=alt.Step(40), title=title)
    )


HOLDS_COLORS = {"attention (GQA)": "#2563eb", "Gated DeltaNet": "#7c3aed", "Mamba-2": "#10b981"}


def held_chart(
    df: pd.DataFrame, value: str, measured: str, title: str, y_title: str, axis_format: str = "~g"
) -> alt.Chart:
    """Log-log: what each layer holds (or computes) vs context; the accounting as a line, the measurement
    as points on it (core.lab.hybrid.run's table)."""
    x = context_x().scale(type="log", base=2, domain=[1, int(df.context.max())])
    color = alt.Color(
        "layer:N", title=None, scale=alt.Scale(domain=list(HOLDS_COLORS), range=list(HOLDS_COLORS.values()))
    )
    y = alt.Y(f"{value}:Q", scale=alt.Scale(type="log"), axis=alt.Axis(title=y_title, format=axis_format))
    tip = ["layer", "holds", alt.Tooltip("context:Q", format=","), alt.Tooltip(f"{measured}:Q", format=",.6~g")]
    line = alt.Chart(df).mark_line(strokeWidth=3).encode(x=x, y=y, color=color, tooltip=tip)
    points = (
        alt.Chart(df)
        .mark_point(size=90, filled=True, stroke="white", strokeWidth=1)
        .encode(x=x, y=alt.Y(f"{measured}:Q"), color=color, tooltip=tip)
    )
    return alt.layer(line, points).properties(width=720, height=340, title=title)
