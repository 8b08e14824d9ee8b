"""Workshop mode on every page: the lesson prose, the page's question (predict, then reveal), the guided
path's step card, the room's answers, and the presenter view.

Workshop parameters ride in the URL beside a page's own view, so a link (or a reload) keeps them:
  tour=<path id>  step=<1-based>  room=<6-character code>  present=1
They are validated here; anything else in them is ignored with a warning. Who you are in a room is not in the
URL (a link pasted in a chat would make everyone who opens it the same participant): the server issues a
participant token when this browser first joins or answers, and keeps it in the session and in a cookie of
this browser session, as it keeps a presenter's key, so a reload keeps your role and another browser opening
your link is someone new. An old link's `me=` is ignored.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import secrets
import time
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
COOKIE = re.compile(r"([A-Z2-9]{6})\.([A-Za-z0-9_-]{8,128})")  # "<room code>.<token or key>"
COOKIE_ME, COOKIE_HOST = "kvlab_me", "kvlab_host"
ASK = re.compile(r"^\*Ask first:\*.*?(?=\n\s*\n|\Z)", re.S | re.M)
DEFAULT_DB = f"sqlite:///{ROOT / 'data' / 'workshop.db'}"
POLL_SECONDS = 3

# How often one visitor (one browser session, and one address as the server sees it) may start a room, and
# fail to join one (guessing codes); per server process. Environment: KVLAB_ROOMS_PER_HOUR (default 10),
# KVLAB_TRUSTED_PROXIES (addresses whose X-Forwarded-For is believed; default the loopback, where `make serve`
# puts nginx) and KVLAB_WORKSHOP_TOKEN (when set, starting a room needs it).


def _env_count(name: str, default: int) -> int:
    """A positive whole number from the environment; the default (and a line in the server's log) otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
        if value >= 1:
            return value
    except ValueError:
        pass
    logging.getLogger(__name__).warning("%s=%r is not a whole number of at least 1: using %d", name, raw[:40], default)
    return default


ROOMS = RateLimiter(_env_count("KVLAB_ROOMS_PER_HOUR", 10), 3600)
JOIN_MISSES = RateLimiter(20, 600)
# New participants per room and hour: one browser session (it keeps its participant; it makes a new one only
# after leaving), and one address (a class behind one address, as many schools are, all count here; a larger
# class sets KVLAB_PARTICIPANTS_PER_ADDRESS).
JOINS_PER_SESSION = RateLimiter(5, 3600)
JOINS_PER_ADDRESS = RateLimiter(_env_count("KVLAB_PARTICIPANTS_PER_ADDRESS", 60), 3600)
TRUSTED_PROXIES = tuple(
    a.strip() for a in os.environ.get("KVLAB_TRUSTED_PROXIES", "127.0.0.1,::1").split(",") if a.strip()
)


def visitor() -> tuple[str, ...]:
    """The keys one visitor is limited by: this browser session, and its address when the server knows it."""
    sid = st.session_state.setdefault("ws.visitor", secrets.token_hex(8))
    headers = dict(st.context.headers or {})
    # Streamlit reports no address for a loopback peer (where `make serve` puts nginx): a session that came
    # with request headers but no address came from the loopback.
    peer = st.context.ip_address or ("127.0.0.1" if headers else None)
    addr = client_address(peer, headers, TRUSTED_PROXIES)
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
    if q.get("present") == "1":
        out["present"] = "1"
    return out


def link_warnings() -> None:
    """Say which workshop parameters of the link were not valid and were ignored (or replaced)."""
    q, ok = st.query_params, params()
    for key in WORKSHOP_KEYS:
        raw = q.get(key)
        if key == "me":
            continue  # retired: who you are is no longer in links (see the module docstring)
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


# ----------------------------------------------------------------------------- who this browser is in a room


def _cookie(name: str) -> tuple[str, str] | None:
    """(room code, secret) from this browser's cookie `name`, when it has that shape; None otherwise. The
    server reads cookies as the browser sent them when this session opened (a reload sends the new ones)."""
    try:
        raw = st.context.cookies.get(name)
    except Exception:  # no browser behind this session (a bare script run)
        return None
    m = COOKIE.fullmatch(raw) if isinstance(raw, str) else None
    return (m.group(1), m.group(2)) if m else None


def remember(name: str, code: str | None = None, secret: str | None = None) -> None:
    """Keep (code, secret) in this browser's cookie `name` for the browser session; forget it when None."""
    st.session_state.setdefault("ws.cookies", {})[name] = f"{code}.{secret}" if code and secret else None


def write_cookies() -> None:
    """Send the cookies this session decided on to the browser (a few bytes of script in the sidebar, which
    presenter view hides; run on every page so a rerun right after deciding cannot lose them)."""
    out = st.session_state.get("ws.cookies")
    if not out:
        return
    lines = []
    for name, value in sorted(out.items()):
        if value is None:
            lines.append(f"document.cookie = {json.dumps(name + '=; path=/; max-age=0; SameSite=Strict')};")
        elif COOKIE.fullmatch(value):  # only what we made: a room code and a URL-safe token
            lines.append(f"document.cookie = {json.dumps(f'{name}={value}; path=/; SameSite=Strict')} + secure;")
    script = "const secure = location.protocol === 'https:' ? '; Secure' : '';\n" + "\n".join(lines)
    st.sidebar.html(f"<script>{script}</script>", unsafe_allow_javascript=True)


def participant(code: str | None) -> str | None:
    """This browser's participant token in room `code`: the session's, else its cookie's when the room issued
    it (a reload); None when this browser has not joined (it joins on its first answer)."""
    held = st.session_state.get("ws.me")
    if code and held and held[0] == code:
        return held[1]
    c = _cookie(COOKIE_ME)
    s = store() if code and c and c[0] == code else None
    if s is not None and s.is_participant(code, c[1]):
        st.session_state["ws.me"] = c
        return c[1]
    return None


def enter(code: str) -> str:
    """This browser's participant token in room `code`, joining it when it has none: the server issues the
    token, at most JOINS_PER_SESSION and JOINS_PER_ADDRESS new participants per room and hour. ValueError
    with the reason (no room, a limit and when to retry)."""
    if (token := participant(code)) is not None:
        return token
    s = store()
    if s is None:
        raise ValueError("the room's database cannot be opened")
    if not s.room_exists(code):
        raise ValueError(f"there is no room {code} on this server (a mistyped code, or a room that has expired)")
    session, *address = [f"{code}|{k}" for k in visitor()]
    crowded = (
        f"this network has let {JOINS_PER_ADDRESS.max_events} participants into room {code} in the last hour, the "
        "server's limit per address: try again in {} minute(s), or ask the presenter"
    )
    if wait := JOINS_PER_ADDRESS.wait(*address):
        raise ValueError(crowded.format(max(1, round(wait / 60))))
    if wait := JOINS_PER_SESSION.take(session):
        raise ValueError(
            f"this browser has joined room {code} as someone new {JOINS_PER_SESSION.max_events} times in the last "
            f"hour, the server's limit: try again in {max(1, round(wait / 60))} minute(s)"
        )
    if wait := JOINS_PER_ADDRESS.take(*address):
        raise ValueError(crowded.format(max(1, round(wait / 60))))
    token = s.join(code)
    st.session_state["ws.me"] = (code, token)
    remember(COOKIE_ME, code, token)
    return token


def leave() -> None:
    """Forget this browser's room and participant (the next answer in a room joins afresh)."""
    for k in ("ws.room", "ws.me"):
        st.session_state.pop(k, None)
    remember(COOKIE_ME)


def is_host(code: str | None) -> bool:
    """Whether this browser presents room `code`: the session's key, else (after a reload) its cookie's."""
    if not code:
        return False
    key = st.session_state.get("ws.host")
    if key is None and (c := _cookie(COOKIE_HOST)) is not None and c[0] == code:
        key = c[1]
    s = store() if key else None
    if not (s and s.is_host(code, key)):
        return False
    st.session_state.update({"ws.host": key, "ws.room": code})
    return True


def become_host(code: str, key: str) -> None:
    """This browser now presents room `code`: for this session, and for a reload (a browser-session cookie)."""
    st.session_state.update({"ws.room": code, "ws.host": key})
    st.session_state.pop("ws.me", None)
    remember(COOKIE_HOST, code, key)


def step_link(tour: str, n: int, **extra: str) -> tuple[str, dict[str, str]]:
    """The page file and URL parameters of step n (1-based) of a path, carrying the room and presenter view."""
    step = wp.paths()[tour].steps[n - 1]
    keep = {k: v for k, v in params().items() if k in ("room", "present")}
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
    write_cookies()  # after the answer box: a first answer in a room has just joined it


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
        remedies(code, q)
    return shown


def _shown(q: wp.Question, answer: float | str) -> str:
    return f"{answer:g} {q.unit}" if q.kind == "number" else str(answer)


def remedies(code: str, q: wp.Question) -> None:
    """The presenter's way to take a flood, or one joke answer, out of the room's chart without clearing the
    real guesses: remove chosen answers, or every guess outside a band. Those who gave them are muted in the
    room (their later guesses are refused)."""
    s = store()
    try:
        rows = s.answer_rows(code, q.id) if s is not None else []
    except ValueError:  # the room expired under us: the live panel says so
        rows = []
    key = f"ws.{q.id}.rm"
    if done := st.session_state.pop(key + ".done", None):
        st.toast(done)
    if not rows:
        return
    now = time.time()
    names = {ref: f"{_shown(q, a)} · {max(0, round(now - t))} s ago · #{ref[:6]}" for ref, a, t in rows}

    def run(remove) -> None:  # a callback: runs before the page, so the pick can be cleared
        try:
            n = remove(st.session_state["ws.host"])
            st.session_state[key + ".done"] = f"Removed {n} answer(s); whoever gave them is muted in this room."
        except (ValueError, PermissionError) as e:
            st.session_state[key + ".done"] = f"Nothing removed: {plain(e, 200)}"
        st.session_state.pop(key + ".pick", None)

    with st.expander(f"Remove answers (a flood, a joke) without clearing the room: {len(rows)} in"):
        picked = st.multiselect(
            "Answers to remove (value · when · who)", list(names), format_func=names.get, key=key + ".pick"
        )
        st.button(
            "Remove these and mute who gave them", key=key + ".one", disabled=not picked,
            on_click=run, args=(lambda k: s.remove(code, k, q.id, list(picked)),),
        )  # fmt: skip
        if q.kind == "number":
            a, b = st.columns(2)
            low = a.number_input(
                f"Keep guesses from ({q.unit})", value=float(q.min), min_value=float(q.min),
                max_value=float(q.max), key=key + ".low",
            )  # fmt: skip
            high = b.number_input(
                f"up to ({q.unit})", value=float(q.max), min_value=float(q.min), max_value=float(q.max),
                key=key + ".high",
            )  # fmt: skip
            out = sum(1 for _, v, _ in rows if not low <= v <= high)
            st.button(
                f"Remove the guesses outside this band ({out} now) and mute who gave them", key=key + ".band",
                disabled=out == 0 or low > high,
                on_click=run, args=(lambda k: s.remove_outside(code, k, q.id, low, high),),
            )  # fmt: skip


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
        me = enter(code)  # a link's visitor joins on their first answer
        if q.kind == "number":
            s.submit(code, q.id, me, value=float(guess))
        else:
            s.submit(code, q.id, me, choice=str(guess))
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
