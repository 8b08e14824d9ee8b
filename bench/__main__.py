"""make bench: time the accounting path (every preset) and a decode step of each reference layer.

Writes bench/results/latest.json and prints a table. Later issues add decode-bandwidth benchmarks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from core import accounting as acc
from core.layers import build_layer, default_device
from core.presets import load_preset, preset_names
from core.specs import DSASpec, GQASpec, MLASpec


def _median(f, n: int = 7) -> float:
    f()
    ts = []
    for _ in range(n):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        f()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def main() -> None:
    out: dict = {"device": str(default_device()), "accounting_s": {}, "decode_step_s": {}}
    for name in preset_names():
        spec = load_preset(name)
        out["accounting_s"][name] = _median(lambda s=spec: acc.decode_cost(s, 1 << 20))
    d, ctx = 512, 4096
    specs = {
        "MHA 8x64": GQASpec(8, 8, 64),
        "GQA 8/2x64": GQASpec(8, 2, 64),
        "MLA absorbed": MLASpec(8, 128, 64, 32, 64),
        "MLA naive": MLASpec(8, 128, 64, 32, 64),
        "DSA top-512": DSASpec(8, 128, 64, 32, 64, index_n_heads=4, index_head_dim=64, index_topk=512),
    }
    with torch.no_grad():
        for label, spec in specs.items():
            layer = build_layer(spec, d)
            mode = {"mode": "naive"} if label == "MLA naive" else {}
            x = torch.randn(1, ctx, d, device=default_device())
            _, cache = layer(x, **mode)
            step = torch.randn(1, 1, d, device=default_device())
            out["decode_step_s"][label] = _median(
                lambda layer=layer, step=step, cache=cache, mode=mode: layer(step, cache, **mode)
            )
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/latest.json").write_text(json.dumps(out, indent=2))
    print(f"device: {out['device']}")
    print(f"{'accounting at 1M tokens, slowest preset':<45} {max(out['accounting_s'].values()) * 1e3:8.2f} ms")
    for k, v in out["decode_step_s"].items():
        print(f"decode step at {ctx} tokens, {k:<22} {v * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
