"""Workshop mode on every page: the lesson prose, the page's question (predict, then reveal), the guided
path's step card, the room's answers, and the presenter view.

Workshop parameters ride in the URL beside a page's own view, so a link (or a reload) keeps them:
  tour=<path id>  step=<1-based>  room=<6-character code>  me=<participant id>  present=1
They are validated here; anything else in them is ignored with a warning.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from core.view.text import plain
from core.view.urlcodec import WORKSHOP_KEYS
from core.view.workshop_charts import chart_height, guesses_chart
from core.workshop import path as wp
from core.workshop.ratelimit import RateLimiter, client_address
from core.workshop.store import Store, engine_url, normalise_code

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "assets" / "lessons"
ME = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
ASK = re.compile(r"^\*Ask first:\*.*?(?=\n\s*\n|\Z)", re.S | re.M)
DEFAULT_DB = f"sqlite:///{ROOT / 'data' / 'workshop.db'}"
POLL_SECONDS = 3

# How often one visitor (one browser session, and one address as the server sees it) may start a room, and
# fail to join one (guessing codes); per server process. Environment: KVLAB_ROOMS_PER_HOUR (default 10),
# KVLAB_TRUSTED_PROXIES (addresses whose X-Forwarded-For is believed; default the loopback, where `make serve`
# puts nginx) and KVLAB_WORKSHOP_TOKEN (when set, starting a room needs it).
ROOMS = RateLimiter(max(1, int(os.environ.get("KVLAB_ROOMS_PER_HOUR", "10") or 10)), 3600)
JOIN_MISSES = RateLimiter(20, 600)
TRUSTED_PROXIES = tuple(
    a.strip() for a in os.environ.get("KVLAB_TRUSTED_PROXIES", "127.0.0.1,::1").split(",") if a.strip()
)


def visitor() -> tuple[str, ...]:
    """The keys one visitor is limited by: this browser session, and its address when the server knows it."""
    sid = st.session_state.setdefault("ws.visitor", secrets.token_hex(8))
    addr = client_address(st.context.ip_address, dict(st.context.headers or {}), TRUSTED_PROXIES)
    return (f"session:{sid}",) + ((f"address:{addr}",) if addr != "unknown" else ())


def operator_token() -> str | None:
    """The token a public deployment may require to start rooms (KVLAB_WORKSHOP_TOKEN), or None."""
    return os.environ.get("KVLAB_WORKSHOP_TOKEN") or None


# ----------------------------------------------------------------------------- the room's database


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    """One Store per server on Streamlit's SQL connection (SQLAlchemy underneath)."""
    parsed = engine_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    conn = st.connection("workshop", type="sql", url=parsed.render_as_string(hide_password=False))
    return Store(conn.engine)


def database_url() -> str:
    """KVLAB_WORKSHOP_DB, else [connections.workshop] url in .streamlit/secrets.toml, else SQLite in data/."""
    if url := os.environ.get("KVLAB_WORKSHOP_DB"):
        return url
    try:
        return st.secrets["connections"]["workshop"]["url"]
    except (KeyError, FileNotFoundError, AttributeError):
        return DEFAULT_DB
    except Exception:  # a secrets.toml that does not parse: say nothing secret, use the default
        return DEFAULT_DB


def store() -> Store | None:
    """The shared store, or None (with the reason on the page) when the database cannot be opened."""
    try:
        return _store(database_url())
    except Exception as e:  # a bad URL, a server that is down: the lesson still works without the room
        st.warning(f"The room's database cannot be opened ({plain(type(e).__name__, 60)}); answers stay local.")
        return None


# ----------------------------------------------------------------------------- URL parameters


def params() -> dict[str, str]:
    """The workshop parameters of the current URL, validated (invalid ones dropped)."""
    q = st.query_params
    out: dict[str, str] = {}
    tour = q.get("tour", "")
    if tour in wp.paths():
        out["tour"] = tour
        try:
            step = int(q.get("step", "1"))
        except ValueError:
            step = 1
        out["step"] = str(min(max(step, 1), len(wp.paths()[tour].steps)))
    try:
        if q.get("room"):
            out["room"] = normalise_code(q.get("room", ""))
    except ValueError:
        pass
    if ME.fullmatch(q.get("me", "")):  # fullmatch: "$" would let a trailing newline through
        out["me"] = q["me"]
    if q.get("present") == "1":
        out["present"] = "1"
    return out


def link_warnings() -> None:
    """Say which workshop parameters of the link were not valid and were ignored (or replaced)."""
    q, ok = st.query_params, params()
    for key in WORKSHOP_KEYS:
        raw = q.get(key)
        if raw is None or ok.get(key) == raw or (key == "room" and ok.get(key) == raw.strip().upper()):
            continue
        if key == "step" and "tour" not in ok:
            continue  # a step without a valid path: the path's warning says it
        then = f"showing step {ok[key]} instead" if key in ok else "it was ignored"
        st.warning(f"Link: the workshop parameter {key}={plain(raw, 40)} is not valid here; {then}.")


def publish(view: dict[str, str]) -> None:
    """Write a page's view to the URL, keeping the workshop parameters."""
    st.query_params.from_dict({**view, **params()})


def presenting() -> bool:
    return st.query_params.get("present") == "1"


def room() -> str | None:
    return params().get("room") or st.session_state.get("ws.room")


def participant() -> str:
    """This browser's random participant id: from the URL when it has one, else made once per session."""
    me = params().get("me") or st.session_state.get("ws.me") or secrets.token_urlsafe(9)
    st.session_state["ws.me"] = me
    return me


def is_host(code: str | None) -> bool:
    key = st.session_state.get("ws.host")
    if not (code and key):
        return False
    s = store()
    return bool(s and s.is_host(code, key))


def step_link(tour: str, n: int, **extra: str) -> tuple[str, dict[str, str]]:
    """The page file and URL parameters of step n (1-based) of a path, carrying the room and presenter view."""
    step = wp.paths()[tour].steps[n - 1]
    keep = {k: v for k, v in params().items() if k in ("room", "me", "present")}
    return f"app_pages/{step.page}.py", {**step.view, **keep, **extra, "tour": tour, "step": str(n)}


# ----------------------------------------------------------------------------- presenter view

_PRESENT_CSS = """
<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stCaptionContainer"] {
  display: none !important; }
.stApp p, .stApp li, .stApp label p { font-size: 1.3rem !important; }
.stApp h1 { font-size: 2.2rem; } .stApp h2 { font-size: 2.0rem; } .stApp h3 { font-size: 1.7rem; }
[data-testid="stMetricValue"], [data-testid="stMetricValue"] div, [data-testid="stMetricValue"] p {
  font-size: 2.6rem !important; line-height: 1.2; }
[data-testid="stMetricLabel"] p { font-size: 1.2rem !important; }
.block-container { padding-top: 1.5rem; max-width: 100%; }
</style>
"""


def presenter_css() -> None:
    """Larger type, no sidebar, no captions. Colours stay the theme's: st.context.theme reports the browser's
    preference, not the app's theme, so forcing black or white text could put it on a background of the same
    colour (seen in screenshots of the dark theme)."""
    st.markdown(_PRESENT_CSS, unsafe_allow_html=True)


def bigger(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """A chart's fonts for a projector: 1.4x the page's sizes."""
    return (
        chart.configure_axis(labelFontSize=18, titleFontSize=20)
        .configure_legend(labelFontSize=18, titleFontSize=18)
        .configure_title(fontSize=22)
    )


# ----------------------------------------------------------------------------- lesson, question, step


@functools.cache
def _prose(page: str) -> str:
    """The lesson's text without its "Ask first" line (the answer box takes its place), read once."""
    return ASK.sub("", (LESSONS / f"{page}.md").read_text()).strip()


def lesson(page: str, prefix: str) -> None:
    """The page's lesson prose and its question, or the guided path's step card when the URL is on a step
    of this page. Call right after st.title and before the page reads its URL state: entering a new step
    resets the page's widgets (keys starting with `prefix`) so the step's view wins."""
    if presenting():
        presenter_css()
    link_warnings()
    prose = _prose(page)
    p = params()
    step = None
    if "tour" in p:
        tour, n = p["tour"], int(p["step"])
        step = wp.paths()[tour].steps[n - 1]
        if step.page != page:
            step = None
        elif st.session_state.get("ws.applied") != (tour, n):
            st.session_state["ws.applied"] = (tour, n)
            for k in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefix)]:
                del st.session_state[k]
    if presenting() or step is not None:
        with st.expander("The lesson", expanded=not presenting()):
            st.markdown(prose)
    else:
        st.markdown(prose)
    if step is not None:
        step_card(p["tour"], int(p["step"]), step)
    elif (q := wp.page_question(page)) is not None:
        with st.container(border=True):
            st.markdown("**Predict first**")
            ask(q)


def step_card(tour: str, n: int, step: wp.Step) -> None:
    path = wp.paths()[tour]
    with st.container(border=True):
        st.progress(n / len(path.steps), text=f"{path.title} · step {n} of {len(path.steps)}: **{step.title}**")
        st.markdown(f"**Look at:** {step.look}")
        ask(wp.questions()[step.question], step.takeaway)
        nav(tour, n)


def nav(tour: str, n: int) -> None:
    total = len(wp.paths()[tour].steps)
    a, b, c = st.columns([1, 1, 2])
    if n > 1:
        page, q = step_link(tour, n - 1)
        a.page_link(page, label="Back", icon=":material/arrow_back:", query_params=q)
    if n < total:
        page, q = step_link(tour, n + 1)
        b.page_link(page, label="Next step", icon=":material/arrow_forward:", query_params=q)
    else:
        b.page_link("app_pages/workshop.py", label="Finish", icon=":material/flag:", query_params=params())
    c.page_link("app_pages/workshop.py", label="All steps", icon=":material/list:", query_params=params())


def ask(q: wp.Question, takeaway: str | None = None) -> bool:
    """The question with an answer box; after a guess (or 'show me'), the engine's answer, how far the guess
    was, why, and the step's takeaway (its text, quoting the answer as {answer}). In a room the guess is
    stored for the presenter, who sees the room's guesses below, and predicting is blind: a participant sees
    "locked in" until the presenter reveals the answer, and guesses close then. Returns whether the answer
    is shown."""
    key = f"ws.{q.id}"
    code = room()
    host = is_host(code)
    s = store() if code else None
    in_room = s is not None
    revealed = in_room and _revealed(s, code, q.id)
    st.markdown(f"**{q.prompt}**")
    if not host and not revealed:
        with st.form(key + ".form", border=False):
            if q.kind == "number":
                guess = st.number_input(
                    f"Your guess ({q.unit})", min_value=float(q.min), max_value=float(q.max), value=None,
                    step=float(q.step), key=key + ".in", placeholder="type a number",
                )  # fmt: skip
            else:
                guess = st.radio("Your guess", q.choices, index=None, key=key + ".in", horizontal=True)
            a, b = st.columns([1, 1])
            sent = a.form_submit_button("Lock in my guess", type="primary")
            show_me = False if in_room else b.form_submit_button("Show me the answer")  # blind in a room
        if sent:
            if guess is None:
                st.warning("Type a guess first (or ask for the answer).")
            else:
                st.session_state[key] = guess
                _submit(code, q, guess)
        if show_me:
            st.session_state[key + ".shown"] = True
    elif host:
        a, b = st.columns([1, 1])
        if a.button("Reveal the answer", key=key + ".reveal", type="primary"):
            st.session_state[key + ".shown"] = True
            if s is not None:
                try:
                    s.reveal(code, st.session_state["ws.host"], q.id)
                    revealed = True
                except (ValueError, PermissionError) as e:
                    st.warning(f"Room {plain(code, 8)}: {plain(e, 200)}")
        if b.button("Clear this question's answers", key=key + ".reset"):
            if s is not None:
                s.reset(code, st.session_state["ws.host"], q.id)
                st.session_state.pop(key + ".shown", None)
                revealed = False
    guess = None if host else st.session_state.get(key)
    if in_room and not host:
        shown = revealed
        if guess is not None and not revealed:
            shown_guess = f"{guess:g} {q.unit}" if q.kind == "number" else str(guess)
            st.info(f"Locked in: **{plain(shown_guess, 80)}**. The answer appears here when the presenter reveals it.")
            _await_reveal(code, q.id)
    else:
        shown = guess is not None or st.session_state.get(key + ".shown", False) or (host and revealed)
    if shown and (a := reveal(q, guess)) and takeaway:
        st.success(f"**Takeaway:** {takeaway.replace('{answer}', a['shown'])}")
    if host:
        room_panel(code, q, shown)
    return shown


def _revealed(s: Store, code: str, question: str) -> bool:
    try:
        return s.revealed(code, question)
    except Exception:  # a malformed code or a database that went away: not revealed, and the lesson goes on
        return False


def _await_reveal(code: str, question: str) -> None:
    """A participant who locked in checks every few seconds whether the presenter has revealed the answer, and
    reruns the page when they have."""

    @st.fragment(run_every=POLL_SECONDS)
    def wait() -> None:
        s = store()
        if s is not None and _revealed(s, code, question):
            st.rerun()

    wait()


def _submit(code: str | None, q: wp.Question, guess) -> None:
    s = store() if code else None
    if s is None:
        return
    try:
        if q.kind == "number":
            s.submit(code, q.id, participant(), value=float(guess))
        else:
            s.submit(code, q.id, participant(), choice=str(guess))
        st.toast(f"Guess sent to room {code}.")
    except (ValueError, PermissionError) as e:
        st.warning(f"Room {plain(code, 8)}: {plain(e, 200)}")


@st.cache_data(show_spinner="Computing the engine's answer...", max_entries=64)
def _answer(question_id: str) -> dict:
    a = wp.answer(question_id)
    return {"value": a.value, "choice": a.choice, "shown": a.shown, "why": a.why}


def reveal(q: wp.Question, guess) -> dict | None:
    """The engine's answer beside the guess, and that answer; None (with the reason) when the engine cannot
    compute it."""
    try:
        a = _answer(q.id)
    except Exception as e:  # a missing package or shipped file: say so, never a traceback
        st.error(f"The engine could not compute this answer: {plain(e, 300)}")
        return None
    truth = wp.Answer(a["value"], a["choice"], a["shown"], a["why"])
    cols = st.columns([1, 2])
    cols[0].metric("The engine's answer", a["shown"])
    with cols[1]:
        if guess is not None:
            shown = f"{guess:g} {q.unit}" if q.kind == "number" else str(guess)
            try:
                judged = wp.verdict(q, truth, guess)
            except ValueError as e:  # a guess that is not a finite number: say so, never a traceback
                judged = plain(e, 100)
            st.markdown(f"Your guess: **{plain(shown, 80)}**. {judged}")
        st.markdown(a["why"])
    return a


def room_panel(code: str, q: wp.Question, revealed: bool) -> None:
    """The presenter's live view of the room's guesses on this question, refreshed every few seconds; the
    answer joins the chart only once revealed (the room is looking at the same screen)."""

    @st.fragment(run_every=POLL_SECONDS)
    def live() -> None:
        s = store()
        if s is None:
            return
        answers = s.answers(code, q.id)
        st.markdown(f"Room **{code}**: **{len(answers)}** answered.")
        if answers:
            try:
                a = _answer(q.id) if revealed else None
            except Exception:  # reveal() has said why; the guesses still show
                a = None
            truth = None if a is None else a["value"] if q.kind == "number" else a["choice"]
            df = pd.DataFrame({"guess": answers})
            chart = guesses_chart(df, q.kind, truth, q.unit, list(q.choices), a and a["shown"])
            from app_pages.figures import to_spec  # figures imports this module

            st.vega_lite_chart(to_spec(chart), width="stretch", height=chart_height(q.kind, list(q.choices)))

    live()
