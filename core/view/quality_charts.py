"""Charts of what a smaller cache costs in quality (Quantized caches, Needle in a haystack): bytes vs error on a
Pareto picture, the estimators' bias, rotated keys' channels, and retrieval accuracy by context and depth."""

from __future__ import annotations

import altair as alt
import pandas as pd

from core.view.frames import pareto_frontier
from core.view.labels import Axis, direct_labels, label_frame, with_labels
from core.view.theme import FONT, MODEL_COLORS, NEUTRAL

PARETO_HEIGHT = 420  # px of the Pareto plot; its labels are placed for this height


def pareto_chart(df: pd.DataFrame, x: str, y: str, title: str) -> alt.LayerChart:
    """Bytes per token vs error, one point per scheme with its name as a direct label (placed by label_frame so
    no two labels, and no label and a point or the frontier, overlap), the Pareto frontier as a line."""
    front_mask = pareto_frontier(df, x, y)
    d = df.assign(frontier=front_mask, kind=front_mask.map({True: "on the Pareto frontier", False: "dominated"}))
    xa = Axis(float(d[x].min()) / 1.25, float(d[x].max()) * 2.2, log=True)  # room right of the largest
    ya = Axis(-0.04 * float(d[y].max()), 1.08 * float(d[y].max()), log=False)
    line = d[d["frontier"]].sort_values(x)
    order = d.sort_values(["frontier", x], ascending=[False, True])  # the frontier's labels first, nearest
    labels = label_frame(order, x, y, "scheme", xa, ya, PARETO_HEIGHT, lines=[line])
    data = alt.Chart(with_labels(d, labels))
    base = data.encode(
        x=alt.X(f"{x}:Q", title=f"{x} (log scale)", scale=xa.scale()),
        y=alt.Y(f"{y}:Q", title=y, axis=alt.Axis(format="%"), scale=ya.scale()),
    )
    kind = alt.Color(
        "kind:N",
        title=None,
        scale=alt.Scale(domain=["on the Pareto frontier", "dominated"], range=["#2563eb", "#8a94a6"]),
    )
    pts = base.mark_circle(size=90, opacity=1).encode(
        color=kind,
        tooltip=["scheme", alt.Tooltip(f"{x}:Q", format=",.1f"), alt.Tooltip(f"{y}:Q", format=".2%")],
    )
    front = base.transform_filter("datum.frontier").mark_line(color="#2563eb", strokeDash=[4, 3])
    text = direct_labels(data, x, y, "scheme", xa, ya, kind)
    return alt.layer(front, pts, *text).properties(width=720, height=PARETO_HEIGHT, title=title)


def bias_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Estimated / true inner products (ratio) by bits and estimator; 1 is unbiased."""
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("bits:O", title="bits per coordinate (codebook)", axis=alt.Axis(labelAngle=0)),
            xOffset="estimator:N",
            y=alt.Y("ratio:Q", title="estimate / truth (least-squares slope)", scale=alt.Scale(domain=[0, 1.1])),
            color=alt.Color("estimator:N", title=None, scale=alt.Scale(range=["#f59e0b", "#2563eb"])),
            tooltip=[
                "bits",
                "estimator",
                alt.Tooltip("ratio:Q", format=".3f"),
                alt.Tooltip("relative error:Q", format=".3f"),
            ],
        )
    )
    one = (
        alt.Chart(pd.DataFrame({"y": [1.0]})).mark_rule(color=NEUTRAL, strokeDash=[6, 4], strokeWidth=2).encode(y="y:Q")
    )
    return alt.layer(bars, one).properties(width=480, height=320, title=title)


def rotation_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Per-channel RMS of the keys, channels sorted by RMS, before and after a random rotation."""
    d = df.copy()
    d["order"] = d.groupby("when")["rms"].rank(ascending=False, method="first")
    return (
        alt.Chart(d)
        .mark_line(strokeWidth=2.5)
        .encode(
            x=alt.X("order:Q", title="channels, sorted by RMS"),
            y=alt.Y("rms:Q", title="channel RMS"),
            color=alt.Color("when:N", title=None, scale=alt.Scale(range=["#2563eb", "#ef4444"])),
            tooltip=["when", "channel", alt.Tooltip("rms:Q", format=".3f")],
        )
        .properties(width=720, height=320, title=title)
    )


def needle_heatmap(df: pd.DataFrame, title: str) -> alt.Chart:
    """Context length x needle depth -> retrieval accuracy, the classic picture."""
    base = alt.Chart(df).encode(
        x=alt.X(
            "depth:O",
            title="needle depth (0: start of the context, 1: just before the question)",
            axis=alt.Axis(labelAngle=0),
        ),
        y=alt.Y("length:O", title="context length (tokens)", sort="descending"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color(
            "accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1], range=["#dc2626", "#fde68a", "#16a34a"])
        ),
        tooltip=["length", "depth", alt.Tooltip("accuracy:Q", format=".0%"), alt.Tooltip("cache_bytes:Q", format=",")],
    )
    text = base.mark_text(fontSize=FONT, color="#111827").encode(text=alt.Text("accuracy:Q", format=".0%"))
    return alt.layer(rect, text).properties(width=520, height=300, title=title)


def needle_summary_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Accuracy vs cache bytes per sequence, a line through the strengths of each method."""
    base = alt.Chart(df).encode(
        x=alt.X("cache_bytes:Q", title="cache bytes per sequence (log scale)", scale=alt.Scale(type="log")),
        y=alt.Y("accuracy:Q", title="retrieval accuracy", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1.02])),
        color=alt.Color("method:N", title=None, scale=alt.Scale(range=MODEL_COLORS + ["#84cc16", "#64748b"])),
        tooltip=["label", alt.Tooltip("cache_bytes:Q", format=","), alt.Tooltip("accuracy:Q", format=".0%")],
    )
    return alt.layer(base.mark_line(strokeWidth=2.5), base.mark_point(size=70, filled=True)).properties(
        width=720, height=420, title=title
    )
