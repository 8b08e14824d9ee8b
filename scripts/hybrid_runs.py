"""Precompute the Hybrid page's runs: the three small layers (GQA, Gated DeltaNet, Mamba-2) at every token
count the page offers, on both inputs. Bytes come from tensor nbytes and FLOPs from FlopCounterMode, so
they depend on shapes only; tests/test_hybrid.py re-runs some and checks they are equal. The page shows
these at once instead of running the layers (about 0.5 s of CPU) on every slider move.

    .venv/bin/python scripts/hybrid_runs.py     # about 15 seconds
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.lab.hybrid import RUNS_FILE, SOURCES, SmallHybrid, run  # noqa: E402
from core.view.urlstate import HYBRID_TOKENS  # noqa: E402


def main() -> None:
    out = {f"{t}|{s}": run(SmallHybrid(t), s).to_dict("records") for t in HYBRID_TOKENS for s in SOURCES}
    RUNS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RUNS_FILE.write_text(json.dumps(out, indent=0))
    print(RUNS_FILE, len(out))


if __name__ == "__main__":
    main()
