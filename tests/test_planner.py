"""The planner reproduces vLLM's paging arithmetic and answers what fits, exactly.

Proves: vLLM's log line for Llama-3.1-8B (3.81 GiB for the cache -> 1,952 blocks -> 1.56x for
20,000-token requests) comes out exactly; the budget is n x M x u - W - R; the max context is the
largest whole-block context that fits (one more block does not); bounded caches (all layers windowed)
report no limit; hybrid models fall back to bytes; a model whose weights do not fit gets no budget.
"""

import pytest

from core.accounting import planner as pl
from core.accounting import totals as acc
from core.model.gpus import GPUS
from core.model.presets import load_preset

GIB = 2**30


def hw_with_budget(spec, budget: int, weight_dtype: str = "bf16") -> pl.Hardware:
    return pl.Hardware("x", acc.weights_bytes(spec, weight_dtype) + budget, 1e12, 1, 1.0, 0)


def test_vllm_maximum_concurrency_log_line_for_llama_8b():
    spec = load_preset("llama-3.1-8b")
    p = pl.plan(spec, hw_with_budget(spec, int(3.8125 * GIB)), 20_000)
    assert p.block_bytes == 16 * 131_072
    assert p.num_blocks == 1952
    assert f"{p.max_concurrency:.2f}" == "1.56"


def test_budget_is_usable_minus_weights_minus_reserved():
    spec = load_preset("llama-3.1-70b")
    hw = pl.Hardware("H200", GPUS["H200"].memory_bytes, 4.8e12, 8, 0.9, 8 * 2 * GIB)
    p = pl.plan(spec, hw, 131_072, weight_dtype="bf16")
    assert p.usable_bytes == int(8 * 141e9 * 0.9)
    assert p.kv_budget_bytes == p.usable_bytes - acc.weights_bytes(spec, "bf16") - 16 * GIB


def test_done_means_numbers_on_eight_h200():
    """Llama-3.1-70B (bf16) and DeepSeek-V3 (fp8 as released) at 128K tokens on 8 x H200, 90%."""
    hw = pl.Hardware("H200", GPUS["H200"].memory_bytes, 4.8e12, 8, 0.9, 0)
    llama = pl.plan(load_preset("llama-3.1-70b"), hw, 131_072, weight_dtype="native")
    v3 = pl.plan(load_preset("deepseek-v3"), hw, 131_072, weight_dtype="native")
    assert f"{llama.max_concurrency:.2f}" == "20.35"
    assert f"{v3.max_concurrency:.2f}" == "37.15"
    assert llama.fits and v3.fits


@pytest.mark.parametrize("name", ["llama-3.1-8b", "deepseek-v3", "gemma-3-27b", "deepseek-v4-flash", "gpt-oss-120b"])
@pytest.mark.parametrize("batch", [1, 7])
def test_max_context_is_the_largest_whole_block_that_fits(name, batch):
    spec = load_preset(name)
    budget = 40 * GIB
    n = pl.max_context(spec, budget, batch)
    assert n is not None and n > 0 and n % pl.BLOCK_TOKENS == 0
    assert batch * pl.paged_request_bytes(spec, n) <= budget
    assert batch * pl.paged_request_bytes(spec, n + pl.BLOCK_TOKENS) > budget


def test_bounded_cache_has_no_context_limit_and_tiny_budget_none_fits():
    mistral = load_preset("mistral-7b")  # every layer keeps at most 4,096 tokens
    assert pl.max_context(mistral, 10 * GIB) is None
    assert pl.max_context(mistral, 1000) == 0
    assert pl.max_context(mistral, -5) == 0


def test_hybrid_models_use_bytes_not_blocks():
    gemma = load_preset("gemma-3-27b")
    assert not pl.grows_linearly(gemma) and pl.grows_linearly(load_preset("deepseek-v3"))
    p = pl.plan(gemma, hw_with_budget(gemma, 100 * GIB), 100_000)
    assert p.num_blocks == 0
    assert p.max_concurrency == pytest.approx(100 * GIB / pl.paged_request_bytes(gemma, 100_000))


def test_paging_rounds_up_to_whole_blocks():
    spec = load_preset("llama-3.1-8b")
    assert pl.paged_request_bytes(spec, 1) == pl.paged_request_bytes(spec, 16) == 16 * 131_072
    assert pl.paged_request_bytes(spec, 17) == 32 * 131_072


def test_weights_that_do_not_fit_leave_no_budget():
    v4 = load_preset("deepseek-v4-pro")
    hw = pl.Hardware("H200", GPUS["H200"].memory_bytes, 4.8e12, 1, 0.9, 0)
    p = pl.plan(v4, hw, 4096)
    assert p.kv_budget_bytes < 0 and not p.fits and p.max_concurrency == 0 and p.max_context == 0
    assert p.headroom_bytes < 0


def test_bad_hardware_and_requests_raise_value_error():
    with pytest.raises(ValueError, match="utilization"):
        pl.Hardware("x", 1, 1, 1, 0.0)
    with pytest.raises(ValueError, match="positive"):
        pl.Hardware("x", 1, 1, 0, 0.9)
    spec = load_preset("gpt2")
    with pytest.raises(ValueError, match="at least 1"):
        pl.plan(spec, hw_with_budget(spec, GIB), 0)


def test_decode_step_reads_weights_once_and_each_cache():
    """Dense model: the lm_head and every layer's weights (not the embedding table, a lookup) plus the
    cache of each request; MoE: routed experts only up to the share the batch can reach."""
    llama = load_preset("llama-3.1-8b")
    embed, head, routed, rest = acc.weights_bytes_parts(llama, "bf16")
    one = pl.decode_step_bytes(llama, 4096, 1, "bf16", "bf16", "latent")
    assert one == head + rest + acc.cache_bytes_read(llama, 4096)
    assert pl.decode_step_bytes(llama, 4096, 8, "bf16", "bf16", "latent") - one == 7 * acc.cache_bytes_read(llama, 4096)
    v3 = load_preset("deepseek-v3")
    _, head, routed, rest = acc.weights_bytes_parts(v3, "native")
    b1 = pl.decode_step_bytes(v3, 1, 1, "bf16", "native", "latent") - acc.cache_bytes_read(v3, 1)
    assert b1 == head + rest + int(routed * 8 / 256)
    big = pl.decode_step_bytes(v3, 1, 1000, "bf16", "native", "latent") - 1000 * acc.cache_bytes_read(v3, 1)
    assert big == head + rest + routed
    hw = pl.Hardware("H200", GPUS["H200"].memory_bytes, 4.8e12, 8, 0.9, 0)
    p = pl.plan(llama, hw, 4096, 2)
    assert p.step_seconds == p.step_bytes_read / (8 * 4.8e12) and p.tokens_per_second == 2 / p.step_seconds
