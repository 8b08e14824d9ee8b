"""Chart building with and without core.view.altair_speedups: what each speed-up saves per page view.

    python -m bench.charts [--views 16] [--rounds 2] [--pages overview,planner,compute]

Each mode runs in a fresh interpreter (Altair's own; the class table alone; the deep copy alone; both, as the
app runs) and times, in CPU seconds of that process (the machine may be shared), what a page does on a new view:
app_pages.common.chart_spec of each of its charts (style, Arrow datasets, no validation, debug mode off, as
served) on the page's default data, the data computed beforehand. The first view of a process pays the class
tables once; then `--views` views at other contexts give min and median. Benchmarks report; they never fail.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("own", "class table", "deep copy", "both")
PAGES = ("overview", "planner", "compute")


def jobs(page: str, context: int) -> list[tuple]:
    """(builder, args) of every chart `page` draws for one view at `context`, data computed now."""
    from core.accounting import planner as pl
    from core.accounting import roofline as rl
    from core.model.gpus import GPUS
    from core.model.presets import load_preset
    from core.view.compute_charts import roofline_chart
    from core.view.frames import CONTEXTS, GIB, breakdown_table, cache_vs_context, memory_parts
    from core.view.memory_charts import breakdown_chart, cache_chart, memory_chart
    from core.view.urlstate import DEFAULT_MODELS

    gpu = GPUS["H200"]
    if page == "overview":
        df = cache_vs_context({m: load_preset(m) for m in DEFAULT_MODELS}, CONTEXTS, "bf16", 1)
        return [(cache_chart, (df, "H200 (141 GB)", gpu.memory_bytes / GIB, context, "KV cache vs context"))]
    if page == "planner":
        specs = {m: load_preset(m) for m in ("llama-3.1-70b", "deepseek-v3")}
        hw = pl.Hardware("H200", gpu.memory_bytes, gpu.bandwidth_tb_s * 1e12, n_gpus=8)
        plans = {m: pl.plan(s, hw, context) for m, s in specs.items()}
        curves = cache_vs_context(specs, CONTEXTS, "bf16", 1, "latent")
        return [
            (memory_chart, (memory_parts(plans), hw.usable_bytes / GIB, "H200 usable", "One GPU of each stage")),
            (cache_chart, (curves, "8 x H200 usable, pooled", 8 * hw.usable_bytes / GIB, context, "KV cache")),
            (breakdown_chart, (breakdown_table(specs, context, 1, "bf16", "latent"), "Where the cache goes")),
        ]
    pts = rl.roofline_points(rl.designs(load_preset), gpu, context, 8)
    return [(roofline_chart, (rl.roof(gpu), pts, "H200: batch 8"))]


def child(mode: str, pages: list[str], views: int) -> dict:
    """One mode in this process: ms of CPU per view, (first, min, median) per page."""
    from core.view import altair_speedups

    if mode == "class table":
        altair_speedups._memoize_class_table()
    elif mode == "deep copy":
        altair_speedups._faster_deep_copy()
    elif mode == "both":
        assert altair_speedups.apply(), altair_speedups.missing()
    from app_pages.common import chart_spec  # turns Altair's debug mode off, as the served app runs

    def view(todo: list[tuple]) -> float:
        t = time.process_time()
        for builder, args in todo:
            chart_spec(builder, args, {}, False)
        return (time.process_time() - t) * 1000

    out = {}
    for page in pages:
        first = view(jobs(page, 4096))
        times = [view(jobs(page, 2 ** (10 + k % 8) + k)) for k in range(views)]
        out[page] = [round(first, 1), round(min(times), 1), round(statistics.median(times), 1)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.charts", description=__doc__.split("\n")[0])
    ap.add_argument("--pages", default=",".join(PAGES))
    ap.add_argument("--views", type=int, default=16, help="views per page after the first")
    ap.add_argument("--rounds", type=int, default=2, help="fresh interpreters per mode (min of their medians)")
    ap.add_argument("--json", default="bench/results/charts.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    pages = a.pages.split(",")
    if a.child:
        print(json.dumps(child(a.child, pages, a.views)))
        return
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    for _ in range(a.rounds):
        for mode in MODES:  # interleaved, so a busy spell of the machine falls on every mode alike
            cmd = [sys.executable, "-m", "bench.charts", "--child", mode, "--pages", a.pages, "--views", str(a.views)]
            r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(r.stdout.strip().splitlines()[-1]))
    best = {m: {p: min(r[p][2] for r in rs) for p in pages} for m, rs in runs.items()}
    print(f"{'ms CPU per view (median)':<26}" + "".join(f"{p:>12}" for p in pages))
    for m in MODES:
        saved = "".join(f"{best[m][p]:>8.1f} {best[m][p] / best['own'][p]:>3.0%}" for p in pages)
        print(f"{m:<26}{saved}")
    print("Each: the lowest over rounds of the median view, and its share of Altair's own.")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps({"runs": runs, "best_median_ms": best}, indent=2))


if __name__ == "__main__":
    main()
