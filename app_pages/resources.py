"""What pages load once per server: presets and the pretrained MiniLM with its shipped passages."""

from __future__ import annotations

import streamlit as st

from core.model.presets import load_preset
from core.model.specs import ModelSpec
from core.view.text import plain


@st.cache_resource
def preset(name: str) -> ModelSpec:
    return load_preset(name)


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
    from core.lab.passages import load_passages

    texts = [p.text for p in load_passages()]
    return [minilm.tokenize(t, 512) for t in (texts if passage < 0 else [texts[passage]])]
