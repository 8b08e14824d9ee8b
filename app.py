"""KV Cache Lab: router and frame. Pages live in app_pages/ and are registered here explicitly."""

import os

# One torch thread per rerun: the lab's layers are small, and OpenMP's worker threads spin on them (0.56 s of
# server CPU per Inside MLA move with 2 threads, 0.38 s with one), while a room of people needs the cores for
# their own reruns. Set before any page imports torch; a value in the environment wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import streamlit as st  # noqa: E402

from core import warm  # noqa: E402
from core.view import altair_speedups  # noqa: E402

# torch's compiler package, which the first FLOP count imports (1.5-2.7 s), imported by the server's first
# session instead of whoever first opens the planner or Inside MLA (core/warm.py). Once per process.
warm.imports()

# Altair builds a page's charts 1.7-2.8x faster with these (core/view/altair_speedups.py); where the installed
# Altair lacks what they patch, it declines and the charts are Altair's own. Idempotent: once per process.
altair_speedups.apply()

st.set_page_config(page_title="KV Cache Lab", page_icon=":material/memory:", layout="wide")

overview = st.Page("app_pages/overview.py", title="Overview", icon=":material/insights:", url_path="home", default=True)


def _old_overview_url() -> None:
    """/overview (the default page lives at /): open the Overview with the link's parameters, no dialog."""
    st.switch_page(overview, query_params=st.query_params.to_dict())


pages = [
    overview,
    st.Page("app_pages/planner.py", title="Memory planner", icon=":material/memory:", url_path="planner"),
    st.Page("app_pages/review.py", title="Review sheet", icon=":material/slideshow:", url_path="review"),
    st.Page("app_pages/inside_mla.py", title="Inside MLA", icon=":material/account_tree:", url_path="inside_mla"),
    st.Page("app_pages/latent_rank.py", title="Latent rank", icon=":material/compress:", url_path="latent_rank"),
    st.Page("app_pages/compute.py", title="Compute & roofline", icon=":material/speed:", url_path="compute"),
    st.Page("app_pages/sparse.py", title="Sparse & compressed", icon=":material/filter_alt:", url_path="sparse"),
    st.Page("app_pages/hybrid.py", title="Hybrid models", icon=":material/join_inner:", url_path="hybrid"),
    st.Page("app_pages/quantized.py", title="Quantized caches", icon=":material/grain:", url_path="quantized"),
    st.Page("app_pages/needle.py", title="Needle in a haystack", icon=":material/search:", url_path="needle"),
    st.Page("app_pages/real_model.py", title="Real model", icon=":material/model_training:", url_path="real_model"),
    st.Page("app_pages/workshop.py", title="Workshop", icon=":material/school:", url_path="workshop"),
    st.Page("app_pages/glossary.py", title="Glossary", icon=":material/menu_book:", url_path="glossary"),
]
# Hidden: reachable by URL only. The default page is served at "/", so its own url_path would otherwise
# open Streamlit's "Page not found" dialog.
pages.append(st.Page(_old_overview_url, title="Overview", url_path="overview", visibility="hidden"))
# Every page listed: with 13, Streamlit's default folds the last three (Real model, Workshop, Glossary) behind
# "View 3 more", and a workshop's participants must find the Workshop page.
nav = st.navigation(pages, expanded=True)
with st.sidebar:
    st.caption(
        "KV Cache Lab runs small real attention layers and exact accounting from real config.json files. "
        "Bytes are binary units (KiB, MiB, GiB); GPU memory is the vendor's decimal GB, converted."
    )
nav.run()
