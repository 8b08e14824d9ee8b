"""bench/loadtest.py's light client: a move it sends reruns the page as a browser's would, for sliders and for
pills (Latent rank has no slider, so without pills its participants would only load the page), and after a
rerun it holds what a browser holds (the moved value, not the redrawn widget's declared default)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

websockets = pytest.importorskip("websockets")

from bench import loadtest as lt  # noqa: E402
from bench.pages import Server  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with Server("app.py") as s:
        yield s


def move_once(url: str, page: str, label: str):
    """Open `page` in a fresh session (the server's first run of it), move the control `label` one step as a
    participant does; the first load, the control, the index moved to, the move's rerun, and the controls
    the client holds after it."""

    async def go():
        async with websockets.connect(lt.ws_url(url), subprotocols=["streamlit"], max_size=None) as ws:
            first = await lt.rerun(ws, lt.first_state(page))
            controls, states = {}, {}
            lt.remember(controls, states, first, whole=True)
            [c] = [c for c in controls.values() if c.label == label]
            to = c.index + 1 if c.index + 1 <= c.hi else c.index - 1
            states[c.id] = c.state(to)
            moved = await lt.rerun(ws, lt.move_state(page, states, c.fragment_id))
            c.index = to
            lt.remember(controls, states, moved, whole=not c.fragment_id)
            return first, c, to, moved, controls

    # in a thread of its own: the browser tests' Playwright leaves an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def test_a_pill_click_sets_the_latent_rank(server):
    first, pill, to, moved, held = move_once(server.url, "latent_rank", "Latent rank d_c")
    assert first.finished and not first.exceptions and len(first.elements) > 20  # the page, not a first run
    assert len(pill.options) >= 10 and pill.fragment_id  # the ranks as pills, inside the page's st.fragment
    assert moved.finished and not moved.exceptions
    rank = int(pill.options[int(to)].split()[0])  # "330 (10% rank)" -> 330
    assert moved.query_string == f"rank={rank}"  # the script read the click: the view's link has the new rank
    assert held[pill.id].index == to


def test_a_slider_move_in_a_fragment_reruns_the_fragment_with_the_moved_value(server):
    first, slider, to, moved, held = move_once(server.url, "planner", "Context (tokens, log scale)")
    assert slider.options and slider.fragment_id  # a select slider inside the view's st.fragment
    assert moved.finished and not moved.exceptions
    assert 0 < len(moved.elements) < len(first.elements)  # the fragment's elements, not the whole page
    value = slider.options[int(to)]  # "256K"
    assert moved.query_string == f"context={int(value[:-1]) * {'K': 1024, 'M': 1 << 20}[value[-1]]}"
    # the redrawn slider carries its declared default (the first option), the client keeps the moved one
    [redrawn] = [c for c in moved.controls.values() if c.label == slider.label]
    assert redrawn.index != to and held[slider.id].index == to
