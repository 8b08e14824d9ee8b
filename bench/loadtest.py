"""make loadtest: a workshop room on one server. N participants each open a page from a realistic mix and move
one of its controls (a slider, or a pill of a single-choice group such as Latent rank's) every 5-10 s for a
bounded time.

    python -m bench.loadtest [--participants 30] [--seconds 120] [--url http://127.0.0.1:PORT] [--json PATH]

A participant is a light client that speaks Streamlit's own websocket protocol (the protobufs the browser
sends: BackMsg.rerun_script with the page, the query string and the moved widget's state, and, for a
widget inside an st.fragment, the fragment's id, as the browser does), so 30 of them fit beside the server
on two cores, where 30 Chromium tabs would not. It reads the server's answer to the end of each rerun
(ForwardMsg.script_finished): the page's elements, its controls, any exception. `--check` first shows that
a rerun from this client runs the same script as a browser's: the same elements, in the same order.

Reported: per-interaction latency (send to script_finished) p50 / p95 / max, errors (exceptions shown,
disconnects, moves with no rerun within 60 s), the server's CPU time, its peak RSS and its RSS once every
participant has left. Without --url it starts its own server (app.py) and measures that process.
Targets (issue 12, this 2-core machine): 30 participants, p95 below 1 s, no errors, memory back within 20%
of its start after they leave.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

ROOT = Path(__file__).resolve().parent.parent
# (page_name, weight): what a room does in a workshop, the lessons more than the calculators
MIX = [("", 3), ("planner", 2), ("compute", 1), ("sparse", 2), ("hybrid", 1), ("latent_rank", 2),
       ("inside_mla", 2), ("quantized", 1), ("needle", 2)]  # fmt: skip
TIMEOUT_S = 60.0


@dataclass
class Control:
    """A control a participant moves: a slider, or a single-choice button group (st.pills,
    st.segmented_control), whose options are a row of buttons."""

    id: str
    label: str
    index: float  # numeric slider: its value; select_slider or button group: the index of its option
    lo: float
    hi: float
    step: float
    options: list[str]  # select_slider's or button group's options as the browser shows them; [] numeric
    fragment_id: str

    def moved(self, rng: random.Random) -> float:
        """One step right or left (left at the top), as an arrow key would move a slider, or a click on the
        pill beside the selected one."""
        v = self.index
        lo, hi, step = (0, len(self.options) - 1, 1) if self.options else (self.lo, self.hi, self.step or 1)
        return v + step if v + step <= hi and (rng.random() < 0.5 or v - step < lo) else v - step

    def state(self, index: float) -> WidgetState:
        w = WidgetState(id=self.id)
        if self.options:
            w.string_array_value.data.append(self.options[int(index)])
        else:
            w.double_array_value.data.append(index)
        return w


def control(el, fragment_id: str) -> Control | None:
    """The control an element is, or None: sliders, and button groups where one option is picked at a time
    (a multi-select group's click adds or removes an option, which this client does not model)."""
    kind = el.WhichOneof("type")
    if kind == "slider":
        s = el.slider
        if s.options:
            current = list(s.raw_value) if s.set_value else [s.options[int(i)] for i in s.default]
            index = float(list(s.options).index(current[0]))
        else:
            index = (s.value if s.set_value else s.default)[0]
        return Control(s.id, s.label, index, s.min, s.max, s.step, list(s.options), fragment_id)
    if kind == "button_group" and el.button_group.click_mode == el.button_group.SINGLE_SELECT:
        g = el.button_group
        options = [o.content for o in g.options]
        if len(options) < 2:
            return None
        current = list(g.raw_values) if g.set_value else [options[i] for i in g.default]
        index = float(options.index(current[0])) if current and current[0] in options else 0.0
        return Control(g.id, g.label, index, 0, len(options) - 1, 1, options, fragment_id)
    return None


def widget_state(el) -> WidgetState | None:
    """What the browser reports for a widget it shows, before anyone touches it (its value when the server
    set one, else its default); None for widgets that report nothing until used (buttons, uploads)."""
    kind = el.WhichOneof("type")
    p = getattr(el, kind)
    w = WidgetState(id=getattr(p, "id", ""))
    if kind == "slider":
        if p.options:
            w.string_array_value.data.extend(p.raw_value if p.set_value else [p.options[int(i)] for i in p.default])
        else:
            w.double_array_value.data.extend(p.value if p.set_value else p.default)
    elif kind in ("selectbox", "radio"):
        if p.set_value:
            w.string_value = p.raw_value
        elif p.HasField("default"):
            w.string_value = p.options[p.default]
        else:
            return None
    elif kind == "multiselect":
        w.string_array_value.data.extend(p.raw_values if p.set_value else [p.options[i] for i in p.default])
    elif kind == "number_input":
        w.double_value = p.value if p.set_value else p.default
    elif kind == "checkbox":
        w.bool_value = p.value if p.set_value else p.default
    elif kind in ("text_area", "text_input"):
        w.string_value = p.value if p.set_value else p.default
    elif kind == "button_group":  # the formatted options picked, as the browser sends them
        w.string_array_value.data.extend(p.raw_values if p.set_value else [p.options[i].content for i in p.default])
    else:
        return None
    return w if w.id else None


@dataclass
class Result:
    page: str
    latencies: list[float] = field(default_factory=list)
    first_load: float | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class Rerun:
    seconds: float
    elements: list[str]
    controls: dict[str, Control]
    states: dict[str, WidgetState]
    exceptions: list[str]
    finished: bool
    set_by_script: set[str] = field(default_factory=set)  # widgets whose value the script set in this run
    query_string: str | None = None  # the page's URL query, when the run changed it (the view's link)
    texts: list[str] = field(default_factory=list)  # markdown and alert bodies, as the page shows them
    widgets: dict[str, str] = field(default_factory=dict)  # a widget's label (a button's too) -> its id


def remember(controls: dict[str, Control], states: dict[str, WidgetState], r: Rerun, whole: bool) -> None:
    """What a browser keeps after a rerun: a widget it already shows keeps the value it holds, unless the script
    set one (a redrawn widget carries its declared default, not the value the user moved it to); new widgets
    come with theirs; after a whole-page run (`whole`, not a fragment's), widgets it did not draw are gone."""
    if whole:
        for gone in set(states) - set(r.states):
            del states[gone]
        for gone in set(controls) - set(r.controls):
            del controls[gone]
    for i, w in r.states.items():
        if i not in states or i in r.set_by_script:
            states[i] = w
    for i, c in r.controls.items():
        old = controls.get(i)
        keep = old is not None and i not in r.set_by_script and old.options == c.options
        controls[i] = replace(c, index=old.index) if keep else c


async def rerun(ws, state: ClientState) -> Rerun:
    """Send one rerun request and read until the script (or the fragment) finishes."""
    msg = BackMsg()
    msg.rerun_script.CopyFrom(state)
    start = time.perf_counter()
    await ws.send(msg.SerializeToString())
    elements: list[str] = []
    controls: dict[str, Control] = {}
    states: dict[str, WidgetState] = {}
    exceptions: list[str] = []
    set_by_script: set[str] = set()
    query_string = None
    texts: list[str] = []
    widgets: dict[str, str] = {}

    def done(finished: bool) -> Rerun:
        args = (elements, controls, states, exceptions, finished, set_by_script, query_string, texts, widgets)
        return Rerun(time.perf_counter() - start, *args)

    while True:
        try:
            raw = await asyncio.wait_for(ws.recv(), TIMEOUT_S)
        except TimeoutError:
            return done(False)
        fwd = ForwardMsg()
        fwd.ParseFromString(raw)
        kind = fwd.WhichOneof("type")
        if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
            el = fwd.delta.new_element
            what = el.WhichOneof("type")
            elements.append(what)
            if what == "exception":
                exceptions.append(el.exception.message[:200])
                continue
            if what in ("markdown", "alert"):
                texts.append(getattr(el, what).body)
            if (wid := getattr(getattr(el, what), "id", "")) and (label := getattr(getattr(el, what), "label", "")):
                widgets[label] = wid
            if (w := widget_state(el)) is not None:
                states[w.id] = w
                if getattr(el, what).set_value:
                    set_by_script.add(w.id)
            if (c := control(el, fwd.delta.fragment_id)) is not None:
                controls[c.id] = c
        elif kind == "page_info_changed":
            query_string = fwd.page_info_changed.query_string
        elif kind == "script_finished":
            if fwd.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:  # a new run replaces this one (a
                # session's first run on a fresh server: st.navigation registers the pages, then reruns)
                elements, controls, states, set_by_script, texts, widgets = [], {}, {}, set(), [], {}
                continue
            return done(True)


def first_state(page: str) -> ClientState:
    return ClientState(query_string="", page_name=page)


def move_state(page: str, states: dict[str, WidgetState], fragment_id: str) -> ClientState:
    """Every widget's state, as the browser sends them on each rerun, scoped to a fragment if the moved
    widget lives in one."""
    state = ClientState(query_string="", page_name=page, fragment_id=fragment_id)
    state.widget_states.widgets.extend(states.values())
    return state


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://").replace("https://", "wss://").rstrip("/") + "/_stcore/stream"


async def participant(url: str, page: str, deadline: float, rng: random.Random) -> Result:
    res = Result(page)
    try:
        async with websockets.connect(ws_url(url), subprotocols=["streamlit"], max_size=None, open_timeout=60) as ws:
            r = await rerun(ws, first_state(page))
            res.first_load = r.seconds
            res.errors += [f"{page}: exception: {e}" for e in r.exceptions]
            if not r.finished:
                res.errors.append("first load: no script_finished")
            controls, states = {}, {}
            remember(controls, states, r, whole=True)
            while time.monotonic() < deadline and controls:
                await asyncio.sleep(rng.uniform(5, 10))
                if time.monotonic() >= deadline:
                    break
                s = rng.choice(list(controls.values()))
                index = s.moved(rng)
                states[s.id] = s.state(index)
                r = await rerun(ws, move_state(page, states, s.fragment_id))
                if not r.finished:
                    res.errors.append(f"{page}: move of {s.label!r}: no rerun within {TIMEOUT_S:.0f} s")
                    continue
                res.latencies.append(r.seconds)
                res.errors += [f"{page}: exception: {e}" for e in r.exceptions]
                s.index = index
                remember(controls, states, r, whole=not s.fragment_id)
    except (OSError, websockets.WebSocketException) as e:
        res.errors.append(f"disconnected: {type(e).__name__}: {e}"[:200])
    return res


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of the server processes, together."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


async def room(url: str, n: int, seconds: float, seed: int, pids: list[int]) -> dict:
    rng = random.Random(seed)
    pages = rng.choices([p for p, _ in MIX], weights=[w for _, w in MIX], k=n)
    deadline = time.monotonic() + seconds
    peak = rss_bytes(pids)
    start_rss = peak

    async def watch():
        nonlocal peak
        while True:
            peak = max(peak, rss_bytes(pids))
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    tasks = []
    for i, page in enumerate(pages):  # arrive over the first 10 s, as a room does
        tasks.append(asyncio.create_task(participant(url, page, deadline, random.Random(seed + i))))
        await asyncio.sleep(10 / max(n, 1))
    results = await asyncio.gather(*tasks)
    await asyncio.sleep(5)  # sessions close; give the server a moment to drop them
    peak = max(peak, rss_bytes(pids))
    watcher.cancel()
    return {"results": results, "start_rss": start_rss, "peak_rss": peak, "end_rss": rss_bytes(pids)}


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def summarize(out: dict, cpu: float | None, n: int, seconds: float) -> dict:
    lat = [x for r in out["results"] for x in r.latencies]
    loads = [r.first_load for r in out["results"] if r.first_load is not None]
    errors = [e for r in out["results"] for e in r.errors]
    by_page: dict[str, list[float]] = {}
    for r in out["results"]:
        by_page.setdefault(r.page or "overview", []).extend(r.latencies)
    return {
        "participants": n,
        "seconds": seconds,
        "interactions": len(lat),
        "p50_s": round(statistics.median(lat), 3) if lat else None,
        "p95_s": round(percentile(lat, 0.95), 3),
        "max_s": round(max(lat), 3) if lat else None,
        "first_load_p95_s": round(percentile(loads, 0.95), 3),
        "errors": len(errors),
        "error_samples": errors[:10],
        "server_cpu_s": round(cpu, 1) if cpu is not None else None,
        "rss_start_mb": round(out["start_rss"] / 2**20),
        "rss_peak_mb": round(out["peak_rss"] / 2**20),
        "rss_end_mb": round(out["end_rss"] / 2**20),
        "by_page_p95_s": {p: round(percentile(v, 0.95), 3) for p, v in sorted(by_page.items())},
    }


async def check(url: str) -> None:
    """The same script as a browser: a rerun from this client yields the page's elements and controls."""
    async with websockets.connect(ws_url(url), subprotocols=["streamlit"], max_size=None) as ws:
        for page, _ in MIX:
            r = await rerun(ws, first_state(page))
            assert r.finished and not r.exceptions, (page, r.exceptions)
            print(f"  {page or 'overview':<12} {len(r.elements):>3} elements, {len(r.controls)} controls, "
                  f"{r.elements.count('vega_lite_chart')} charts, {r.seconds:.2f} s: "
                  f"{', '.join(repr(c.label) for c in r.controls.values())}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__.split("\n")[0])
    ap.add_argument("--participants", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--url", help="a running server (default: start one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="open every page of the mix once and list its elements")
    ap.add_argument("--replicas", type=int, default=0, help="N app processes behind nginx (deploy/serve.py)")
    ap.add_argument("--json", default="bench/results/loadtest.json")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.pages import Server, cpu_seconds
    from deploy.serve import Cluster

    if a.url:
        server, url, pids = None, a.url, []
    elif a.replicas:
        server = Cluster(a.replicas, port=free_port()).__enter__()
        url, pids = server.url, server.pids()
    else:
        server = Server("app.py")
        url, pids = server.url, [server.proc.pid]
    try:
        if a.check:
            asyncio.run(check(url))
            return
        if server:  # warm every replica: every page of the mix, as the presenter would before the room arrives
            # (each replica directly: through nginx, a replica could stay cold and pay its caches during the room)
            for direct in [f"http://127.0.0.1:{p}" for p in server.ports] if a.replicas else [url]:
                asyncio.run(check(direct))
            time.sleep(2)
        cpu0 = [cpu_seconds(p) for p in pids]
        out = asyncio.run(room(url, a.participants, a.seconds, a.seed, pids))
        cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
        summary = summarize(out, sum(cpu) if pids else None, a.participants, a.seconds)
        summary["replicas"] = max(a.replicas, 1)
        summary["server_cpu_s_per_process"] = [round(c, 1) for c in cpu]
    finally:
        if server:
            server.__exit__(None, None, None)
    print(json.dumps(summary, indent=2))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
