"""The workshop's limits against clients that skip the browser: raw sessions over Streamlit's own websocket
protocol (bench/loadtest.py's client) against a live server with small limits, each session claiming a client
address through X-Forwarded-For as nginx would send it (the server trusts it from the loopback only).

Proves, as an attacker would try it: one address starting rooms session after session is stopped at the limit
with when to retry, while another address still starts one; one address opening session after session to become
many participants of a room gets the per-address allowance and no more, while another address still joins."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

websockets = pytest.importorskip("websockets")

from streamlit.proto.WidgetStates_pb2 import WidgetState  # noqa: E402

from bench import loadtest as lt  # noqa: E402
from bench.pages import Server  # noqa: E402
from core.workshop.store import Store  # noqa: E402

ROOMS_PER_HOUR = 3
PARTICIPANTS_PER_ADDRESS = 4
PAGE = "workshop"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    db = f"sqlite:///{tmp_path_factory.mktemp('ws') / 'workshop.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KVLAB_WORKSHOP_DB", db)
        mp.setenv("KVLAB_ROOMS_PER_HOUR", str(ROOMS_PER_HOUR))
        mp.setenv("KVLAB_PARTICIPANTS_PER_ADDRESS", str(PARTICIPANTS_PER_ADDRESS))
        with Server("app.py") as server:
            yield server.url, Store.from_url(db)


async def act(url: str, address: str, fill: dict[str, str], press: str) -> lt.Rerun:
    """A fresh session from `address`: open the Workshop page, type `fill` (label -> text) and press `press`,
    as a browser sends it (every widget's state, the typed ones, and the button's trigger); the run after."""
    headers = {"X-Forwarded-For": address}
    async with websockets.connect(
        lt.ws_url(url), subprotocols=["streamlit"], max_size=None, additional_headers=headers
    ) as ws:
        first = await lt.rerun(ws, lt.first_state(PAGE))
        assert first.finished and not first.exceptions, first.exceptions
        states = dict(first.states)
        for label, text in fill.items():
            states[first.widgets[label]] = WidgetState(id=first.widgets[label], string_value=text)
        state = lt.move_state(PAGE, states, "")
        state.widget_states.widgets.append(WidgetState(id=first.widgets[press], trigger_value=True))
        after = await lt.rerun(ws, state)
        assert after.finished and not after.exceptions, after.exceptions
        return after


def run(url: str, address: str, fill: dict[str, str], press: str) -> lt.Rerun:
    """`act` on an event loop of its own thread: in the full suite the browser tests' Playwright keeps one
    running in this thread, where asyncio.run refuses to start another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, act(url, address, fill, press)).result()


def rooms(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.exec_driver_sql("select count(*) from rooms").scalar()


def participants(store: Store, code: str) -> int:
    with store.engine.connect() as conn:
        return conn.exec_driver_sql("select count(*) from participants where room = ?", (code,)).scalar()


def test_one_address_starting_rooms_in_a_loop_is_stopped_and_another_still_starts(live):
    url, store = live
    before = rooms(store)
    for i in range(ROOMS_PER_HOUR + 2):
        r = run(url, "203.0.113.7", {}, "Start a new room")
        said = " ".join(r.texts)
        if i < ROOMS_PER_HOUR:
            assert "you are presenting" in said, said[:300]
        else:
            assert "this server's limit per visitor" in said and "try again in" in said, said[:300]
            assert "Resume as presenter" in r.widgets  # the presenter's way back stays on screen
    assert rooms(store) == before + ROOMS_PER_HOUR
    other = run(url, "198.51.100.9", {}, "Start a new room")
    assert any("you are presenting" in t for t in other.texts), other.texts
    assert rooms(store) == before + ROOMS_PER_HOUR + 1


def test_one_address_cannot_flood_a_room_with_participants(live):
    url, store = live
    code, _ = store.create_room("workshop")
    said = []
    for _ in range(PARTICIPANTS_PER_ADDRESS + 3):
        r = run(url, "192.0.2.44", {"Room code": code}, "Join")
        said.append(" ".join(r.texts))
    joined = [s for s in said if f"Joined room **{code}**" in s]
    refused = [s for s in said if f"participants into room {code} in the last hour" in s]
    assert len(joined) == PARTICIPANTS_PER_ADDRESS and len(refused) == 3, said
    assert participants(store, code) == PARTICIPANTS_PER_ADDRESS
    r = run(url, "192.0.2.45", {"Room code": code}, "Join")
    assert any(f"Joined room **{code}**" in t for t in r.texts)
    assert participants(store, code) == PARTICIPANTS_PER_ADDRESS + 1
