"""core/view/engines.py: the planner's requests as llama.cpp and SGLang would hold them, with their own lines
and one sentence on how each differs from vLLM."""

from __future__ import annotations

from core.accounting import llamacpp, sglang
from core.accounting import planner as pl
from core.model.presets import load_preset
from core.view.engines import engine_views, llamacpp_view, sglang_view

H200X8 = pl.Hardware("H200", 141 * 10**9, 4.8e12, 8)


def test_llamacpp_sliding_window_cells_are_said_with_the_reason():
    """gpt-oss-120b, two requests of 32,768 tokens: llama-server -c 65536 -np 2; the window of 128 becomes
    pad256(128 + 512) = 768 cells per sequence, and the lines are llama.cpp's own."""
    spec = load_preset("gpt-oss-120b")
    v = llamacpp_view(spec, 32_768, 2, "bf16")
    assert v.setup == "llama-server -c 65536 -np 2 -ctk bf16 -ctv bf16"
    assert "768 sliding-window cells per sequence, not 128" in v.summary
    flags = llamacpp.LlamaCppFlags(65_536, 2, cache_type_k="bf16", cache_type_v="bf16")
    assert v.lines == llamacpp.llamacpp_memory(spec, flags).log_lines()


def test_engines_say_what_their_rules_do_not_cover():
    v3 = load_preset("deepseek-v3")
    assert llamacpp_view(v3, 4096, 1, "bf16").summary.startswith("Not shown: layer 0: MLA")
    assert llamacpp_view(v3, 4096, 1, "int4").summary == "llama.cpp has no int4 cache type."
    p = pl.plan(load_preset("gemma-3-27b"), H200X8, 32_768, weight_dtype="native")
    assert "sliding-window layers use SGLang's hybrid SWA pools" in sglang_view(load_preset("gemma-3-27b"), p).summary


def test_sglang_is_given_the_memory_vllm_leaves_its_cache():
    """Llama-3.1-70B on 8 x H200 at TP8: SGLang's pool on the plan's KV memory per GPU holds
    int(budget) // (2 x 1 x 128 x 80 x 2 B) one-token slots; vLLM's blocks of 16 hold a few less."""
    spec = load_preset("llama-3.1-70b")
    p = pl.plan(spec, H200X8, 32_768, weight_dtype="native", parallel=pl.Parallelism(8))
    v = sglang_view(spec, p)
    tokens = p.kv_budget_bytes_per_gpu // 40_960
    assert v.lines[-1] == f"max_total_num_tokens={tokens}" and f"{tokens:,} token slots" in v.summary
    flags = sglang.SGLangFlags(0.9, tp=8, dtype="bfloat16")
    assert v.lines[0] == sglang.kv_pool(spec, flags, tokens).log_line()
    assert p.kv_cache_tokens <= tokens and [e.engine for e in engine_views(spec, p, 1)] == ["llama.cpp", "SGLang"]
