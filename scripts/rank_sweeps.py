"""Precompute the Latent rank page: the SVD conversion of every layer of all-MiniLM-L6-v2 at every rank
1..384, measured on each shipped text and on all of them (core.lab.lowrank.rank_sweep). The page then
answers a rank move at once; tests/test_lowrank.py re-runs some and checks they agree.

    .venv/bin/python scripts/rank_sweeps.py     # about 1.5 minutes
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.lab import lowrank as lr  # noqa: E402
from core.lab import minilm  # noqa: E402
from core.lab.passages import load_passages  # noqa: E402

RANKS = range(1, 385)


def main() -> None:
    torch.set_num_threads(1)
    mini = minilm.load_minilm()
    texts = [minilm.tokenize(p.text, 512) for p in load_passages()]
    out = {}
    for layer in range(6):
        for passage in [-1, *range(len(texts))]:
            ids = texts if passage < 0 else [texts[passage]]
            out[f"{layer}|{passage}"] = lr.rank_sweep(mini, layer, ids, RANKS).to_dict("list")
        print("layer", layer, flush=True)
    lr.SWEEPS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(lr.SWEEPS_FILE, "wt") as f:
        json.dump(out, f)
    print(lr.SWEEPS_FILE, len(out))


if __name__ == "__main__":
    main()
