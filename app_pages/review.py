"""Review sheet: up to four candidate deployments planned side by side, as one image for an architecture review."""

import datetime
from dataclasses import asdict, fields

import streamlit as st

import core
from app_pages import workshop_ui as ws
from app_pages.figures import image_downloads, picture, to_spec
from app_pages.links import link_state
from app_pages.resources import preset
from core.accounting.totals import LAYOUTS
from core.model.dtypes import CACHE_DTYPES, WEIGHT_DTYPES
from core.model.gpus import GPUS
from core.model.presets import preset_names
from core.view.review import MAX_CANDIDATES, MAX_LABEL, SLOT_DEFAULTS, Candidate, Sheet, clean_label, review
from core.view.sheet_chart import sheet_chart
from core.view.text import plain
from core.view.urlcodec import dump_state
from core.view.urlstate import MAX_TYPED_CONTEXT, THEMES, ReviewState, dump_candidates, parse_candidates

P = "review."
FIELDS = [f.name for f in fields(Candidate)]


def seeded(init: ReviewState) -> dict:
    """Widget values from the link: how many candidates, and each candidate's fields (`<slot>.<field>`)."""
    out = {"count": len(init.candidates)}
    for i, c in enumerate(init.candidates):
        out |= {f"{i}.{k}": v for k, v in asdict(c).items()}
    return out


def candidate_controls(i: int) -> Candidate:
    """One candidate's widgets, in its column; a new slot starts from SLOT_DEFAULTS."""
    for k, v in asdict(SLOT_DEFAULTS[i]).items():
        st.session_state.setdefault(f"{P}{i}.{k}", v)
    key = f"{P}{i}."
    model = st.selectbox("Model", preset_names(), key=key + "model")
    label = st.text_input("Name on the sheet (optional)", key=key + "label", max_chars=MAX_LABEL)
    gpu = st.selectbox("GPU", list(GPUS), key=key + "gpu")
    a, b = st.columns(2)
    n = a.number_input("GPUs", 1, 1024, step=1, key=key + "n_gpus")
    tp = b.number_input("TP (0: auto)", 0, 1024, step=1, key=key + "tp")
    layout = st.selectbox("Cache layout", LAYOUTS, key=key + "layout")
    a, b = st.columns(2)
    kv = a.selectbox("Cache dtype", ["auto", *CACHE_DTYPES], key=key + "kv_dtype")
    weights = b.selectbox("Weights", ["native", *WEIGHT_DTYPES], key=key + "weight_dtype")
    if clean_label(label) != label:
        st.caption(
            f"Shown as {plain(clean_label(label) or model, 80)}: a name keeps letters, digits and . _ ( ) + / # & ' : -"
        )
    return Candidate(model, gpu, int(n), int(tp), layout, kv, weights, clean_label(label))


@st.cache_resource(max_entries=64, show_spinner=False)
def planned(link: str, context: int, utilization: int, date: str) -> Sheet:
    """The sheet of the candidates in `link` (their link form): once per view for the whole server."""
    candidates = parse_candidates(link)
    return review(
        candidates, {c.model: preset(c.model) for c in candidates}, context, utilization, date, core.__version__
    )


@st.cache_resource(max_entries=64, show_spinner=False)
def drawn(link: str, context: int, utilization: int, date: str, theme: str, formulas: bool) -> dict:
    return to_spec(sheet_chart(planned(link, context, utilization, date), theme, formulas))


@st.fragment
def view() -> None:
    st.caption(
        "Pick up to four candidates: a model preset on some GPUs with a TP size, cache layout, cache dtype and "
        "weights. Each is planned as the Memory planner plans it, for one request at the shared context. The "
        "sheet compares presets only: a config.json of your own stays on the Memory planner."
    )
    a, b, c, d = st.columns(4)
    count = a.number_input("Candidates", 1, MAX_CANDIDATES, step=1, key=P + "count")
    context = b.number_input("Context (tokens)", 1, MAX_TYPED_CONTEXT, step=1024, key=P + "context")
    utilization = c.slider("GPU memory utilization (%)", 5, 100, key=P + "utilization")
    theme = d.segmented_control("Sheet theme", THEMES, key=P + "theme") or "light"
    formulas = d.toggle("Formulas on the sheet", key=P + "formulas")
    candidates = []
    for i, col in enumerate(st.columns(int(count))):
        with col:
            st.markdown(f"**Candidate {i + 1}**")
            candidates.append(candidate_controls(i))
    s = ReviewState(tuple(candidates), int(context), int(utilization), theme, formulas)
    ws.publish(dump_state(s))
    link, date = dump_candidates(s.candidates), f"{datetime.date.today():%Y-%m-%d}"
    sheet = planned(link, s.context, s.utilization, date)
    for error in sheet.errors:
        st.error(plain(error, 400))
    if not sheet.columns:
        return
    spec = drawn(link, s.context, s.utilization, date, theme, formulas)
    image_downloads(spec, "kv-cache-review-sheet", P + "dl")
    picture(spec)  # the image the downloads give, whatever the page's width and theme
    with st.expander("Formulas, with these numbers"):
        for col in sheet.columns:
            st.markdown(f"**{plain(col.name)}**")
            for formula in col.latex:
                st.latex(formula)
    st.caption("The address bar holds this whole sheet: copy it to share exactly what you see.")


st.title("Review sheet")
link_state(ReviewState, P, extra=seeded)
view()
