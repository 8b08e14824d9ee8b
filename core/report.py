"""Command line: the engine's numbers for a preset or a config.json.

    python -m core.report SPEC [--context N] [--batch B] [--kv-dtype DTYPE] [--layout L] [--json]
        [--gpu NAME | --gpu-memory-gib X] [--gpus N] [--tp N] [--pp N] [--dp-attention] [--utilization U]
        [--reserved-gib X] [--weights FORMAT] [--kv-budget-gib X] [--max-num-batched-tokens N] [--block-size N]
        [--max-model-len N] [--max-num-seqs N] [--allow-long-max-model-len]

SPEC is a preset name (`python -m core.report --list`) or a path to a config.json. Any planner flag adds
a memory plan as vLLM would size it (the JSON key `plan`). Bad input exits with status 2 and one line on
stderr. This path never imports torch, so it answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from typing import Any

from core.accounting import llamacpp, sglang
from core.accounting import planner as pl
from core.accounting import totals as acc
from core.accounting import vllm_hybrid as vh
from core.accounting.plan_inputs import PlanSettings, plan_inputs
from core.model import hub
from core.model.dtypes import CACHE_DTYPES, WEIGHT_DTYPES
from core.model.gpus import GPUS
from core.model.hf_config import from_hf_config
from core.model.presets import preset_names, resolve
from core.model.specs import ModelSpec
from core.model.units import fmt_bytes, fmt_params, fmt_si


def report(
    spec: ModelSpec,
    context: int = 4096,
    batch: int = 1,
    kv_dtype: str = "auto",
    layout: str = "latent",
    weight_dtype: str = "bf16",
) -> dict[str, Any]:
    """The numbers the CLI prints, as one JSON-serialisable dict (ints for bytes, FLOPs, params). Fixed-size
    state (linear attention, Mamba) is reported apart from the KV cache: it does not grow with the context.
    Parameter figures are None (JSON null) when the config lacks what they need, and a note says why."""
    acc.check_layout(spec, layout)
    auto = kv_dtype == "auto"
    kv_dtype = pl.auto_kv_dtype(spec) if auto else kv_dtype
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
        "notes": list(spec.notes)
        + ([f"cache dtype auto = {kv_dtype}: the model's dtype, as vLLM's kv_cache_dtype auto"] if auto else []),
    }


ENGINES = ("vllm", "sglang", "llama.cpp")
LLAMACPP_VERSION = "llama_kv_cache era, before PR #21277 (2026-04)"  # core/accounting/llamacpp.py
LLAMACPP_FLAGS = ("ctx_size", "parallel", "ubatch_size", "batch_size", "kv_unified", "cache_type_k", "cache_type_v",
                  "swa_full", "flash_attn")  # fmt: skip
PLAN_FLAGS = (
    "gpu", "gpu_memory_gib", "gpus", "tp", "pp", "dp_attention", "utilization", "reserved_gib", "weights",
    "kv_budget_gib", "max_num_batched_tokens", "block_size", "sync_scheduling", "max_model_len", "max_num_seqs",
    "allow_long_max_model_len", "vllm_version", "enable_prefix_caching", "mamba_cache_mode", "mamba_block_size",
    "mamba_ssm_cache_dtype", "num_speculative_tokens", "enforce_eager",
)  # fmt: skip
KV_DTYPE_ALIASES = {"fp8_e4m3": "fp8", "fp8_e5m2": "fp8"}  # vLLM's names for its one-byte caches


def gpu_named(name: str):
    """A GPU preset by name, forgiving case, spaces and dashes ("h100-sxm" is "H100 SXM")."""
    key = "".join(c for c in name.lower() if c.isalnum())
    for g in GPUS.values():
        if "".join(c for c in g.name.lower() if c.isalnum()) == key:
            return g
    raise ValueError(f"unknown GPU {name!r}; choose one of {', '.join(GPUS)} or give --gpu-memory-gib.")


def plan_settings(a: argparse.Namespace) -> PlanSettings:
    """The plan the flags ask for, as plain values: a flag left out keeps the planner's default (GPUs: TP x PP;
    TP: the widest that splits the model)."""
    g = gpu_named(a.gpu) if a.gpu is not None else None
    given = {
        "n_gpus": a.gpus, "tp": a.tp, "pp": a.pp, "utilization": a.utilization, "reserved_gib": a.reserved_gib,
        "weight_dtype": a.weights, "block_size": a.block_size, "max_num_batched_tokens": a.max_num_batched_tokens,
        "max_model_len": a.max_model_len, "max_num_seqs": a.max_num_seqs, "vllm_version": a.vllm_version,
        "enable_prefix_caching": a.enable_prefix_caching, "mamba_cache_mode": a.mamba_cache_mode,
        "mamba_block_size": a.mamba_block_size, "mamba_ssm_cache_dtype": a.mamba_ssm_cache_dtype,
        "num_speculative_tokens": a.num_speculative_tokens, "enforce_eager": a.enforce_eager or None,
    }  # fmt: skip
    return PlanSettings(
        a.context,
        a.batch,
        a.kv_dtype,
        layout=a.layout,
        gpu=g.name if g else None,
        memory_gib=a.gpu_memory_gib,
        dp_attention=a.dp_attention,
        kv_budget_gib=a.kv_budget_gib,
        async_scheduling=not a.sync_scheduling,
        allow_long_max_model_len=a.allow_long_max_model_len,
        **{k: v for k, v in given.items() if v is not None},
    )


def llamacpp_report(spec: ModelSpec, a: argparse.Namespace) -> dict[str, Any]:
    """The `plan` key for llama.cpp: the caches and recurrent state it allocates, and the lines it logs."""
    if a.ctx_size is None:
        raise ValueError(
            "a llama.cpp plan needs --ctx-size N (llama.cpp's 0 means the GGUF's context_length: give that number)."
        )
    flags = llamacpp.LlamaCppFlags(
        n_ctx=a.ctx_size,
        n_seq=a.parallel if a.parallel is not None else 1,
        n_ubatch=a.ubatch_size if a.ubatch_size is not None else 512,
        n_batch=a.batch_size if a.batch_size is not None else 2048,
        kv_unified=a.kv_unified,
        cache_type_k=a.cache_type_k or "f16",
        cache_type_v=a.cache_type_v or "f16",
        swa_full=a.swa_full,
        flash_attn=a.flash_attn != "off",
    )
    m = llamacpp.llamacpp_memory(spec, flags)

    def cache(c: llamacpp.KVCache | None) -> dict[str, Any] | None:
        if c is None:
            return None
        return {"cells": c.cells, "layers": c.n_layers, "streams": c.n_stream, "k_bytes": c.k_bytes,
                "v_bytes": c.v_bytes, "type_k": c.type_k, "type_v": c.type_v}  # fmt: skip

    r = m.recurrent
    return {
        "engine": "llama.cpp",
        "engine_version": LLAMACPP_VERSION,
        "n_ctx": m.n_ctx,
        "n_ctx_seq": m.n_ctx_seq,
        "n_seq": flags.n_seq,
        "n_ubatch": m.n_ubatch,
        "kv_unified": flags.kv_unified,
        "swa_full": flags.swa_full,
        "flash_attn": flags.flash_attn,
        "cache_type_k": flags.cache_type_k,
        "cache_type_v": flags.cache_type_v,
        "kv_cache": cache(m.full),
        "swa_kv_cache": cache(m.swa),
        "recurrent_state": None if r is None else {"cells": r.cells, "r_bytes": r.r_bytes, "s_bytes": r.s_bytes},
        "total_bytes": m.total,
        "log_lines": list(m.log_lines()),
    }


SGLANG_VERSION = "v0.5 main, early 2026 (commit 001ccef)"  # core/accounting/sglang.py
SGLANG_FLAGS = ("mem_fraction_static", "page_size", "dp", "max_total_tokens")
SGLANG_MODEL_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}  # the config's dtype, as SGLang's --dtype auto


def sglang_report(spec: ModelSpec, a: argparse.Namespace) -> dict[str, Any]:
    """The `plan` key for SGLang: the token pool one rank allocates and the lines it logs. Exact from the memory
    left for the pool (--kv-budget-gib); from a GPU name an estimate (SGLang measures free memory before and
    after loading the weights; the CUDA context and communication buffers are not counted here)."""
    if a.pp not in (None, 1):
        raise ValueError("SGLang's pools under pipeline parallelism are not covered: leave --pp out.")
    if a.mem_fraction_static is None:
        raise ValueError(
            "an SGLang plan needs --mem-fraction-static F: SGLang picks it from the GPU's memory and the "
            "parallelism, so give the one your server logged (mem_fraction_static=...)."
        )
    native = spec.native_weights[0]
    if a.kv_dtype == "auto" and native not in SGLANG_MODEL_DTYPES:
        raise ValueError(
            f"the config's dtype is {native}; SGLang's --dtype auto for it depends on the release: give --kv-dtype."
        )
    kv = {"auto": "auto", "bf16": "bf16", "fp8": "fp8_e4m3"}.get(a.kv_dtype)
    if kv is None:
        raise ValueError(f"SGLang's --kv-cache-dtype has no {a.kv_dtype}: use auto, bf16 or fp8 (fp8_e4m3 / e5m2).")
    tp, dp = a.tp or 1, a.dp or 1
    flags = sglang.SGLangFlags(
        mem_fraction_static=a.mem_fraction_static,
        tp=tp,
        dp=dp,
        enable_dp_attention=a.dp_attention,
        page_size=a.page_size or 1,
        kv_cache_dtype=kv,
        dtype=SGLANG_MODEL_DTYPES.get(native),
        max_total_tokens=a.max_total_tokens,
    )
    notes = []
    if a.kv_budget_gib is not None:
        rest, exact = a.kv_budget_gib, True
    else:
        if a.gpu is None:
            raise ValueError("an SGLang plan needs --gpu NAME or --kv-budget-gib X (the memory its pool may take).")
        g = gpu_named(a.gpu)
        par = pl.Parallelism(tp // dp if a.dp_attention else tp, 1, dp if a.dp_attention else 1, a.dp_attention)
        weights = pl.stage_weights(spec, 0, spec.n_layers, par, a.weights or "native").total
        total = g.reported_bytes / sglang.GB
        rest, exact = sglang.rest_memory_gib(flags, total, total - weights / sglang.GB), False
        notes.append(
            f"Estimate: SGLang measures the free memory before ({total:.2f} GiB, what the {g.name} reports) and "
            f"after loading the weights ({weights / sglang.GB:.2f} GiB per GPU here); the CUDA context and "
            "communication buffers take some of it too. Give --kv-budget-gib (rest memory = available - total "
            "x (1 - mem_fraction_static), from its 'Load weight' lines) for the exact pool."
        )
    tokens = sglang.tokens_for_rest(spec, flags, rest)
    pool = sglang.kv_pool(spec, flags, tokens)
    page = flags.page_size
    per_request = -(-a.context // page) * page
    return {
        "engine": "sglang",
        "engine_version": SGLANG_VERSION,
        "log_lines": [pool.log_line(), pool.server_log()],
        "exact": exact,
        "tp": tp,
        "dp": dp,
        "dp_attention": a.dp_attention,
        "mem_fraction_static": flags.mem_fraction_static,
        "page_size": page,
        "kv_cache_dtype": kv,
        "rest_memory_gib": round(rest, 6),
        "cell_bytes": sglang.cell_size(spec, flags),
        "max_total_num_tokens": tokens,
        "k_bytes": pool.k_bytes,
        "v_bytes": pool.v_bytes,
        "kv_pool_bytes": pool.total,
        "max_concurrency": round(tokens / per_request, 4),
        "notes": notes,
    }


def plan_report(spec: ModelSpec, a: argparse.Namespace) -> dict[str, Any]:
    """The `plan` key: the engine's memory for the model (vLLM's pool per GPU under the requested
    parallelism; llama.cpp's caches), with the lines the engine logs about it."""
    if a.engine != "sglang":
        given = [f"--{f.replace('_', '-')}" for f in SGLANG_FLAGS if getattr(a, f) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: SGLang's flag{'s' if len(given) > 1 else ''}; add --engine sglang.")
    if a.engine == "sglang":
        return sglang_report(spec, a)
    if a.engine == "llama.cpp":
        return llamacpp_report(spec, a)
    given = [f"--{f.replace('_', '-')}" for f in LLAMACPP_FLAGS if getattr(a, f) not in (None, False)]
    if given:
        raise ValueError(
            f"{', '.join(given)}: llama.cpp's flag{'s' if len(given) > 1 else ''}; add --engine llama.cpp."
        )
    if a.gpu is None and a.gpu_memory_gib is None and a.kv_budget_gib is None:
        raise ValueError("a plan needs --gpu NAME, --gpu-memory-gib X or --kv-budget-gib X.")
    settings = plan_settings(a)
    fetched = getattr(a, "checkpoint", None)
    if fetched is not None and fetched.checkpoint_bytes:
        if a.weights is not None:
            raise ValueError("--weights and --hub: the checkpoint's own size is the weights; leave --weights out.")
        settings = replace(settings, checkpoint_bytes=fetched.checkpoint_bytes)
    inputs = plan_inputs(settings)
    hw, alloc, par = inputs.hardware, inputs.allocator, inputs.parallelism(spec)
    p = inputs.plan(spec, par)
    single = p if inputs.batch == 1 else inputs.plan(spec, par, batch=1)
    return {
        "engine": "vllm",
        "engine_version": alloc.hybrid.version,
        "log_lines": inputs.log_lines(spec, par, single),
        "gpu": hw.name,
        "gpu_memory_bytes": inputs.gpu_memory_bytes,
        "gpus": hw.n_gpus,
        "tp": par.tp,
        "pp": par.pp,
        "dp": par.dp,
        "dp_attention": par.dp_attention,
        "ep": par.ep,
        "parallelism": par.describe(),
        "utilization": hw.utilization,
        "reserved_bytes_per_gpu": hw.reserved_bytes,
        "weights": inputs.weight_dtype,
        "kv_dtype": p.kv_dtype,
        "block_size": p.block_size,
        "max_num_batched_tokens": alloc.max_num_batched_tokens,
        "kv_budget_bytes_per_gpu": p.kv_budget_bytes_per_gpu,
        "weights_bytes_per_gpu": p.weights_bytes_per_gpu,
        "weights_source": "checkpoint" if inputs.checkpoint_bytes else "config",
        "num_blocks": p.num_blocks,
        "kv_cache_tokens": p.kv_cache_tokens,
        "max_concurrency": round(p.max_concurrency, 4),
        "max_context": single.max_context,
        "pool_max_context": single.pool_max_context,
        "max_model_len": p.max_model_len,
        "derived_max_model_len": p.derived_max_model_len,
        "max_num_seqs": p.max_num_seqs,
        "max_running_requests": p.max_running_requests,
        "startup_error": p.startup_error,
        "estimated_max_model_len": p.estimated_max_model_len,
        "fits": p.fits,
        "exact": p.exact,
        "pooled_concurrency": round(p.pooled_concurrency, 4),
        "cache_copies_per_request": round(p.replication, 4),
        "decode_step_seconds": p.step_seconds if hw.bandwidth_bytes_s else None,
        "stages": [
            {
                "layers": list(s.layers),
                "weights_bytes_per_gpu": s.weights.total,
                "kv_budget_bytes_per_gpu": s.kv_budget_bytes,
                "request_bytes_per_gpu": s.request_bytes,
                "num_blocks": s.num_blocks,
            }
            for s in p.stages
        ],
        "hybrid": None
        if p.hybrid is None
        else {
            "prefix_caching": p.hybrid.prefix_caching,
            "mamba_cache_mode": p.hybrid.mode,
            "requested_block_size": alloc.block_size,
            "state_page_bytes": p.hybrid.state_bytes,
            "page_bytes": p.hybrid.page_bytes,
            "padding_percent": round(p.hybrid.padding_percent, 4),
            "ssm_dtype": p.hybrid.ssm_dtype,
            "groups": p.groups.n_groups,
            "group_size": p.groups.group_size,
            "state_blocks_per_request": p.hybrid.state_blocks(p.max_model_len or p.context),
        },
        "notes": list(p.notes),
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
    if "plan" in r:
        lines += _plan_text(r["plan"], r["context"])
    return "\n".join(lines)


def _plan_text(p: dict[str, Any], context: int) -> list[str]:
    engine = f"    engine          {p['engine']} ({p['engine_version']}); it logs:"
    logged = [engine, *(f"      {line}" for line in p["log_lines"])] if p["log_lines"] else []
    if p["engine"] == "llama.cpp":
        return [
            f"  plan              llama.cpp: {p['n_seq']} sequence(s) of {p['n_ctx_seq']:,} cells, cache "
            f"K {p['cache_type_k']} / V {p['cache_type_v']}, {fmt_bytes(p['total_bytes'])} in all",
            *logged,
        ]
    if p["engine"] == "sglang":
        return [
            f"  plan              SGLang: TP{p['tp']}"
            + (f" x DP{p['dp']}" if p["dp"] > 1 else "")
            + f", {p['max_total_num_tokens']:,} tokens in the pool per rank ({fmt_bytes(p['kv_pool_bytes'])}), "
            f"{p['max_concurrency']:,.2f}x requests of {context:,} tokens" + ("" if p["exact"] else " (an estimate)"),
            *logged,
            *(f"  note: {n}" for n in p["notes"]),
        ]
    blocks = (
        f"{p['num_blocks']:,} blocks of {p['block_size']} tokens per GPU"
        + (f", shared by {p['hybrid']['groups']} KV-cache groups" if p["hybrid"] else "")
        + f"; vLLM logs {p['kv_cache_tokens']:,} tokens"
        if p["exact"]
        else "estimated in bytes (see the note)"
    )
    ctx = "unbounded" if p["max_context"] is None else f"{p['max_context']:,} tokens"
    if p["max_context"] is not None and p["max_context"] == p["max_model_len"] != p["pool_max_context"]:
        pool = "any length" if p["pool_max_context"] is None else f"{p['pool_max_context']:,}"
        ctx += f" (max_model_len; the cache alone could hold {pool})"
    lines = [
        f"  plan              {p['gpus']} x {p['gpu']}, {p['parallelism']}, weights {p['weights']}, "
        f"cache {p['kv_dtype']}",
        f"    per GPU         weights {fmt_bytes(p['weights_bytes_per_gpu'])}, KV budget "
        f"{fmt_bytes(max(p['kv_budget_bytes_per_gpu'], 0))}"
        f"{'' if p['kv_budget_bytes_per_gpu'] >= 0 else ' (the weights do not fit)'}",
        f"    KV cache        {blocks}",
        f"    concurrency     {p['max_concurrency']:,.2f}x requests of {context:,} tokens (whole deployment); "
        f"pooling the GPUs' memory would suggest {p['pooled_concurrency']:,.2f}x",
        f"    longest request {ctx}; {'fits' if p['fits'] else 'does not fit'}"
        if not p["startup_error"]
        else "    longest request none: vLLM does not start (the first note says why)",
        f"    limits          max_model_len {_len(p['max_model_len'])} (derived from the config: "
        f"{_len(p['derived_max_model_len'])}); {p['max_running_requests']:,} request(s) of {context:,} tokens run at "
        f"once (max_num_seqs {_len(p['max_num_seqs'])} per engine)",
    ]
    return lines + logged + [f"    note: {n}" for n in p["notes"]]


def _len(v: int | None) -> str:
    return "unknown" if v is None else f"{v:,}"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump, exit 2
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    """The command line's flags (bad ones exit 2 with one line)."""
    p = _Parser(prog="python -m core.report", description="KV cache, FLOPs and parameters of a model.")
    p.add_argument("spec", nargs="?", help="preset name or path to a config.json")
    p.add_argument(
        "--hub",
        metavar="ORG/NAME",
        help="a model on the Hugging Face Hub (HF_ENDPOINT and HF_TOKEN honoured): its config.json, and its "
        "checkpoint's size as the weights",
    )
    p.add_argument("--context", type=int, default=4096, help="tokens in context (default 4096)")
    p.add_argument("--batch", type=int, default=1, help="sequences (default 1)")
    p.add_argument(
        "--kv-dtype",
        default="auto",
        choices=["auto", *CACHE_DTYPES, *KV_DTYPE_ALIASES],
        help="cache dtype (auto: the model's, as vLLM; fp8_e4m3 and fp8_e5m2 are fp8)",
    )
    p.add_argument(
        "--layout", default="latent", choices=list(acc.LAYOUTS), help="MLA / DSA / V4 cache layout (not for GQA)"
    )
    p.add_argument("--weight-dtype", default="bf16", choices=list(WEIGHT_DTYPES), help="weights format")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--list", action="store_true", help="list the presets")
    g = p.add_argument_group("memory plan (any of these adds the JSON key `plan`)")
    g.add_argument("--gpu", help=f"GPU preset: {', '.join(GPUS)}")
    g.add_argument("--gpu-memory-gib", type=float, help="memory per GPU in GiB (instead of, or overriding, --gpu)")
    g.add_argument("--gpus", type=int, help="number of GPUs (default TP x PP)")
    g.add_argument("--tp", type=int, help="tensor parallel size (default: the widest that splits the model; 1 with DP)")
    g.add_argument("--pp", type=int, help="pipeline parallel size (default 1)")
    g.add_argument("--dp-attention", action="store_true", help="data-parallel attention, experts over all GPUs (EP)")
    # defaults are PlanSettings' (plan_settings), so that giving any of these, even at its default, asks for a plan
    g.add_argument("--utilization", type=float, help="gpu_memory_utilization (default 0.9)")
    g.add_argument("--reserved-gib", type=float, help="per GPU: activations, CUDA graphs (default 0)")
    g.add_argument("--weights", choices=["native", *WEIGHT_DTYPES], help="weights (default native)")
    g.add_argument("--kv-budget-gib", type=float, help="available KV cache memory per GPU, as vLLM logs it")
    g.add_argument(
        "--max-num-batched-tokens",
        type=int,
        help="vLLM's max_num_batched_tokens (default: vllm serve's for the GPU, 8192 on GPUs of 70 GiB or more but "
        "the A100, else 2048; 8192 when only --kv-budget-gib says what the GPU holds)",
    )
    g.add_argument("--block-size", type=int, help="tokens per block (default 16; FlashMLA 64)")
    g.add_argument("--max-model-len", type=int, help="vLLM's max_model_len (default: derived from the config)")
    g.add_argument(
        "--max-num-seqs", type=int, help="vLLM's max_num_seqs (default: 1024 on 70 GiB+ GPUs but A100, else 256)"
    )
    g.add_argument(
        "--allow-long-max-model-len",
        action="store_true",
        help="as VLLM_ALLOW_LONG_MAX_MODEL_LEN=1: past the derived length",
    )
    g.add_argument("--sync-scheduling", action="store_true", help="one batch in flight per stage (vLLM's async off)")
    g.add_argument(
        "--vllm-version",
        help=f"the vLLM release whose rules and log format to follow (default {pl.VLLM_RELEASE}; one of "
        f"{', '.join(vh.VERSIONS)}, or X.Y where its patches agree)",
    )
    g.add_argument(
        "--enable-prefix-caching",
        action=argparse.BooleanOptionalAction,
        help="prefix caching (default: the release's; for hybrid models off before 0.26, on from 0.26)",
    )
    g.add_argument("--mamba-cache-mode", choices=list(vh.MODES), help="hybrids with prefix caching (default: vLLM's)")
    g.add_argument("--mamba-block-size", type=int, help="tokens per state checkpoint in all mode (default: vLLM's)")
    g.add_argument(
        "--mamba-ssm-cache-dtype", choices=list(vh.SSM_DTYPES), help="SSM state dtype (auto: the config's or model's)"
    )
    g.add_argument("--num-speculative-tokens", type=int, help="MTP draft tokens (default 0: no speculative decoding)")
    g.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs (hybrids: no max_num_seqs check)")
    g.add_argument("--engine", choices=ENGINES, help="the serving engine planned (default vllm)")
    sg = p.add_argument_group("SGLang (with --engine sglang; SGLang's own flag names, and --tp, --dp-attention, "
                              "--kv-dtype, --kv-budget-gib as the memory left for its pool)")  # fmt: skip
    sg.add_argument("--mem-fraction-static", type=float, help="the fraction SGLang's server used (required)")
    sg.add_argument("--page-size", type=int, help="tokens per page (default 1)")
    sg.add_argument(
        "--dp", type=int, help="data-parallel size (default 1; with --dp-attention, attention TP = tp / dp)"
    )
    sg.add_argument("--max-total-tokens", type=int, help="a cap on the token pool")
    ll = p.add_argument_group("llama.cpp (with --engine llama.cpp; llama.cpp's own flag names)")
    ll.add_argument("--ctx-size", type=int, help="-c: context cells (required; its 0 means the GGUF's length)")
    ll.add_argument("--parallel", type=int, help="-np: sequences (default 1)")
    ll.add_argument("--ubatch-size", type=int, help="-ub: physical batch (default 512)")
    ll.add_argument("--batch-size", type=int, help="-b: logical batch (default 2048)")
    ll.add_argument("--kv-unified", action="store_true", help="one KV buffer shared by every sequence")
    ll.add_argument("--cache-type-k", choices=list(llamacpp.CACHE_TYPES), help="-ctk (default f16)")
    ll.add_argument("--cache-type-v", choices=list(llamacpp.CACHE_TYPES), help="-ctv (default f16)")
    ll.add_argument("--swa-full", action="store_true", help="a full-size cache for sliding-window layers")
    ll.add_argument("--flash-attn", choices=["on", "off", "auto"], help="-fa (default auto, taken as on)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    a.kv_dtype = KV_DTYPE_ALIASES.get(a.kv_dtype, a.kv_dtype)
    wants_plan = a.enable_prefix_caching is not None or any(  # --no-enable-prefix-caching asks for a plan too
        getattr(a, f) not in (None, False) for f in (*PLAN_FLAGS, "engine", *LLAMACPP_FLAGS, *SGLANG_FLAGS)
    )
    a.engine = a.engine or "vllm"
    if a.list:
        print("\n".join(preset_names()))
        return 0
    if not a.spec and not a.hub:
        p.error("give a preset name, a config.json path (see --list) or --hub ORG/NAME.")
    if a.spec and a.hub:
        p.error("give a preset, a config.json path or --hub ORG/NAME, not two of them.")
    a.checkpoint = None
    try:
        if a.context < 1 or a.context > 1 << 40:
            raise ValueError(f"--context must be between 1 and {1 << 40:,}, got {a.context:,}.")
        if a.batch < 1 or a.batch > 1 << 20:
            raise ValueError(f"--batch must be between 1 and {1 << 20:,}, got {a.batch:,}.")
        if a.hub:
            try:
                fetched = hub.fetch(a.hub)
            except hub.HubUnavailable as e:
                print(f"error: {e}", file=sys.stderr)
                return 3
            spec = from_hf_config(fetched.config, name=fetched.repo_id)
            a.checkpoint = fetched
        else:
            spec = resolve(a.spec)
        r = report(spec, a.context, a.batch, a.kv_dtype, a.layout, a.weight_dtype)
        if a.checkpoint is not None:
            r["checkpoint"] = {"repo_id": a.checkpoint.repo_id, "bytes": a.checkpoint.checkpoint_bytes,
                               "source": a.checkpoint.source}  # fmt: skip
        if wants_plan:
            for name, v, lo, hi in (
                ("--gpus", a.gpus, 1, 4096), ("--tp", a.tp, 1, 4096), ("--pp", a.pp, 1, 4096),
                ("--gpu-memory-gib", a.gpu_memory_gib, 0.001, 1e6), ("--utilization", a.utilization, 1e-6, 1.0),
                ("--reserved-gib", a.reserved_gib, 0.0, 1e6), ("--kv-budget-gib", a.kv_budget_gib, 0.0, 1e6),
            ):  # fmt: skip
                if v is not None and not lo <= v <= hi:
                    raise ValueError(f"{name} must be between {lo:g} and {hi:g}, got {v:g}.")
            r["plan"] = plan_report(spec, a)
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
