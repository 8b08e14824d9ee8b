"""Command line: the engine's numbers for a preset or a config.json.

    python -m core.report SPEC [--context N] [--batch B] [--kv-dtype DTYPE] [--layout L] [--json]

SPEC is a preset name (`python -m core.report --list`) or a path to a config.json. Bad input exits
with status 2 and one line on stderr. This path never imports torch, so it answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from core.accounting import totals as acc
from core.model.dtypes import CACHE_DTYPES, WEIGHT_DTYPES
from core.model.presets import preset_names, resolve
from core.model.specs import ModelSpec
from core.model.units import fmt_bytes, fmt_params, fmt_si


def report(
    spec: ModelSpec,
    context: int = 4096,
    batch: int = 1,
    kv_dtype: str = "bf16",
    layout: str = "latent",
    weight_dtype: str = "bf16",
) -> dict[str, Any]:
    """The numbers the CLI prints, as one JSON-serialisable dict (ints for bytes, FLOPs, params). Fixed-size
    state (linear attention, Mamba) is reported apart from the KV cache: it does not grow with the context.
    Parameter figures are None (JSON null) when the config lacks what they need, and a note says why."""
    acc.check_layout(spec, layout)
    cache = acc.kv_cache(spec, context, batch, kv_dtype, layout)
    state = acc.state(spec, batch)
    cost = acc.decode_cost(spec, context, kv_dtype, layout)
    try:
        pc = acc.param_count(spec)
        params_total, params_active = pc.total, pc.active
        weights: int | None = acc.weights_bytes(spec, weight_dtype)
    except acc.ParamsUnknown:
        params_total = params_active = weights = None
    return {
        "model": spec.name,
        "model_type": spec.model_type,
        "attention": spec.design,
        "layers": spec.n_layers,
        "layer_types": spec.layer_kinds,
        "context": context,
        "batch": batch,
        "kv_dtype": kv_dtype,
        "layout": layout,
        "kv_cache_bytes": cache.total,
        "kv_cache_bytes_by_layer_type": cache.by_layer_type(),
        "kv_cache_bytes_by_tensor": cache.by_tensor(),
        "kv_bytes_per_token_at_context_1": acc.kv_bytes_per_token(spec, kv_dtype, layout),
        "state_bytes": state.total,
        "state_bytes_by_layer_type": state.by_layer_type(),
        "state_bytes_by_tensor": state.by_tensor(),
        "params_total": params_total,
        "params_active": params_active,
        "weight_dtype": weight_dtype,
        "weights_bytes": weights,
        "decode_attention_flops_per_token": cost.attention_core_flops,
        "decode_attention_block_flops_per_token": cost.attention_block_flops,
        "decode_flops_per_token": cost.model_flops,
        "decode_cache_bytes_read_per_token": cost.cache_bytes_read,
        "attention_arithmetic_intensity": round(cost.arithmetic_intensity, 3),
        "notes": list(spec.notes),
    }


def _text(r: dict[str, Any]) -> str:
    if r["params_total"] is None:
        params = "  parameters        unknown (see the note)"
    else:
        params = (
            f"  parameters        {fmt_params(r['params_total'])} total, {fmt_params(r['params_active'])} active "
            f"per token (embedding lookup excluded); weights {fmt_bytes(r['weights_bytes'])} in {r['weight_dtype']}"
        )
    lines = [
        f"{r['model']} ({r['model_type']}): {r['layers']} layers, attention {r['attention']}",
        params,
        f"  context           {r['context']:,} tokens x batch {r['batch']}, "
        f"cache dtype {r['kv_dtype']}, layout {r['layout']}",
        f"  KV cache          {fmt_bytes(r['kv_cache_bytes'])} ({r['kv_cache_bytes']:,} bytes)",
    ]
    for k, v in r["kv_cache_bytes_by_tensor"].items():
        lines.append(f"    {k:<30} {fmt_bytes(v)}")
    if r["state_bytes"]:
        lines.append(
            f"  fixed state       {fmt_bytes(r['state_bytes'])} ({r['state_bytes']:,} bytes) for {r['batch']} "
            "sequence(s), the same at any context"
        )
        for k, v in r["state_bytes_by_tensor"].items():
            lines.append(f"    {k:<30} {fmt_bytes(v)}")
    model_flops = r["decode_flops_per_token"]
    lines += [
        f"  decode, per token attention core {fmt_si(r['decode_attention_flops_per_token'], 'FLOP')}, "
        f"whole model {fmt_si(model_flops, 'FLOP') if model_flops is not None else 'unknown'}",
        f"  {'cache + state read' if r['state_bytes'] else 'cache read/token  '}"
        f"{'/token' if r['state_bytes'] else ''} {fmt_bytes(r['decode_cache_bytes_read_per_token'])}, "
        f"intensity {r['attention_arithmetic_intensity']:.1f} FLOP/byte",
    ]
    lines += [f"  note: {n}" for n in r["notes"]]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump, exit 2
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="python -m core.report", description="KV cache, FLOPs and parameters of a model.")
    p.add_argument("spec", nargs="?", help="preset name or path to a config.json")
    p.add_argument("--context", type=int, default=4096, help="tokens in context (default 4096)")
    p.add_argument("--batch", type=int, default=1, help="sequences (default 1)")
    p.add_argument("--kv-dtype", default="bf16", choices=list(CACHE_DTYPES), help="cache dtype")
    p.add_argument(
        "--layout", default="latent", choices=list(acc.LAYOUTS), help="MLA / DSA / V4 cache layout (not for GQA)"
    )
    p.add_argument("--weight-dtype", default="bf16", choices=list(WEIGHT_DTYPES), help="weights format")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--list", action="store_true", help="list the presets")
    a = p.parse_args(argv)
    if a.list:
        print("\n".join(preset_names()))
        return 0
    if not a.spec:
        p.error("give a preset name or a config.json path (see --list).")
    try:
        if a.context < 1 or a.context > 1 << 40:
            raise ValueError(f"--context must be between 1 and {1 << 40:,}, got {a.context:,}.")
        if a.batch < 1 or a.batch > 1 << 20:
            raise ValueError(f"--batch must be between 1 and {1 << 20:,}, got {a.batch:,}.")
        r = report(resolve(a.spec), a.context, a.batch, a.kv_dtype, a.layout, a.weight_dtype)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(r, indent=2) if a.json else _text(r))
    except BrokenPipeError:  # `... | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
