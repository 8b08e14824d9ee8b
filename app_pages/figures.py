"""Charts on the page and in files: draw a chart, build its spec once per view for the whole server, and offer
it as PNG, SVG and CSV. Public Streamlit, Altair and PyArrow only."""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import pickle
import threading
from collections.abc import Callable

import altair as alt
import pandas as pd
import pyarrow as pa
import streamlit as st
from altair.utils import schemapi
from altair.vegalite.data import default_data_transformer

from app_pages import workshop_ui
from core.view.export import to_pdf, to_png, to_svg
from core.view.theme import style

# Tests set this, so every chart a page draws is checked against Vega-Lite's JSON schema there.
VALIDATE_CHARTS = os.environ.get("KVLAB_VALIDATE_CHARTS") == "1"
if not VALIDATE_CHARTS:
    # Altair's debug mode validates every schema object as it is made (an axis, a mark, a scale), a tenth of
    # building a chart; the served app checks no spec (the tests check each whole spec) and keeps that time.
    schemapi.disable_debug_mode()


def show(chart: alt.TopLevelMixin | dict, **kwargs) -> None:
    """Draw a chart: a spec from `figure` as it is, an Altair chart through `to_spec` (in the presenter's larger
    type when presenting). Every chart of the app goes through here to st.vega_lite_chart; none through
    st.altair_chart, so only this module ever switches Altair's data transformer (see `to_spec`)."""
    if not isinstance(chart, dict):
        chart = to_spec(chart, workshop_ui.presenting())
    st.vega_lite_chart(chart, **kwargs)


def figure(builder: Callable[..., alt.TopLevelMixin], *args, **kwargs) -> dict:
    """The styled Vega-Lite spec of `builder(*args, **kwargs)` (a module-level chart builder of core.view),
    built once per distinct arguments for the whole server: Altair's construction and serialisation are most
    of a page's rerun, and a room of people asks for the same views again and again. The arguments must be what
    st.cache_data can hash (numbers, strings, tuples, DataFrames). The spec's datasets are Arrow IPC bytes
    already, as Streamlit would make them on every rerun (`_json` turns them back into rows for a download)."""
    return _figure(builder.__module__, builder.__qualname__, args, kwargs, workshop_ui.presenting())


def _frame_digest(df: pd.DataFrame) -> bytes:
    """A DataFrame's cache key: the digest of its pickle, 0.1 ms where Streamlit's hasher takes about 1 ms
    for a chart's few dozen rows. Equal pickles mean equal frames; equal frames pickled differently only
    miss the cache."""
    return hashlib.blake2b(pickle.dumps(df, protocol=5), digest_size=16).digest()


@st.cache_data(max_entries=128, show_spinner=False, hash_funcs={pd.DataFrame: _frame_digest})
def _figure(module: str, name: str, args: tuple, kwargs: dict, big: bool) -> dict:  # a spec holds its data
    return chart_spec(getattr(importlib.import_module(module), name), args, kwargs, big)


def chart_spec(builder: Callable[..., alt.TopLevelMixin], args: tuple, kwargs: dict, big: bool) -> dict:
    """What figure() caches, built now: for a page's own cached function keyed on a few small values (a
    DataFrame argument costs figure() a digest on every rerun). `big`: the presenter's larger fonts."""
    return to_spec(style(builder(*args, **kwargs)), big)


def to_spec(chart: alt.TopLevelMixin, big: bool = False) -> dict:
    """The chart's Vega-Lite spec, checked against the schema only under test (KVLAB_VALIDATE_CHARTS=1).

    Each DataFrame the chart holds goes into the spec's datasets as Arrow IPC bytes under a name of its
    content, which st.vega_lite_chart passes to the browser as they are: Altair's own path (sanitise the
    frame, write it as rows, name it by a hash of their JSON) was half of building a chart, and Streamlit then
    turned the rows back into Arrow on every rerun. Altair's data transformer is one setting for all threads:
    `_LOCK` orders this module's switches of it (nothing else in the app switches it: no page calls
    st.altair_chart), and the sink is this thread's, so another thread's to_dict meanwhile gets Altair's rows."""
    chart = workshop_ui.bigger(chart) if big else chart
    datasets: dict[str, bytes] = {}
    with _LOCK, alt.data_transformers.enable("kvlab_arrow"):
        _SINK.datasets = datasets
        try:
            spec = chart.to_dict(validate=VALIDATE_CHARTS)
        finally:
            _SINK.datasets = None
    for k, v in spec.get("datasets", {}).items():  # inline rows a builder wrote itself
        datasets[k] = arrow_bytes(pd.DataFrame(v))
    if datasets:
        spec["datasets"] = datasets
    return spec


_LOCK = threading.Lock()
_SINK = threading.local()


def _arrow_transformer(data):
    """Altair data transformer: a DataFrame becomes a named dataset of Arrow bytes in this thread's sink;
    anything else, or a thread without a sink, gets Altair's default (rows)."""
    sink = getattr(_SINK, "datasets", None)
    if sink is None or not isinstance(data, pd.DataFrame):
        return default_data_transformer(data, max_rows=None)
    raw = arrow_bytes(data)
    name = "data-" + hashlib.blake2b(raw, digest_size=16).hexdigest()
    sink[name] = raw
    return {"name": name}


alt.data_transformers.register("kvlab_arrow", _arrow_transformer)


def arrow_bytes(df: pd.DataFrame) -> bytes:
    """A frame as Arrow IPC stream bytes, the form Streamlit sends a chart's data in. A column Arrow cannot
    type (mixed objects) is sent as text, as Streamlit does."""
    try:
        table = pa.Table.from_pandas(df)
    except (pa.ArrowTypeError, pa.ArrowInvalid, OverflowError):
        fixed = df.copy()
        for c in fixed.select_dtypes(include="object").columns:
            fixed[c] = fixed[c].astype(str)
        table = pa.Table.from_pandas(fixed)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _json(chart: alt.TopLevelMixin | dict) -> str:
    """The chart's Vega-Lite JSON, its datasets as rows (a figure() spec carries them as Arrow bytes); a value
    JSON cannot hold (NaN, infinity) becomes null, as Altair writes it."""
    if not isinstance(chart, dict):
        return chart.to_json()
    rows = {k: _rows(v) if isinstance(v, bytes) else v for k, v in chart.get("datasets", {}).items()}
    return json.dumps({**chart, "datasets": rows} if rows else chart)


def _rows(raw: bytes) -> list[dict]:
    def finite(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return [{k: finite(v) for k, v in row.items()} for row in pa.ipc.open_stream(raw).read_all().to_pylist()]


def downloads(chart: alt.Chart | dict, data: pd.DataFrame, name: str, key: str) -> None:
    """PNG (rendered offline at 2x), SVG and CSV of one chart, side by side under it: one horizontal row, not
    four columns (three elements fewer for every chart a rerun sends)."""
    a = b = c = st.container(horizontal=True, gap="small")
    a.download_button(  # the spec is serialised on click only: a rerun does not pay for it
        "PNG",
        lambda: _png(_json(chart)),
        f"{name}.png",
        "image/png",
        key=f"{key}.png",
        on_click="ignore",
        icon=":material/image:",
    )
    b.download_button(
        "SVG",
        lambda: _svg(_json(chart)),
        f"{name}.svg",
        "image/svg+xml",
        key=f"{key}.svg",
        on_click="ignore",
        icon=":material/draw:",
    )
    c.download_button(
        "CSV",
        lambda: data.to_csv(index=False),
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


def picture(chart: dict) -> None:
    """A chart shown as the PNG its download gives (scaled to the page's width): for an image wider than the
    page, such as the review sheet, which st.vega_lite_chart would cut off."""
    st.image(_png(_json(chart)), width="stretch")


def image_downloads(chart: dict, name: str, key: str) -> None:
    """PNG (at 2x), SVG and PDF of one image made of text and charts (the review sheet), rendered on click."""
    a = b = c = st.container(horizontal=True, gap="small")
    for box, kind, make, mime, icon in (
        (a, "PNG", _png, "image/png", ":material/image:"),
        (b, "SVG", _svg, "image/svg+xml", ":material/draw:"),
        (c, "PDF", _pdf, "application/pdf", ":material/picture_as_pdf:"),
    ):
        box.download_button(
            kind,
            lambda make=make: make(_json(chart)),
            f"{name}.{kind.lower()}",
            mime,
            key=f"{key}.{kind.lower()}",
            on_click="ignore",
            icon=icon,
        )


@st.cache_data(max_entries=16, show_spinner=False)
def _pdf(spec_json: str) -> bytes:
    return to_pdf(spec_json)
