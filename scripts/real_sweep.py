"""Precompute the real-model quality lab: every compression method on SmolLM2-135M-Instruct, on held-out text
(perplexity, KL, top-1 per window) and on the passkey trials, written to assets/realmodel/sweep.json. The page
answers from it at once; tests re-run sampled entries and must get the same numbers.

    .venv/bin/python scripts/real_sweep.py            # about 30 minutes on 2 CPU cores
    .venv/bin/python scripts/real_sweep.py --quick    # 1 window, 2 trials per context: a smoke run (not shipped)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.lab import (
    real_methods,  # noqa: E402
    smollm,  # noqa: E402
)
from core.lab import realpasskey as pk  # noqa: E402
from core.lab import realquality as rq  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "realmodel" / "sweep.json"


def _scores(s: rq.Scores, nbytes: int) -> list:
    return [round(s.nll, 6), round(s.kl, 6), s.agree, s.tokens, nbytes]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    n_windows, n_trials = (1, 2) if a.quick else (rq.WINDOWS, pk.TRIALS)
    t0 = time.time()
    lm = smollm.load()
    rq.calibration()
    meths = real_methods.methods()

    windows = rq.windows(lm, n_windows)
    pres, refs = zip(*(rq.prefill_window(lm, w) for w in windows), strict=True)
    print(f"prefilled {n_windows} windows in {time.time() - t0:.0f} s", flush=True)
    quality = {}
    for m in meths:
        t = time.time()
        quality[m.label] = [
            _scores(*rq.measure(lm, w, pre, ref, m)) for w, pre, ref in zip(windows, pres, refs, strict=True)
        ]
        print(f"quality {m.label}: {time.time() - t:.1f} s", flush=True)
    del pres, refs

    passkey, trials = {}, {}
    for n in pk.CONTEXTS:
        ts = [pk.trial(lm, n, i, n_trials) for i in range(n_trials)]
        trials[str(n)] = [{"key": t.key, "depth": t.depth} for t in ts]
        pres = [pk.prefill(lm, t) for t in ts]
        for m in meths:
            t1 = time.time()
            got = [(*pk.answers(lm, t, pre, m), t.key) for t, pre in zip(ts, pres, strict=True)]
            passkey.setdefault(m.label, {})[str(n)] = [[ans == key, ans, nb] for ans, nb, key in got]
            found = sum(ans == key for ans, _, key in got)
            print(f"passkey {n} {m.label}: {found}/{len(ts)} {time.time() - t1:.1f} s", flush=True)
        del pres

    out = {
        "model": smollm.NAME,
        "package": f"{smollm.DISTRIBUTION}==0.1.2",
        "config": smollm.hf_config(lm.cfg),
        "protocol": {
            "context": rq.CONTEXT,
            "scored": rq.SCORED,
            "windows": n_windows,
            "calibration_tokens": rq.CALIBRATION_TOKENS,
            "passkey_contexts": list(pk.CONTEXTS),
            "passkey_trials": n_trials,
        },
        "methods": [
            {"label": m.label, "family": m.family, "name": m.name, "setting": m.setting, "pairs": m.pairs}
            for m in meths
        ],
        "quality": quality,
        "passkey": passkey,
        "trials": trials,
        "seconds": round(time.time() - t0),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {a.out} in {out['seconds']} s")


if __name__ == "__main__":
    main()
