"""core/accounting/sglang.py reproduces the token-pool lines real SGLang runs logged, from the models' real
config.json files, and refuses what its rules (SGLang's main of early 2026) do not cover.

Each test names the public thread, the flags and the logged lines. Where a log does not print the memory
SGLang measured, the test reproduces the K/V sizes from the logged #tokens exactly and checks that the
#tokens follows from a rest memory inside the interval the log allows.
"""

import dataclasses

import pytest

from core.accounting.sglang import (
    SGLangFlags,
    cell_size,
    kv_pool,
    max_total_num_tokens,
    rest_memory_gib,
    sglang_pool,
)
from core.model.presets import load_preset, resolve

CORPUS = "tests/data/configs/"


def tokens_for_rest(spec, flags, rest_gib: float) -> int:
    """The pool a rest memory of `rest_gib` gives: total 80 GiB and the available memory that leaves it."""
    total = 80.0
    return max_total_num_tokens(spec, flags, total, rest_gib + total * (1 - flags.mem_fraction_static))


def test_qwen3_235b_fp8_tp4():
    """https://github.com/vllm-project/vllm/issues/21348 (4 x H100):
    `python3 -m sglang.launch_server --model /path/to/Qwen3-235B-A22B-FP8 --tp 4 --trust-remote-code
    --mem-fraction-static 0.93` logged "KV Cache is allocated. #tokens: 367404, K size: 8.23 GB, V size:
    8.23 GB". 4 kv heads / tp 4 = 1 head of 128 per rank, 94 layers, bf16 cache (FP8 weights, auto cache):
    (367404 + 1) x 128 x 94 x 2 B = 8.234 GiB per buffer. The issue prints no avail-mem line: #tokens
    follows from any rest memory in [367404, 367405) x 48128 B."""
    spec = resolve(CORPUS + "qwen--qwen3-235b-a22b.json")
    flags = SGLangFlags(dtype="bfloat16", mem_fraction_static=0.93, tp=4)
    assert cell_size(spec, flags) == 2 * 1 * 128 * 94 * 2 == 48128
    assert kv_pool(spec, flags, 367404).log_line() == (
        "KV Cache is allocated. #tokens: 367404, K size: 8.23 GB, V size: 8.23 GB"
    )
    low, high = 367404 * 48128 / 2**30, 367405 * 48128 / 2**30
    assert tokens_for_rest(spec, flags, (low + high) / 2) == 367404


def test_llama_70b_geometry_tp8_h200():
    """https://github.com/sgl-project/sglang/pull/11716 (8 x H200, TP0..TP7, 30 safetensors shards,
    "Load weight begin. avail mem=137.29 GB" on seven ranks): "[2025-10-16 09:06:22 TP5] KV Cache is
    allocated. #tokens: 2795207, K size: 53.31 GB, V size: 53.31 GB". The log names no model; 53.31 GB
    for 2,795,208 slots is 20,480 B per token and buffer = 1 head x 128 x 80 layers x 2 B: an 80-layer,
    8-kv-head model at tp 8 (Llama-3.1-70B, whose checkpoint has 30 shards; Qwen2.5-72B's geometry is the
    same). The mem fraction and the load-end line are not in the excerpt, so #tokens is checked against
    its interval of rest memory."""
    flags = SGLangFlags(dtype="bfloat16", mem_fraction_static=0.9, tp=8)
    for config in ("meta-llama--meta-llama-3.1-70b.json", "qwen--qwen2.5-72b.json"):
        spec = resolve(CORPUS + config)
        assert kv_pool(spec, flags, 2795207).log_line() == (
            "KV Cache is allocated. #tokens: 2795207, K size: 53.31 GB, V size: 53.31 GB"
        )
        assert tokens_for_rest(spec, flags, 2795207.5 * 40960 / 2**30) == 2795207


def test_qwen3_30b_a3b_dtype_variant():
    """https://github.com/sgl-project/sglang/pull/18263 (AMD, one GPU, Qwen3-30B-A3B, mem fraction 0.911):
    "KV Cache is allocated. dtype: torch.bfloat16, #tokens: 1669816, K size: 76.44 GB, V size: 76.44 GB",
    the line of mid-2026 builds. The #tokens there comes from the PR's own budget ("Case 2:
    candidate_kv_budget 164149629787"): 164149629787 // 98304 = 1669816; the K/V sizes are the pool's,
    (1669816 + 1) x 4 x 128 x 48 x 2 B."""
    spec = resolve(CORPUS + "qwen--qwen3-30b-a3b.json")
    flags = SGLangFlags(dtype="bfloat16", mem_fraction_static=0.911)
    assert cell_size(spec, flags) == 98304
    assert 164149629787 // cell_size(spec, flags) == 1669816
    assert kv_pool(spec, flags, 1669816).log_line(with_dtype=True) == (
        "KV Cache is allocated. dtype: torch.bfloat16, #tokens: 1669816, K size: 76.44 GB, V size: 76.44 GB"
    )


def test_mla_two_layers_profiled_and_capped():
    """https://github.com/sgl-project/sglang/pull/14071 (a 2-layer MLA model, kv_lora_rank 512, rope 64,
    bf16, 4 ranks, `--max-total-tokens 60000`), the PR's extra lines:
    "KV cache: MLA(kv_lora=512, rope=64) layers=2 dtype=torch.bfloat16 2.25KB/tok mem=42.5/43.8GB
    rest=35.9GB max_tokens=16725761", "max_total_num_tokens: arg=60000 vs profiled=16725761, using min",
    "[TP2] KV Cache is allocated. #tokens: 60000, KV size: 0.13 GB, layout=(60001, 1, 576), page_size=1".
    The MLA cell is whole on every rank: (512 + 64) x 2 layers x 2 B = 2304 B. The mem fraction is not
    printed; 0.85 with 43.8 GiB before and 42.45959 GiB after loading (both print as logged) gives the rest
    35.88959 GiB inside the interval [16725761, 16725762) x 2304 B, and the profiled count."""
    deepseek = load_preset("deepseek-v3")
    spec = dataclasses.replace(deepseek, attention=deepseek.attention[:2], mlp=deepseek.mlp[:2])
    flags = SGLangFlags(dtype="bfloat16", mem_fraction_static=0.85, tp=4)
    assert cell_size(spec, flags) == 2304
    assert f"{43.8:.1f}/{42.45959:.1f} rest={rest_memory_gib(flags, 43.8, 42.45959):.1f}" == "43.8/42.5 rest=35.9"
    assert max_total_num_tokens(spec, flags, 43.8, 42.45959) == 16725761
    capped = sglang_pool(spec, dataclasses.replace(flags, max_total_tokens=60000), 43.8, 42.45959)
    assert capped.log_line() == "KV Cache is allocated. #tokens: 60000, KV size: 0.13 GB"
    assert capped.k_bytes == 60001 * 576 * 2 * 2 and capped.server_log() == "max_total_num_tokens=60000"


def test_page_size_dp_attention_and_fp8():
    spec = load_preset("llama-3.1-8b")  # 32 layers, 8 kv heads of 128
    flags = SGLangFlags(dtype="bfloat16", mem_fraction_static=0.9, page_size=64)
    # rest = 30 - 40 x 0.1 = 26 GiB; cell = 8 x 256 x 32 x 2 = 131072 B -> 212992 tokens, a multiple of 64
    pool = sglang_pool(spec, flags, 40.0, 30.0)
    assert pool.max_total_num_tokens == 26 * 2**30 // 131072 // 64 * 64
    assert pool.k_bytes == (pool.max_total_num_tokens + 64) * 8 * 128 * 32 * 2
    # dp attention: tp 8 / dp 4 = 2 attention ranks, 4 kv heads each; fp8 halves the cell
    dp = SGLangFlags(mem_fraction_static=0.9, tp=8, dp=4, enable_dp_attention=True, kv_cache_dtype="fp8_e4m3")
    assert cell_size(spec, dp) == 4 * 256 * 32 * 1
    assert kv_pool(spec, dp, 1000).torch_dtype == "torch.float8_e4m3fn"
    # more ranks than kv heads: one head per rank (get_num_kv_heads)
    assert cell_size(spec, SGLangFlags(dtype="bfloat16", mem_fraction_static=0.9, tp=16)) == 1 * 256 * 32 * 2


def test_refusals():
    spec = load_preset("llama-3.1-8b")
    with pytest.raises(ValueError, match="unknown SGLang kv cache dtype 'int8'"):
        SGLangFlags(dtype="bfloat16", mem_fraction_static=0.9, kv_cache_dtype="int8")
    with pytest.raises(ValueError, match="fp4_e2m1"):
        SGLangFlags(dtype="bfloat16", mem_fraction_static=0.9, kv_cache_dtype="fp4_e2m1")
    for fraction in (0, 1.2, -0.1, True):
        with pytest.raises(ValueError, match=r"mem_fraction_static must be in \(0, 1\]"):
            SGLangFlags(dtype="bfloat16", mem_fraction_static=fraction)
    with pytest.raises(ValueError, match="must be a multiple of dp"):
        SGLangFlags(dtype="bfloat16", mem_fraction_static=0.9, tp=6, dp=4, enable_dp_attention=True)
    with pytest.raises(ValueError, match="unknown model dtype"):
        SGLangFlags(mem_fraction_static=0.9, dtype="int4")
    with pytest.raises(ValueError, match="Not enough memory"):
        max_total_num_tokens(spec, SGLangFlags(dtype="bfloat16", mem_fraction_static=0.5), 80.0, 30.0)
    with pytest.raises(ValueError, match="total_gpu_memory must be a positive number"):
        max_total_num_tokens(spec, SGLangFlags(dtype="bfloat16", mem_fraction_static=0.9), 0, 30.0)
    flags = SGLangFlags(dtype="bfloat16", mem_fraction_static=0.9)
    for preset, reason in (
        ("deepseek-v3.2", "DSA"),
        ("deepseek-v4-flash", "not covered"),
        ("gemma-2-9b", "sliding-window"),
        ("qwen3-next-80b-a3b", "not covered"),
        ("nemotron-h-56b", "not covered"),
        ("llama-4-scout", "chunked"),
        ("mimo-v2-flash", "sliding-window|another width"),
    ):
        with pytest.raises(ValueError, match=reason):
            cell_size(load_preset(preset), flags)


def test_an_auto_cache_needs_the_model_dtype():
    """--kv-cache-dtype auto stores the model's dtype: without it the pool is not sized (no bfloat16 guess)."""
    with pytest.raises(ValueError, match="give dtype"):
        SGLangFlags(mem_fraction_static=0.9)
    assert SGLangFlags(mem_fraction_static=0.9, kv_cache_dtype="fp8_e4m3").element_size == 1
