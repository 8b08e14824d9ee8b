"""Workshop: the guided paths, the room code, and the presenter's controls."""

import streamlit as st

from pages.common import ensure_router

ensure_router()
st.title("Workshop")
