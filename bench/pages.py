"""Server CPU per page: what one person costs the server, measured from the server process's own counters.

    python -m bench.pages [--pages overview,planner] [--moves 4] [--json PATH]

For the app and, side by side, a trivial Streamlit app (one slider, one chart: bench/trivial_app.py), it
starts a real server, drives it with headless Chromium and reads the server's CPU time (/proc/PID/stat,
user + system, every thread) around each interaction, waiting until the server has been idle for a while
so that the whole rerun is counted:
- first load: a new browser session opens the page after another session already opened it (the server
  is warm: imports done, shared caches filled), until the page has rendered and the server is idle;
- move: key presses on each of the page's first sliders, alternately ArrowRight and ArrowLeft (so the view
  goes back and forth between two stops), or on a page without sliders, clicks on its first pills; a
  slider's CPU per move is the mean of `--repeat` moves (the kernel counts CPU in 10 ms ticks, so one move
  alone is too coarse to compare with a trivial app's 0.02 s), and the page's is the median over sliders.
Budgets (issue 12): per move at most 2x the trivial app's on Overview, Planner and Compute and at most
0.3 s on every other page; first load at most 1.5 s. Benchmarks report; they never fail the build.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from browser import launch  # noqa: E402

from deploy.serve import SERVER_ENV  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PAGES = ["overview", "planner", "compute", "sparse", "hybrid", "latent_rank", "inside_mla", "quantized", "needle",
         "real_model"]  # fmt: skip
RELATIVE = {"overview", "planner", "compute"}  # budget: 2x the trivial app's move
MOVE_BUDGET_S, LOAD_BUDGET_S, RELATIVE_FACTOR = 0.3, 1.5, 2.0
COLD_BUDGET_S = 3.0  # issue 25: a page's first visit on a started server, wall clock, until it has rendered
QUIET_S = 0.6  # Server.settle's quiet window, taken off a wall-clock measure that ends with it
SLIDER = "[data-testid='stSlider'] input[type='range']"
PILL = "[data-testid='stButtonGroup'] button"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A Streamlit server for `script` on a free port, stopped on exit."""

    def __init__(self, script: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
             "--server.port", str(self.port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=os.environ | SERVER_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        end = time.time() + 120
        while time.time() < end:
            try:
                urllib.request.urlopen(self.url + "/_stcore/health", timeout=2)
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"the server for {script} did not start")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def settle(self, quiet: float = 0.6, timeout: float = 300) -> float:
        """Wait until the server has used no CPU for `quiet` seconds (a rerun has finished); its CPU then."""
        last, since, end = self.cpu(), time.time(), time.time() + timeout
        while time.time() < end:
            time.sleep(0.05)
            now = self.cpu()
            if now - last > 0.005:
                last, since = now, time.time()
            elif time.time() - since >= quiet:
                return now
        return self.cpu()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def open_page(browser, server: Server, path: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(server.url + path, wait_until="domcontentloaded")
    page.wait_for_selector("[data-testid='stMain']", timeout=120_000)
    return page


def measure_page(browser, server: Server, path: str, moves: int, repeat: int) -> dict:
    """The page's first visit (wall clock: its caches cold, the server started), first load (CPU, warm server)
    and the CPU of each slider move (the mean of `repeat` moves), in seconds."""
    start = time.perf_counter()
    warm = open_page(browser, server, path)  # fills the server's shared caches
    server.settle(quiet=QUIET_S)
    cold = time.perf_counter() - start - QUIET_S
    warm.context.close()
    server.settle()
    before = server.cpu()
    page = open_page(browser, server, path)
    load = server.settle() - before
    page.wait_for_selector("[data-testid='stVegaLiteChart']", timeout=60_000)  # rendered, sections included
    page.wait_for_timeout(500)
    out = {"path": path, "cold_load_s": round(cold, 2), "first_load_s": round(load, 3), "moves": []}
    sliders = page.locator(SLIDER)
    for i in range(min(moves, sliders.count())):
        s = sliders.nth(i)
        s.scroll_into_view_if_needed()
        right = s.input_value() != s.get_attribute("max")
        cpus = []
        for _ in range(repeat):  # there and back again: the view alternates between two neighbouring stops
            before = server.cpu()
            s.focus()
            s.press("ArrowRight" if right else "ArrowLeft")
            cpus.append(server.settle() - before)
            right = not right
        label = (s.get_attribute("aria-label") or "")[:40]
        out["moves"].append({"slider": label, "cpu_s": round(statistics.fmean(cpus), 4), "each_s": cpus})
    pills = page.locator(PILL)  # a page whose wide control is pills (Latent rank): click the next ones instead
    for i in range(min(moves - len(out["moves"]), pills.count() - 1)):
        cpus = []
        for r in range(repeat):  # the next pill, then back to the first one
            p = pills.nth(i + 1 if r % 2 == 0 else 0)
            p.scroll_into_view_if_needed()
            before = server.cpu()
            p.click()
            cpus.append(server.settle() - before)
        label = f"pill {pills.nth(i + 1).inner_text()[:30]}"
        out["moves"].append({"slider": label, "cpu_s": round(statistics.fmean(cpus), 4), "each_s": cpus})
    errors = page.locator("[data-testid='stException']").count()
    out["exceptions"] = errors
    moves_ = out["moves"]
    out["move_median_s"] = round(statistics.median(m["cpu_s"] for m in moves_), 4) if moves_ else None
    # The first move of a slider goes to a stop this server has not drawn yet (its caches miss); the others go
    # back and forth between two stops it has drawn, as in a room where many people move the same slider.
    out["first_visit_s"] = round(statistics.median(m["each_s"][0] for m in moves_), 4) if moves_ else None
    out["revisit_s"] = (
        round(statistics.median(statistics.fmean(m["each_s"][1:]) for m in moves_), 4)
        if moves_ and len(moves_[0]["each_s"]) > 1
        else None
    )
    page.context.close()
    return out


def run(pages: list[str], moves: int, repeat: int) -> dict:
    results: dict = {"pages": {}}
    with sync_playwright() as pw:
        browser = launch(pw)
        with Server("bench/trivial_app.py") as trivial:
            # Twice the moves: its 0.02 s is two ticks of the CPU counter, and every relative budget divides by it.
            results["trivial"] = measure_page(browser, trivial, "/", moves, 2 * repeat)
        with Server("app.py") as app:
            open_page(browser, app, "/").context.close()  # imports and the first page once
            app.settle()
            for name in pages:
                path = "/" if name == "overview" else f"/{name}"
                results["pages"][name] = measure_page(browser, app, path, moves, repeat)
                print(f"  {name}: {results['pages'][name]}", flush=True)
        browser.close()
    return results


def table(results: dict) -> str:
    base = results["trivial"]["move_median_s"]

    def secs(v) -> str:
        return f"{v:.3f}s" if v is not None else "-"

    lines = [
        f"{'page':<14} {'CPU per move':>13} {'vs trivial':>11} {'budget':>11} {'first visit':>12} {'revisit':>8} "
        f"{'first load':>11} {'budget':>7} {'cold visit':>11} {'budget':>7}",
        f"{'trivial app':<14} {base:>12.3f}s {1:>10.1f}x {'':>11} {secs(results['trivial']['first_visit_s']):>12} "
        f"{secs(results['trivial']['revisit_s']):>8} {results['trivial']['first_load_s']:>10.2f}s",
    ]
    for name, r in results["pages"].items():
        move = r["move_median_s"]
        budget = RELATIVE_FACTOR * base if name in RELATIVE else MOVE_BUDGET_S
        ok_move = "ok" if move is not None and move <= budget else "OVER"
        ok_load = "ok" if r["first_load_s"] <= LOAD_BUDGET_S else "OVER"
        cold = r.get("cold_load_s")
        ok_cold = "-" if cold is None else "ok" if cold <= COLD_BUDGET_S else "OVER"
        lines.append(
            f"{name:<14} {secs(move):>13} {(move or 0) / base if base else 0:>10.1f}x {budget:>6.3f}s {ok_move:>4} "
            f"{secs(r.get('first_visit_s')):>12} {secs(r.get('revisit_s')):>8} {r['first_load_s']:>10.2f}s {ok_load:>5}"
            f" {secs(cold):>11} {ok_cold:>5}"
        )
    lines.append(
        "CPU per move: the mean of each slider's moves (the first to a new stop, the rest back and forth), the "
        "median over sliders; first visit and revisit split it. Cold visit: wall-clock seconds of the page's first "
        f"session on a started server, until it has rendered (budget {COLD_BUDGET_S:g} s on a quiet machine)."
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__.split("\n")[0])
    ap.add_argument("--pages", default=",".join(PAGES))
    ap.add_argument("--moves", type=int, default=4, help="sliders (or pills) moved per page")
    ap.add_argument("--repeat", type=int, default=6, help="moves per slider; its CPU is their mean")
    ap.add_argument("--json", default="bench/results/pages.json")
    a = ap.parse_args()
    results = run(a.pages.split(","), a.moves, a.repeat)
    print(table(results))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
