"""Workshop: pick a guided path, start or join a room, and walk the steps (predict, then reveal)."""

import hmac

import streamlit as st

from app_pages import workshop_ui as ws
from core.view.text import plain
from core.workshop import path as wp
from core.workshop.store import normalise_code

if st.session_state.get("ws.present", ws.presenting()):  # the toggle below, as it stands in this run
    ws.presenter_css()
st.title("Workshop")
st.markdown(
    "A guided path through the lessons. Each step opens a page with a prepared view, says what to look at and "
    "asks a question: **predict first**, then reveal the engine's answer (computed live, never typed in) and "
    "the takeaway. In a **room**, everyone's guesses go to the presenter, who sees them against the answer."
)

ws.link_warnings()
url = ws.params()
paths = wp.paths()
ids = list(paths)
if (pending := st.session_state.pop("ws.pending_tour", None)) in paths:
    st.session_state["ws.tour"] = pending  # a room just joined or resumed: its path
default = url.get("tour")
if default is None and "room" in url and (s := ws.store()) is not None:
    default = s.room_path(url["room"])
tour = st.radio(
    "Path",
    ids,
    index=ids.index(default if default in paths else ids[0]),
    format_func=lambda i: f"{paths[i].title} ({len(paths[i].steps)} steps, about {paths[i].minutes} minutes)",
    key="ws.tour",
)
path = paths[tour]
st.caption(path.audience)


def join() -> None:
    with st.form("ws.join", border=False):
        raw = st.text_input("Room code", max_chars=12, placeholder="e.g. K7Q2MX", key="ws.join.code")
        if st.form_submit_button("Join", type="primary"):
            try:
                code = normalise_code(raw)
            except ValueError as e:
                st.error(plain(e, 200))
                return
            if wait := ws.JOIN_MISSES.wait(*ws.visitor()):
                st.error(f"Too many codes that open no room: try again in {max(1, round(wait / 60))} minute(s).")
                return
            s = ws.store()
            if s is None or not s.room_exists(code):
                ws.JOIN_MISSES.take(*ws.visitor())  # guessing codes costs; a right code costs nothing
                st.error(f"No room {plain(code, 8)} here: check the code on the presenter's screen.")
                return
            st.session_state.pop("ws.host", None)
            ws.leave()  # another room's participant, if any, is not this one's
            try:
                ws.enter(code)
            except ValueError as e:
                st.error(plain(e, 300))
                return
            st.session_state.update({"ws.room": code, "ws.pending_tour": s.room_path(code)})
            st.query_params.update({"room": code})
            st.rerun()


def host() -> None:
    s = ws.store()
    if s is None:
        return
    token = ws.operator_token()
    given = st.text_input("Operator token", type="password", max_chars=200, key="ws.token") if token else None
    if st.button("Start a new room", type="primary", key="ws.create"):
        code = None
        if token and not hmac.compare_digest((given or "").strip().encode(), token.encode()):
            st.error("Starting a room on this server needs the operator token; ask whoever runs it.")
        elif wait := ws.ROOMS.take(*ws.visitor()):  # check and count at once: parallel clicks cannot slip past
            st.error(
                f"You have started {ws.ROOMS.max_events} rooms in the last hour, this server's limit per visitor: "
                f"try again in {max(1, round(wait / 60))} minute(s), or resume one of yours below."
            )
        else:
            try:
                code, key = s.create_room(tour)
            except ValueError as e:  # the server's room cap: the forms below stay
                st.error(plain(e, 200))
        if code is not None:
            ws.become_host(code, key)
            st.session_state["ws.new_key"] = key
            st.query_params.update({"room": code})
            st.rerun()
    resume(s)


def resume(s, code: str | None = None) -> None:
    """The presenter's way back: the room's code (filled in when known) and the presenter key."""
    with st.form("ws.resume", border=False):
        a, b = st.columns(2)
        typed = a.text_input("Code of your room", value=code or "", max_chars=12, key="ws.resume.code")
        key = b.text_input("Presenter key", max_chars=64, type="password", key="ws.resume.key")
        if st.form_submit_button("Resume as presenter"):
            try:
                typed, key = normalise_code(typed), key.strip()  # a pasted key often brings a space
                if not s.is_host(typed, key):
                    raise ValueError("that code and key do not open a room here.")
            except ValueError as e:
                st.error(plain(e, 200))
                return
            ws.become_host(typed, key)
            st.session_state["ws.pending_tour"] = s.room_path(typed)
            st.query_params.update({"room": typed})
            st.rerun()


code = ws.room()
hosting = ws.is_host(code)
with st.container(border=True):
    if code and hosting:
        st.markdown(f"### Room **{code}**: you are presenting")
        st.markdown(
            f"Participants open this app's **Workshop** page and join with the code **{code}**. You see how many "
            "answered each question and their guesses against the answer; they see their own."
        )
        if st.session_state.pop("ws.new_key", None):
            st.info(
                "Keep your presenter key: it resumes this room from another browser or after a reload, and the "
                "server keeps only its hash. *Show my presenter key* shows it again in this browser session."
            )
        with st.expander("Show my presenter key"):
            st.code(st.session_state["ws.host"], language=None)
    elif code:
        s = ws.store()
        if s is not None and not s.room_exists(code):
            st.error(f"There is no room {code} on this server (a mistyped code, or a room that has expired).")
        else:
            st.markdown(f"### Joined room **{code}**")
        if st.button("Leave the room", key="ws.leave"):
            ws.leave()
            st.query_params.pop("room", None)
            st.rerun()
        if s is not None and s.room_exists(code):
            with st.expander("I am this room's presenter (after a reload)"):
                resume(s, code)
    else:
        a, b = st.tabs(["Join a room", "Present a room"])
        with a:
            join()
        with b:
            host()
        st.caption("Or walk the path on your own: your guesses stay in your browser session.")

present = st.toggle(
    "Presenter view (large type, no sidebar, the lesson prose folded away)", value=ws.presenting(), key="ws.present"
)
keep = {"tour": tour, **({"room": code} if code else {}), **({"present": "1"} if present else {})}
st.query_params.from_dict(keep)

st.subheader("Steps")
for n, step in enumerate(path.steps, 1):
    page, query = ws.step_link(tour, n)
    query = {**query, **{k: v for k, v in keep.items() if k != "tour"}}
    if not present:
        query.pop("present", None)
    st.page_link(page, label=f"{n}. {step.title}", query_params=query, icon=":material/play_circle:")
ws.write_cookies()
