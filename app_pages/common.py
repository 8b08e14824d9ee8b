"""Shared page helpers: chart downloads (PNG, SVG, CSV) and cached preset loading."""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import pickle
import threading
from collections.abc import Callable
from dataclasses import fields, replace

import altair as alt
import pandas as pd
import pyarrow as pa
import streamlit as st
from altair.utils import schemapi
from altair.vegalite.data import default_data_transformer
from pandas.io.formats.style import Styler

from app_pages import workshop_ui
from core.model.presets import load_preset
from core.model.specs import ModelSpec
from core.view.charts import style, to_png, to_svg
from core.view.text import plain
from core.view.urlstate import Replaced, nearest, parse_state

try:  # what st.vega_lite_chart does to a spec's named datasets on every rerun, done once per spec in figure()
    from streamlit.dataframe_util import convert_anything_to_arrow_bytes as _to_arrow
except ImportError:  # a Streamlit that moved it: the datasets stay rows, and Streamlit converts them per rerun
    _to_arrow = None

# Tests set this, so every chart a page draws is checked against Vega-Lite's JSON schema there.
VALIDATE_CHARTS = os.environ.get("KVLAB_VALIDATE_CHARTS") == "1"
if not VALIDATE_CHARTS:
    # Altair's debug mode validates every schema object as it is made (an axis, a mark, a scale), a tenth of
    # building a chart; the served app checks no spec (the tests check each whole spec) and keeps that time.
    schemapi.disable_debug_mode()


class _Unvalidated:
    """An Altair chart whose spec Streamlit serialises without re-checking it against the JSON schema: the
    check costs about as much as the serialisation itself, on every rerun, for a spec the tests validate."""

    def __init__(self, chart: alt.TopLevelMixin):
        self.chart = chart

    def to_dict(self, *args, **kwargs) -> dict:
        kwargs["validate"] = False
        return self.chart.to_dict(*args, **kwargs)


def show(chart: alt.TopLevelMixin | dict, **kwargs) -> None:
    """st.altair_chart, with the schema check only where tests ask for it (KVLAB_VALIDATE_CHARTS=1); a spec
    from `figure` goes to st.vega_lite_chart as it is."""
    if isinstance(chart, dict):
        st.vega_lite_chart(chart, **kwargs)
        return
    if workshop_ui.presenting():
        chart = workshop_ui.bigger(chart)
    st.altair_chart(chart if VALIDATE_CHARTS else _Unvalidated(chart), **kwargs)


def figure(builder: Callable[..., alt.TopLevelMixin], *args, **kwargs) -> dict:
    """The styled Vega-Lite spec of `builder(*args, **kwargs)` (a chart builder of core.view.charts), built
    once per distinct arguments for the whole server: Altair's construction and serialisation are most of a
    page's rerun, and a room of people asks for the same views again and again. The arguments must be what
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
    DataFrame argument costs figure() a digest on every rerun). `big`: the presenter's larger fonts.

    Each DataFrame the chart holds goes into the spec's datasets as Arrow IPC bytes under a name of its
    content, as st.altair_chart sends a DataFrame: Altair's own path (sanitise the frame, write it as rows,
    name it by a hash of their JSON) was half of building a chart, and Streamlit then turned the rows back
    into Arrow on every rerun."""
    chart = style(builder(*args, **kwargs))
    chart = workshop_ui.bigger(chart) if big else chart
    if _to_arrow is None:
        return chart.to_dict(validate=VALIDATE_CHARTS)
    datasets: dict[str, bytes] = {}
    # Altair's data transformer is one setting for all threads: Streamlit's lock keeps st.altair_chart from
    # switching it meanwhile, and the sink is this thread's, so another thread's to_dict gets Altair's rows.
    with _ALTAIR_LOCK, alt.data_transformers.enable("kvlab_arrow"):
        _SINK.datasets = datasets
        try:
            spec = chart.to_dict(validate=VALIDATE_CHARTS)
        finally:
            _SINK.datasets = None
    for k, v in spec.get("datasets", {}).items():  # inline rows a builder wrote itself
        datasets[k] = _to_arrow(v)
    if datasets:
        spec["datasets"] = datasets
    return spec


_SINK = threading.local()


def _arrow_transformer(data):
    """Altair data transformer: a DataFrame becomes a named dataset of Arrow bytes in this thread's sink;
    anything else, or a thread without a sink, gets Altair's default (rows)."""
    sink = getattr(_SINK, "datasets", None)
    if sink is None or not isinstance(data, pd.DataFrame):
        return default_data_transformer(data, max_rows=None)
    raw = _to_arrow(data)
    name = "data-" + hashlib.blake2b(raw, digest_size=16).hexdigest()
    sink[name] = raw
    return {"name": name}


alt.data_transformers.register("kvlab_arrow", _arrow_transformer)
try:  # the lock Streamlit holds while st.altair_chart switches Altair's data transformer
    from streamlit.elements.vega_charts import _altair_globals_lock as _ALTAIR_LOCK
except ImportError:  # a Streamlit without it: our own lock still orders our builds
    _ALTAIR_LOCK = threading.Lock()


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


@st.cache_resource
def preset(name: str) -> ModelSpec:
    return load_preset(name)


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


def init_widgets(prefix: str, state, extra: dict | None = None) -> None:
    """Seed widget keys (`prefix + field`) from a parsed URL state once per session, so widgets are
    created without a `value=` and the URL wins only on first load."""
    for f in fields(state):
        if f.name in ("notices", "config"):
            continue
        key = prefix + f.name
        if key not in st.session_state:
            v = getattr(state, f.name)
            st.session_state[key] = list(v) if isinstance(v, tuple) else v
    for k, v in (extra or {}).items():
        st.session_state.setdefault(prefix + k, v)


def link_state(cls, prefix: str, extra=None, grids: dict | None = None):
    """The page's state from the URL (core.urlstate `cls`): warn about what the link got wrong, seed the
    widgets from it once per session, and return it. `grids` maps a field to the values its widget offers
    (a select_slider's options, a slider's steps): a link value off the grid becomes the nearest one, and
    the page says so. `extra` (a dict, or a function of the parsed state) gives further widget values
    derived from the link; one that replaces a field's value is announced and wins too."""
    init = parse_state(cls, st.query_params.to_dict())
    notes = list(init.notices)
    for k, grid in (grids or {}).items():
        try:
            nearest(getattr(init, k), grid, k)
        except Replaced as e:
            notes.append(str(e))
            init = replace(init, **{k: e.value})
    derived = (extra(init) if callable(extra) else extra) or {}
    names = {f.name for f in fields(init)}
    for k, v in derived.items():
        if k in names and getattr(init, k) != v:
            old = getattr(init, k)
            notes.append(f"{k} {old:,} is not offered here; showing the nearest, {v:,}")
            init = replace(init, **{k: v})
    for note in notes:
        st.warning(f"Link: {plain(note, 300)}.")
    init_widgets(prefix, init, {k: v for k, v in derived.items() if k not in names})
    return init


@st.cache_resource(show_spinner="Loading all-MiniLM-L6-v2...")
def minilm_model():
    """The pretrained MiniLM of the real-weight lessons, loaded once per server."""
    from core.lab import minilm

    return minilm.load_minilm()


def require_minilm() -> None:
    """Stop the page with the reason when MiniLM cannot be loaded (its package is missing)."""
    try:
        minilm_model()
    except RuntimeError as e:
        st.error(plain(e, 400))
        st.stop()


def passage_ids(passage: int) -> list:
    """Token ids of one shipped passage (a list of one), or of all of them (passage < 0)."""
    from core.lab import minilm

    texts = [p.text for p in minilm.load_passages()]
    return [minilm.tokenize(t, 512) for t in (texts if passage < 0 else [texts[passage]])]


def takeaways(lines: list[str]) -> None:
    """The page's takeaways: two or three sentences with the current view's numbers, at the end of the page."""
    if not lines:
        return
    st.subheader("Takeaways")
    st.markdown("\n".join(f"- {line}" for line in lines))


TABLE_ROW_PX = 35  # st.dataframe's row height, and its header's
TABLE_MAX_ROWS = 40  # a longer table scrolls inside a box this many rows high


def table(df, **kw) -> None:
    """st.dataframe sized to its rows, so nothing scrolls inside it and no row is cut off on a projector or in a
    screenshot (up to TABLE_MAX_ROWS rows; a longer one scrolls in a box that high). `df` is a DataFrame or its
    Styler; the index is hidden and the table fills the width unless `kw` says otherwise."""
    n = len(df.data if isinstance(df, Styler) else df)
    kw.setdefault("hide_index", True)
    kw.setdefault("width", "stretch")
    kw.setdefault("row_height", TABLE_ROW_PX)
    kw.setdefault("height", kw["row_height"] * (min(n, TABLE_MAX_ROWS) + 1) + 3)  # + the frame's borders
    st.dataframe(df, **kw)
