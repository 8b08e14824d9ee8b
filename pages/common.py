"""Shared page helpers: chart downloads (PNG, SVG, CSV) and cached preset loading."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core.charts import to_png, to_svg
from core.presets import load_preset
from core.specs import ModelSpec


@st.cache_resource
def preset(name: str) -> ModelSpec:
    return load_preset(name)


def downloads(chart: alt.Chart, data: pd.DataFrame, name: str, key: str) -> None:
    """PNG (rendered offline at 2x), SVG and CSV of one chart, side by side under it."""
    a, b, c, _ = st.columns([1, 1, 1, 3])
    spec = chart.to_json()
    a.download_button(
        "PNG",
        lambda: _png(spec),
        f"{name}.png",
        "image/png",
        key=f"{key}.png",
        on_click="ignore",
        icon=":material/image:",
    )
    b.download_button(
        "SVG",
        lambda: _svg(spec),
        f"{name}.svg",
        "image/svg+xml",
        key=f"{key}.svg",
        on_click="ignore",
        icon=":material/draw:",
    )
    c.download_button(
        "CSV",
        data.to_csv(index=False),
        f"{name}.csv",
        "text/csv",
        key=f"{key}.csv",
        on_click="ignore",
        icon=":material/table:",
    )


@st.cache_data(max_entries=64, show_spinner=False)
def _png(spec_json: str) -> bytes:
    return to_png(spec_json)


@st.cache_data(max_entries=64, show_spinner=False)
def _svg(spec_json: str) -> str:
    return to_svg(spec_json)
