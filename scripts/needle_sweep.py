"""Precompute the needle page: accuracy heatmaps (length x depth) for every model with every compression
method at every strength the page offers, and the accuracy-vs-bytes summary of every method. Writes
assets/needle/results.json; the page then answers every slider stop from it at once instead of running
600 prompts per move (about 23 s of CPU each). Views already in the file are kept.

    .venv/bin/python scripts/needle_sweep.py [--workers 2]     # about 20 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.lab import needle as nd  # noqa: E402
from core.lab import tiny  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "needle" / "results.json"
N_HEAT, N_SUMMARY = 30, 40


def _model(name: str) -> tiny.TinyLM:
    return tiny.load(ROOT / "assets" / "models" / f"{name}.safetensors")


def _heat(job: tuple[str, str, object]) -> tuple[str, list, float]:
    name, method, strength = job
    torch.set_num_threads(1)
    t0 = time.process_time()
    m = nd.Method(method, strength)
    df = nd.heatmap(_model(name), m, nd.LENGTHS, nd.DEPTHS, N_HEAT, seed=0)
    return f"{name}|{m.label}", df.to_dict("records"), time.process_time() - t0


def _summary(name: str) -> tuple[str, list]:
    torch.set_num_threads(1)
    return name, nd.summary(_model(name), 256, N_SUMMARY, seed=1).to_dict("records")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    out = json.loads(OUT.read_text()) if OUT.is_file() else {}
    if out.get("n_heatmap") != N_HEAT or out.get("n_summary") != N_SUMMARY:
        out = {"n_heatmap": N_HEAT, "n_summary": N_SUMMARY, "heatmaps": {}, "summary": {}, "seconds": {}}
    jobs = [
        (name, m.name, m.strength)
        for name in nd.MODELS
        for m in nd.all_methods()
        if f"{name}|{m.label}" not in out["heatmaps"]
    ]
    todo = [n for n in nd.MODELS if n not in out["summary"]]
    print(f"{len(jobs)} heatmaps and {len(todo)} summaries to compute", flush=True)
    with ProcessPoolExecutor(a.workers) as pool:
        for key, records, cpu in pool.map(_heat, jobs):
            out["heatmaps"][key] = records
            out["seconds"][key] = round(cpu, 1)
            print(key, f"{cpu:.1f} s CPU", flush=True)
            OUT.write_text(json.dumps(out, indent=1))  # progress survives an interruption
        for name, records in pool.map(_summary, todo):
            out["summary"][name] = records
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    print(OUT)


if __name__ == "__main__":
    main()
