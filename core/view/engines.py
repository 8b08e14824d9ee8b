"""The same model and requests as other engines would hold them: llama.cpp's caches and SGLang's token pool
beside vLLM's plan, with the lines each engine logs and one sentence on how it differs.

llama.cpp is set up as `llama-server -c (context x requests) -np requests` with its defaults (-ub 512, flash
attention, separate streams); SGLang's pool is given the memory vLLM's plan leaves its cache per GPU, so the
two count the same bytes. What an engine's rules do not cover is said, not approximated
(core.accounting.llamacpp, core.accounting.sglang).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.accounting import llamacpp, sglang
from core.accounting import planner as pl
from core.model.specs import GQASpec, ModelSpec

GIB = 1 << 30
# the planner's cache dtypes as llama.cpp's --cache-type (the same bytes per value); others have no counterpart
LLAMACPP_TYPES = {"bf16": "bf16", "fp16": "f16", "fp32": "f32"} | {
    t: t for t in ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl")
}
SGLANG_TYPES = {"bf16": "bf16", "fp8": "fp8_e4m3"}  # the same bytes as the planner's; fp16 models cache "auto"
SGLANG_MODEL = {"bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class EngineView:
    engine: str  # "llama.cpp" or "SGLang"
    setup: str  # the flags it is shown with
    lines: tuple[str, ...]  # what it logs; () when its rules do not cover the model
    summary: str  # one sentence: what it holds, or why it is not shown


def llamacpp_view(spec: ModelSpec, context: int, requests: int, kv_dtype: str) -> EngineView:
    ctype = LLAMACPP_TYPES.get(kv_dtype)
    setup = f"llama-server -c {context * requests} -np {requests}" + (f" -ctk {ctype} -ctv {ctype}" if ctype else "")
    if ctype is None:
        return EngineView("llama.cpp", setup, (), f"llama.cpp has no {kv_dtype} cache type.")
    flags = llamacpp.LlamaCppFlags(context * requests, requests, cache_type_k=ctype, cache_type_v=ctype)
    try:
        m = llamacpp.llamacpp_memory(spec, flags)
    except ValueError as e:
        return EngineView("llama.cpp", setup, (), f"Not shown: {e}")
    parts = [f"{m.total / GIB:,.2f} GiB in all (one device holds it, or its layers split over several)"]
    windows = sorted({a.sliding_window for a in spec.attention if isinstance(a, GQASpec) and a.sliding_window})
    if m.swa is not None and windows:
        w = windows[-1]
        parts.append(
            f"it keeps {m.swa.cells:,} sliding-window cells per sequence, not {w:,}, because it adds the "
            f"micro-batch ({m.n_ubatch}) to the window and pads to 256 (vLLM keeps the window plus the tokens in "
            "flight, in blocks)"
        )
    if m.full is not None and m.n_ctx_seq != context:
        parts.append(f"each sequence gets {m.n_ctx_seq:,} cells: the context padded to 256")
    if m.recurrent is not None:
        parts.append("its recurrent state is f32 whatever the cache type, one cell per sequence")
    summary = "; ".join(parts)
    return EngineView("llama.cpp", setup, m.log_lines(), summary[0].upper() + summary[1:] + ".")


def sglang_view(spec: ModelSpec, plan: pl.Plan) -> EngineView:
    budget = plan.kv_budget_bytes_per_gpu
    par = plan.parallel
    setup = f"--tp {par.tp * (par.dp if par.dp_attention else 1)}" + (
        f" --dp {par.dp} --enable-dp-attention" if par.dp_attention else ""
    )
    native = spec.native_weights[0]
    kv = "auto" if plan.kv_dtype == native else SGLANG_TYPES.get(plan.kv_dtype)
    if kv is None or native not in SGLANG_MODEL:
        return EngineView("SGLang", setup, (), f"SGLang's --kv-cache-dtype has no {plan.kv_dtype} counterpart here.")
    if budget <= 0:
        return EngineView("SGLang", setup, (), "No memory is left for a pool.")
    tp = par.tp * (par.dp if par.dp_attention else 1)
    try:
        flags = sglang.SGLangFlags(
            mem_fraction_static=0.9, tp=tp, dp=par.dp if par.dp_attention else 1,
            enable_dp_attention=par.dp_attention, kv_cache_dtype=kv, dtype=SGLANG_MODEL[native],
        )  # fmt: skip
        if par.pp > 1:
            raise ValueError("SGLang's pools under pipeline parallelism are not covered.")
        pool = sglang.kv_pool(spec, flags, sglang.tokens_for_rest(spec, flags, budget / GIB))
    except ValueError as e:
        return EngineView("SGLang", setup, (), f"Not shown: {e}")
    vllm = f", vLLM's pool {plan.kv_cache_tokens:,} tokens" if plan.kv_cache_tokens is not None else ""
    return EngineView(
        "SGLang",
        setup,
        (pool.log_line(), pool.server_log()),
        f"Given the same {budget / GIB:,.2f} GiB per GPU for its pool: {pool.max_total_num_tokens:,} token "
        f"slots of one token each{vllm}.",
    )


def engine_views(spec: ModelSpec, plan: pl.Plan, requests: int) -> tuple[EngineView, ...]:
    """llama.cpp and SGLang for `spec` at the plan's context and `requests` concurrent requests."""
    return (llamacpp_view(spec, plan.context, requests, plan.kv_dtype), sglang_view(spec, plan))
