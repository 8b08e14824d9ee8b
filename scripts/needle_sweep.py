"""Precompute the needle page's default views: accuracy heatmaps (length x depth) for every model with
each compression method at its default strength, and the accuracy-vs-bytes summary of every method at
every strength. Writes assets/needle/results.json (the page shows these at once and computes any other
choice on request).

    .venv/bin/python scripts/needle_sweep.py          # about 10 minutes on 2 CPU cores
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import needle as nd  # noqa: E402
from core import tiny  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "needle" / "results.json"
N_HEAT, N_SUMMARY = 30, 40


def main() -> None:
    torch.set_num_threads(1)
    out: dict = {"n_heatmap": N_HEAT, "n_summary": N_SUMMARY, "heatmaps": {}, "summary": {}, "seconds": {}}
    for name in nd.MODELS:
        model = tiny.load(ROOT / "assets" / "models" / f"{name}.safetensors")
        t0 = time.time()
        for m in nd.methods_at_default():
            df = nd.heatmap(model, m, nd.LENGTHS, nd.DEPTHS, N_HEAT, seed=0)
            out["heatmaps"][f"{name}|{m.label}"] = df.to_dict("records")
        out["summary"][name] = nd.summary(model, 256, N_SUMMARY, seed=1).to_dict("records")
        out["seconds"][name] = round(time.time() - t0, 1)
        print(name, out["seconds"][name], "s", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    print(OUT)


if __name__ == "__main__":
    main()
