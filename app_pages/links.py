"""A page's state from its link: parse the URL's parameters, say what the link got wrong, and seed the widgets
from it once per session (core.view.urlstate does the parsing and validation)."""

from __future__ import annotations

from dataclasses import fields, replace

import streamlit as st

from core.view.text import plain
from core.view.urlcodec import Replaced, nearest, parse_state


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
