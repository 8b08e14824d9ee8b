"""Glossary: one meaning per word, on every page. The entries are data (assets/glossary.json, through
core.view.glossary); the same definitions are the `help=` tooltips of the other pages."""

import streamlit as st

from core.view import glossary
from core.view.text import plain

P = "glossary."
MAX_QUERY = 60  # characters of the filter a search may use
TITLES = {
    "overview": "Overview",
    "planner": "Memory planner",
    "review": "Review sheet",
    "inside_mla": "Inside MLA",
    "latent_rank": "Latent rank",
    "compute": "Compute & roofline",
    "sparse": "Sparse & compressed",
    "hybrid": "Hybrid models",
    "quantized": "Quantized caches",
    "needle": "Needle in a haystack",
    "real_model": "Real model",
    "workshop": "Workshop",
    "glossary": "Glossary",
}


def show_entry(entry: glossary.Entry) -> None:
    """One entry: term (and symbol), definition, other names, and links to the pages where it matters."""
    with st.container(border=True):
        symbol = f" ({entry.symbol})" if entry.symbol else ""
        st.markdown(f"**{plain(entry.term)}**{plain(symbol)}")
        st.markdown(plain(entry.definition, 1000))
        if entry.aliases:
            st.caption("Also: " + plain(", ".join(entry.aliases), 400))
        links = [p for p in entry.pages if p != "glossary"]
        if links:
            cols = st.columns(len(links))
            for col, page in zip(cols, links, strict=True):
                col.page_link(f"app_pages/{page}.py", label=TITLES[page])


st.title("Glossary")
st.markdown(
    "One word, one meaning on every page. These definitions are also the tooltips (the small question marks) "
    "next to controls and numbers elsewhere in the app."
)
query = st.text_input(
    "Filter", key=P + "filter", max_chars=MAX_QUERY, placeholder="a term, a symbol or a word of a definition"
)
entries = glossary.search(query[:MAX_QUERY])
if not entries:
    st.warning(f"No entry mentions {plain(query, MAX_QUERY)}.")
else:
    st.caption(f"{len(entries)} of {len(glossary.load())} entries, alphabetical.")
    for entry in entries:
        show_entry(entry)
