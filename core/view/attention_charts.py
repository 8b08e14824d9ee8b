"""Charts of what attention sees and keeps (Inside MLA, Latent rank, Sparse & compressed): query-by-key
heatmaps, the singular spectra and energy of the latent, and the errors of a converted layer by rank."""

from __future__ import annotations

import altair as alt
import pandas as pd

from core.view.theme import GPU_COLOR, MODEL_COLORS

# ----------------------------------------------------------------------------- query-by-position heatmaps


def _grid(df: pd.DataFrame) -> tuple[int, int]:
    """(n, cell size in px) of a square query-by-position heatmap: at most ~560 px wide."""
    n = int(df["query"].max()) + 1
    return n, max(4, min(12, 560 // max(n, 1)))


def _ticks(n: int) -> list[int]:
    """About eight evenly spaced position ticks of an n-position axis."""
    step = max(1, n // 8)
    return list(range(0, n, step))


def attention_heatmap(df: pd.DataFrame, title: str) -> alt.Chart:
    """Query x key heatmap of attention probabilities (causal: the upper triangle is zero)."""
    n, size = _grid(df)
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("key:O", title="key position (attended token)", axis=alt.Axis(labelAngle=0, values=_ticks(n))),
            y=alt.Y("query:O", title="query position", axis=alt.Axis(values=_ticks(n))),
            color=alt.Color(
                "p:Q", title="probability", scale=alt.Scale(type="sqrt", domain=[0, 1], range=["#ffffff", "#1e3a8a"])
            ),
            tooltip=["query", "key", alt.Tooltip("p:Q", format=".3f")],
        )
        .properties(width=size * n, height=size * n, title=title)
    )


# ----------------------------------------------------------------------------- sparse selection and visibility

HOW_COLORS = {
    "raw (window)": "#1d4ed8",
    "in a selected entry": "#10b981",
    "in an entry not selected": "#e5e7eb",
}


def selection_heatmap(df: pd.DataFrame, title: str) -> alt.Chart:
    """Query x key: the indexer's score in grey, the top-k tokens each query keeps in blue."""
    n, size = _grid(df)
    x = alt.X("key:O", title="key position", axis=alt.Axis(labelAngle=0, values=_ticks(n)))
    y = alt.Y("query:O", title="query position", axis=alt.Axis(values=_ticks(n)))
    base = alt.Chart(df).encode(x=x, y=y, tooltip=["query", "key", alt.Tooltip("score:Q", format=".3f"), "selected"])
    scores = base.mark_rect().encode(
        color=alt.Color("score:Q", title="indexer score", scale=alt.Scale(range=["#f9fafb", "#9ca3af"]))
    )
    chosen = base.transform_filter("datum.selected").mark_rect(color="#1d4ed8")
    return alt.layer(scores, chosen).properties(width=size * n, height=size * n, title=title)


def visibility_heatmap(df: pd.DataFrame, title: str) -> alt.Chart:
    """Query x original token: seen raw, through a selected entry, or compressed but not selected."""
    n, size = _grid(df)
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("token:O", title="original token", axis=alt.Axis(labelAngle=0, values=_ticks(n))),
            y=alt.Y("query:O", title="query position", axis=alt.Axis(values=_ticks(n))),
            color=alt.Color(
                "how:N", title=None, scale=alt.Scale(domain=list(HOW_COLORS), range=list(HOW_COLORS.values()))
            ),
            tooltip=["query", "token", "how"],
        )
        .properties(width=size * n, height=size * n, title=title)
    )


# ----------------------------------------------------------------------------- latent rank


def _rank_rule(rank: int) -> alt.Chart:
    return (
        alt.Chart(pd.DataFrame({"rank": [rank], "label": [f"d_c = {rank}"]}))
        .mark_rule(color=GPU_COLOR, strokeDash=[6, 4], strokeWidth=2)
        .encode(x="rank:Q")
    )


def spectra_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Singular values (log) vs index, one line per matrix (columns: index, value, matrix)."""
    return (
        alt.Chart(df)
        .mark_line(strokeWidth=2.5)
        .encode(
            x=alt.X("index:Q", title="singular direction (largest first)"),
            y=alt.Y("value:Q", title="singular value (log scale)", scale=alt.Scale(type="log")),
            color=alt.Color("matrix:N", title=None, scale=alt.Scale(range=MODEL_COLORS)),
            tooltip=["matrix", "index", alt.Tooltip("value:Q", format=".4g")],
        )
        .properties(width=720, height=320, title=title)
    )


def energy_chart(df: pd.DataFrame, rank: int, title: str) -> alt.Chart:
    """Cumulative energy share vs rank, one line per matrix, the chosen rank marked."""
    lines = (
        alt.Chart(df)
        .mark_line(strokeWidth=2.5)
        .encode(
            x=alt.X("rank:Q", title="latent rank d_c (directions kept)"),
            y=alt.Y("energy:Q", title="energy captured", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("matrix:N", title=None, scale=alt.Scale(range=MODEL_COLORS)),
            tooltip=["matrix", "rank", alt.Tooltip("energy:Q", format=".1%")],
        )
    )
    return alt.layer(lines, _rank_rule(rank)).properties(width=720, height=320, title=title)


ERROR_LABELS = {
    "k_error": "keys",
    "v_error": "values",
    "scores_error": "attention scores",
    "probs_tv": "attention probabilities (TV)",
    "out_error": "layer output",
}


def errors_chart(sweep: pd.DataFrame, rank: int, title: str) -> alt.Chart:
    """Relative errors of the converted layer vs rank (K, V, scores, probabilities, output)."""
    long = sweep.melt(id_vars=["rank"], value_vars=list(ERROR_LABELS), var_name="what", value_name="error")
    long["what"] = long["what"].map(ERROR_LABELS)
    lines = (
        alt.Chart(long)
        .mark_line(point=True, strokeWidth=2.5)
        .encode(
            x=alt.X("rank:Q", title="latent rank d_c"),
            y=alt.Y("error:Q", title="relative error (TV for probabilities)"),
            color=alt.Color(
                "what:N", title=None, sort=list(ERROR_LABELS.values()), scale=alt.Scale(range=MODEL_COLORS)
            ),
            tooltip=["what", "rank", alt.Tooltip("error:Q", format=".4f")],
        )
    )
    return alt.layer(lines, _rank_rule(rank)).properties(width=720, height=340, title=title)
