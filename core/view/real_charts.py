"""Charts of the real-model quality lab (core.lab.realquality.frame's table): the Pareto picture of cache
bytes per token against what each method costs, every family on one model and one text."""

from __future__ import annotations

import altair as alt
import pandas as pd

from core.view.labels import Axis, direct_labels, label_frame, with_labels
from core.view.theme import NEUTRAL, PALETTE, RESERVE

# y of the Pareto picture: the frame's column and the axis title
METRICS = {
    "perplexity": ("perplexity", "perplexity on held-out text (log scale)"),
    "KL divergence": ("kl", "KL(uncompressed || compressed), nats per token (log scale)"),
    "top-1 agreement": ("top1", "top-1 agreement with the uncompressed cache"),
    "passkey retrieval": ("passkey", "passkey found (share of trials)"),
}
LOG_METRICS = ("perplexity", "KL divergence")
SERIES_COLORS = {
    "uncompressed": NEUTRAL,
    "quantization": PALETTE[0],
    "sliding window": PALETTE[3],
    "StreamingLLM": PALETTE[1],
    "H2O": PALETTE[6],
    "SnapKV": PALETTE[5],
    "MLA, 4 RoPE pairs": PALETTE[2],
    "MLA, 16 RoPE pairs": RESERVE[1],
    "MLA, 32 RoPE pairs": PALETTE[4],
}
HEIGHT = 460


def series_of(series: str) -> str:
    """The colour group: MLA's SVD and whitened SVD share a colour (the dash tells them apart)."""
    if series == "none":
        return "uncompressed"
    return series.replace(", whitened SVD,", ",").replace(", SVD,", ",")


def pareto_frame(df: pd.DataFrame, metric: str, context: int | None = None, y_max: float | None = None) -> pd.DataFrame:
    """The rows of one view: x = bytes per token (at the passkey context for passkey retrieval), y = the metric;
    rows above y_max are left out (the page says how many)."""
    col, _ = METRICS[metric]
    d = df.copy()
    if metric == "passkey retrieval":
        d["x"], d["y"] = d[f"bytes_per_token_{context}"], d[f"passkey_{context}"]
    else:
        d["x"], d["y"] = d["bytes_per_token"], d[col]
    if metric == "KL divergence":
        d = d[d.y > 0]  # the uncompressed cache itself: KL 0 has no place on a log axis
    if y_max is not None:
        d = d[d.y <= y_max]
    d["group"] = d["series"].map(series_of)
    d["fit"] = d["series"].map(lambda s: "whitened SVD" if "whitened" in s else ("SVD" if "SVD" in s else "-"))
    d["short"] = (
        d["method"].str.replace("MLA whitened SVD, ", "", regex=False).str.replace("MLA SVD, ", "", regex=False)
    )
    return d[["family", "group", "fit", "method", "short", "x", "y"]].reset_index(drop=True)


def pareto_chart(
    d: pd.DataFrame, metric: str, title: str, reference: float | None = None, subtitle: str | None = None
) -> alt.LayerChart:
    """Bytes per token (log) against the metric: a line through each eviction budget and each MLA rank sweep
    (dashed: plain SVD; solid: whitened), a labelled point per quantizer and for the bf16 and fp32 caches, a
    grey rule at the uncompressed cache's value (`reference`)."""
    _, y_title = METRICS[metric]
    xa = Axis(float(d.x.min()) / 1.3, float(d.x.max()) * 2.4, log=True)
    ys = [*d.y, *([reference] if reference is not None else [])]
    if metric in LOG_METRICS:
        ya = Axis(min(ys) / 1.15, max(ys) * 1.3, log=True)
    else:
        ya = Axis(-0.04, 1.08, log=False)
    groups = [g for g in SERIES_COLORS if g in set(d.group)]
    color = alt.Color(
        "group:N",
        title=None,
        scale=alt.Scale(domain=groups, range=[SERIES_COLORS[g] for g in groups]),
        legend=alt.Legend(orient="bottom", columns=3, symbolStrokeWidth=3),
    )
    dash = alt.StrokeDash(
        "fit:N",
        title=None,
        scale=alt.Scale(domain=["whitened SVD", "SVD", "-"], range=[[1, 0], [5, 3], [1, 0]]),
        legend=None,
    )
    x = alt.X("x:Q", title="KV cache bytes per token, all 30 layers (log scale)", scale=xa.scale())
    fmt = "%" if metric in ("top-1 agreement", "passkey retrieval") else "~g"
    y = alt.Y("y:Q", title=y_title, scale=ya.scale(), axis=alt.Axis(format=fmt))
    tip = [
        "method",
        alt.Tooltip("x:Q", title="bytes per token", format=",.0f"),
        alt.Tooltip("y:Q", title=metric, format=",.4~g"),
    ]
    lines = d[d.family.isin(["eviction", "low rank"])]
    points = d[~d.family.isin(["eviction", "low rank"])].sort_values("x")
    layers = []
    if reference is not None:
        layers.append(
            alt.Chart(pd.DataFrame({"y": [reference]}))
            .mark_rule(color=NEUTRAL, strokeDash=[2, 2], strokeWidth=1.5)
            .encode(y=alt.Y("y:Q", scale=ya.scale()))
        )
    layers += [
        alt.Chart(lines)
        .mark_line(strokeWidth=2.5, point=alt.OverlayMarkDef(size=55, filled=True))
        .encode(x=x, y=y, color=color, strokeDash=dash, detail="fit:N", order="x:Q", tooltip=tip),
        alt.Chart(points)
        .mark_point(size=110, filled=True, shape="diamond", opacity=1)
        .encode(x=x, y=y, color=color, tooltip=tip),
    ]
    if len(points):
        obstacles = [g.sort_values("x") for _, g in lines.groupby(["group", "fit"])]
        labels = label_frame(points, "x", "y", "short", xa, ya, HEIGHT, lines=obstacles)
        layers += direct_labels(alt.Chart(with_labels(points, labels)), "x", "y", "short", xa, ya, color)
    head = alt.Title(title, subtitle=subtitle) if subtitle else title
    return alt.layer(*layers).properties(width=760, height=HEIGHT, title=head)
