"""Glossary: one meaning per word, on every page."""

import streamlit as st

from pages.common import ensure_router

ensure_router()
st.title("Glossary")
