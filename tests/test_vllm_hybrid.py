"""vLLM's hybrid pools (core/accounting/vllm_hybrid.py), against public startup logs and against vLLM's
code path worked by hand.

Logs (tests/data/vllm_hybrid_logs.json, each with its URL, flags and lines): vLLM prints the available
KV memory rounded to 0.01 GiB, so each test feeds a budget inside the interval that every logged integer
allows, and checks the tokens and the concurrency exactly as printed.
"""

from __future__ import annotations

import json
from math import ceil
from pathlib import Path

import pytest

from core.accounting import planner as pl
from core.accounting import vllm_hybrid as vh
from core.model.hf_config import from_hf_config, load_config_file
from core.model.presets import load_preset

DATA = Path(__file__).parent / "data"
GIB = 2**30
LOGS_ALL = json.loads((DATA / "vllm_hybrid_logs.json").read_text())
LOGS = {e["url"].rsplit("/", 1)[-1]: e for e in LOGS_ALL if e["url"]}  # by issue number


def config(name: str):
    return from_hf_config(load_config_file(DATA / "configs" / f"{name}.json"))


def hybrid_plan(spec, tp, kv, budget, mml, settings, gpu="RTX 5090", block=16):
    alloc = pl.Allocator(block, kv_budget_bytes=budget, max_model_len=mml, max_num_seqs=1, hybrid=settings)
    return pl.plan(spec, pl.Hardware(gpu, 1, 0.0, tp), mml, 1, kv, parallel=pl.Parallelism(tp), allocator=alloc)


def logged(e: dict) -> tuple[str, str]:
    """The "GPU KV cache size" and "Maximum concurrency" values as printed."""
    size = next(x for x in e["lines"] if "GPU KV cache size" in x).split("size: ")[1]
    conc = next(x for x in e["lines"] if "Maximum concurrency" in x).rsplit(": ", 1)[1]
    return size, conc


@pytest.mark.parametrize(
    "issue,budget_gib",
    [
        ("612", 5.98),  # "Available KV cache memory: 5.98 GiB"
        ("652", 6.01),
    ],
)
def test_qwen36_35b_a3b_fp8_cache_prefix_caching_vllm_0_24(issue, budget_gib):
    """club-3090 #612 and #652 (one RTX 5090, vLLM 0.24.0): `--kv-cache-dtype fp8 --enable-prefix-caching
    --max-model-len 131072 --max-num-seqs 1`. Qwen3.6-35B-A3B: 10 attention layers (2 kv heads of 256,
    fp8: 1,024 B a token) and 30 Gated DeltaNet layers, whose state is a 3 x 8,192 bf16 convolution and a
    32 x 128 x 128 fp32 recurrence (the config's mamba_ssm_dtype): 2,146,304 B, exactly 131 x 16 tokens of
    attention, so the block is 2,096 tokens with no padding. Align mode (prefix caching on): 2 state
    blocks per request in each of 3 state groups, cdiv(131,072, 2,096) = 63 in the attention group."""
    e = LOGS[issue]
    assert e["vllm_version"] == "0.24.0" and e["kv_cache_dtype"] == "fp8" and e["enable_prefix_caching"]
    spec = config("qwen--qwen3.6-35b-a3b")
    p = hybrid_plan(spec, 1, "fp8", int(budget_gib * GIB), 131_072, vh.HybridSettings("0.24.0", True))
    assert p.exact and p.hybrid.mode == "align" and p.block_size == 2096 and p.hybrid.padding_percent == 0
    assert p.hybrid.lines() == [
        "Setting attention block size to 2096 tokens to ensure that attention page size is >= mamba page size."
    ]
    assert p.groups.n_groups == 4 and p.groups.group_size == 10 and p.blocks_per_request == 63 + 3 * 2
    assert p.num_blocks == int(budget_gib * GIB) // (10 * 2096 * 1024)
    size, conc = logged(e)
    assert f"{p.kv_cache_tokens:,} tokens" == size
    assert f"{p.max_concurrency:.2f}x" == conc


def test_qwen3_27b_mtp_fp8_e5m2_vllm_0_24_pads_the_state_groups():
    """club-3090 #642 (2 x RTX 3090, TP2, --max-model-len 262144, --dtype float16; the same rig's dual int4
    profile in #91, #294 and #295 adds --kv-cache-dtype fp8_e5m2, --enable-prefix-caching and MTP with 3
    speculative tokens, which the excerpt cuts off: the exact match below is what supports them). The
    shapes are Qwen3.5-27B's (64 layers: 16 attention, 48 Gated DeltaNet; Qwen3.6-27B's config is not in
    tests/data). MTP adds one attention layer (17) and 3 rows to the convolution state: 1,634,304 B, so the
    block is 1,600 tokens and the state page is padded by 0.25%. Groups of 17: the 48 state layers fill 3
    groups of 16 (dealt round-robin, one padding layer each), so the pool's block is 17 pages. A request of
    262,144 tokens: 164 attention blocks and 2 + 3 per state group. A budget that prints 11.05 GiB gives
    425 or 426 blocks; only 426 prints what was logged.
    """
    e = LOGS["642"]
    spec = config("qwen--qwen3.5-27b")
    assert spec.n_mtp_layers == 1
    s = vh.HybridSettings("0.24.0", True, num_speculative_tokens=3)
    page = 1600 * 1024
    lo, hi = ceil(11.045 * GIB), int(11.055 * GIB)
    assert (lo // (17 * page), (hi - 1) // (17 * page)) == (425, 426)  # what a budget that prints 11.05 gives
    size, conc = logged(e)
    q = hybrid_plan(spec, 2, "fp8", lo, 262_144, s)
    assert q.num_blocks == 425 and f"{q.kv_cache_tokens:,} tokens" != size  # 622,408: not what was logged
    p = hybrid_plan(spec, 2, "fp8", hi - 1, 262_144, s)  # fp8_e5m2: one byte a value, as fp8
    assert p.block_size == 1600 and p.groups.group_size == 17 and p.groups.n_groups == 4
    assert [len(m) for _, m in p.groups.members] == [17, 16, 16, 16]
    assert p.hybrid.lines()[1] == (
        "Padding mamba page size by 0.25% to ensure that mamba page size and attention page size are exactly equal."
    )
    assert p.num_blocks == 426 and p.blocks_per_request == 164 + 3 * 5
    assert (f"{p.kv_cache_tokens:,} tokens", f"{p.max_concurrency:.2f}x") == (size, conc)


# ----------------------------------------------------------------------------- vLLM's code, by hand


def test_qwen3_next_tp4_vllm_0_11_block_and_padding():
    """vLLM 0.11.0, HybridAttentionMambaModelConfig: attention 1 token = 2 x max(1, 2 // 4) x 256 x 2 B =
    1,024 B; the GDN state on one of 4 ranks: (8,192 / 4) x 3 convolution + 8 x 128 x 128 recurrence, both
    bf16 = 274,432 B; block = 16 x cdiv(274,432, 16 x 1,024) = 272; padding (278,528 - 274,432) / 274,432
    = 1.49%. Prefix caching is forced off, 1 state block per group, and "GPU KV cache size" counts whole
    blocks per group: num_blocks // 4 groups x 272."""
    spec = load_preset("qwen3-next-80b-a3b")
    budget = 20 * GIB
    p = hybrid_plan(spec, 4, "bf16", budget, 262_144, vh.HybridSettings("0.11.0", enable_prefix_caching=True))
    h = p.hybrid
    assert (h.attention_token_bytes, h.state_bytes, h.block_size) == (1024, 274_432, 272)
    assert f"{h.padding_percent:.2f}" == "1.49" and not h.prefix_caching and h.mode == "none"
    assert p.groups.group_size == 12 and p.groups.n_groups == 4
    assert p.num_blocks == budget // 272 // 1024 // 12
    assert p.blocks_per_request == ceil(262_144 / 272) + 3
    assert p.kv_cache_tokens == p.num_blocks // 4 * 272


def test_tokens_line_changed_in_0_20_1():
    """vLLM PR #40694: up to 0.20.0 num_blocks // groups x block size, from 0.20.1 int(concurrency x len)."""
    spec = load_preset("qwen3-next-80b-a3b")
    old = hybrid_plan(spec, 4, "bf16", 20 * GIB, 262_144, vh.HybridSettings("0.20.0"))
    new = hybrid_plan(spec, 4, "bf16", 20 * GIB, 262_144, vh.HybridSettings("0.20.1"))
    assert old.num_blocks == new.num_blocks and old.blocks_per_request == new.blocks_per_request
    assert old.kv_cache_tokens == old.num_blocks // 4 * old.block_size
    assert new.kv_cache_tokens == int(new.num_blocks / new.blocks_per_request * 262_144)


def test_ssm_dtype_by_release_and_flag():
    """Gated DeltaNet's recurrence follows the SSM dtype from 0.17 (Qwen3.5's config says float32); before,
    both states are in the model's dtype. --mamba-ssm-cache-dtype overrides the config."""
    spec = load_preset("qwen3.5-27b")

    def state(version, flag="auto"):
        s = vh.HybridSettings(version, mamba_ssm_cache_dtype=flag)
        return vh.hybrid_pool(spec, 1, "bf16", "bf16", 16, s, None)

    conv, rec = 10_240 * 3, 48 * 128 * 128
    assert state("0.16.0").state_bytes == (conv + rec) * 2
    assert state("0.17.0").state_bytes == conv * 2 + rec * 4
    assert state("0.24.0", "bfloat16").state_bytes == (conv + rec) * 2


def test_nemotron_h_float16_ssm_and_all_mode_chunk_alignment():
    """Nemotron-H (0.13 and later): the SSM state in the config's mamba_ssm_cache_dtype, else float16.
    Prefix caching on: "all" mode (Nemotron-H supports it), the block a multiple of lcm(chunk 128, 16) and
    one state block per attention block of the request."""
    spec = load_preset("nemotron-h-56b")
    m = next(a for a in spec.attention if vh.is_state_layer(a))
    assert not m.ssm_dtype_stated and m.chunk_size == 128
    pool = vh.hybrid_pool(spec, 1, "bf16", "bf16", 16, vh.HybridSettings("0.19.1", True), m.chunk_size)
    conv = (m.d_inner + 2 * m.n_groups * m.state_size) * (m.conv_kernel - 1)
    assert pool.ssm_dtype == "fp16" and pool.state_bytes == conv * 2 + m.n_heads * m.head_dim * m.state_size * 2
    token = 2 * 8 * 128 * 2
    assert pool.mode == "all" and pool.block_size == 128 * ceil(ceil(pool.state_bytes / token) / 128)
    assert pool.state_blocks(8192) == ceil(8192 / pool.mamba_block_size)
    assert vh.hybrid_pool(spec, 1, "bf16", "bf16", 16, vh.HybridSettings("0.11.0"), 128).ssm_dtype == "bf16"


def test_modes_and_speculative_blocks():
    spec = load_preset("qwen3.5-27b")

    def blocks(version, **kw):
        return vh.hybrid_pool(spec, 1, "bf16", "bf16", 16, vh.HybridSettings(version, **kw), None).state_blocks(4096)

    assert blocks("0.24.0") == 1  # prefix caching off by default for hybrids until 0.26
    assert blocks("0.24.0", num_speculative_tokens=2) == 3
    assert blocks("0.24.0", enable_prefix_caching=True, num_speculative_tokens=2) == 4  # align
    assert blocks("0.28.0") == 2  # 0.26: prefix caching on by default, align for GDN
    assert blocks("0.33.0", enable_prefix_caching=False) == 1
    assert blocks("0.11.0", num_speculative_tokens=2) == 1  # 0.11: one page whatever the drafts


def test_checkpoint_block_in_0_29_depends_on_the_gdn_prefill_backend():
    spec = load_preset("qwen3.5-27b")
    s = vh.HybridSettings("0.33.0", gdn_prefill="flashinfer")
    fi = vh.hybrid_pool(spec, 1, "bf16", "bf16", 16, s, None)
    assert fi.checkpoint and fi.state_blocks(4096) == 3 and fi.block_size % 64 == 0
    tr = vh.hybrid_pool(spec, 1, "bf16", "bf16", 16, vh.HybridSettings("0.33.0", gdn_prefill="triton"), None)
    assert not tr.checkpoint and tr.state_blocks(4096) == 2
    with pytest.raises(vh.Unmodelled, match="FlashInfer"):
        vh.hybrid_pool(spec, 1, "bf16", "bf16", 16, vh.HybridSettings("0.33.0"), None)
    assert vh.gdn_prefill_for("H100 SXM") == "flashinfer" and vh.gdn_prefill_for("B200") is None


@pytest.mark.parametrize(
    "version,error",
    [
        ("0.11", "patch"),  # 0.11.0 and 0.11.2 differ
        ("0.11.1", "not a release"),
        ("0.9.2", "not a release"),
        ("latest", "must look like"),
    ],
)
def test_versions_refused(version, error):
    with pytest.raises(ValueError, match=error):
        vh.release(version)


def test_versions_accepted():
    assert vh.release("0.24").versions[-1] == "0.24.0"
    assert vh.release("v0.20.1").tokens_from_concurrency and not vh.release("0.20.0").tokens_from_concurrency
    assert vh.release("0.13.0").gib(int(5.3 * GIB)) == "5.30" and vh.release("0.14").gib(int(5.3 * GIB)) == "5.3"


def test_mtp_needs_mtp_layers_and_tp_must_divide_the_state():
    with pytest.raises(ValueError, match="MTP"):
        vh.hybrid_pool(
            load_preset("nemotron-h-56b"), 1, "bf16", "bf16", 16, vh.HybridSettings(num_speculative_tokens=1), 128
        )
    with pytest.raises(ValueError, match="does not divide"):
        vh.hybrid_pool(
            load_preset("qwen3.5-27b"), 3, "bf16", "bf16", 16, vh.HybridSettings(enable_prefix_caching=False), None
        )


# ----------------------------------------------------------------------------- complete logs without a URL


def complete_log(version: str) -> dict:
    """A complete public boot log kept in tests/data (its source named there: a public repository's file that
    the stored copy gives no addressable URL for, so it does not count among the logs with URLs)."""
    return next(e for e in LOGS_ALL if e["url"] is None and e["vllm_version"] == version)


def inputs_for(e: dict, name: str, **kw):
    from core.accounting.plan_inputs import PlanSettings, plan_inputs

    s = PlanSettings(
        e["concurrency_tokens"],
        kv_budget_gib=e["available_kv_gib"],
        n_gpus=e["tp"],
        tp=e["tp"],
        max_model_len=e["max_model_len"],
        max_num_seqs=e["max_num_seqs"],
        max_num_batched_tokens=e["max_num_batched_tokens"],
        vllm_version=e["vllm_version"],
        enable_prefix_caching=e["enable_prefix_caching"],
        num_speculative_tokens=e["num_speculative_tokens"],
        **kw,
    )
    spec = config(name)
    inputs = plan_inputs(s)
    return spec, inputs


def log_tail(e: dict) -> list[str]:
    """The logged lines about the pool, without their prefixes."""
    keys = ("Setting attention", "Padding mamba", "padding layers", "Available KV", "GPU KV cache size", "Maximum")
    return [x.split("] ", 1)[1] for x in e["lines"] if any(k in x for k in keys)]


def test_qwen36_mtp_two_drafts_vllm_0_20_0_complete_log():
    """vLLM 0.20.0 on a GB10: Qwen3.6-35B-A3B with MTP (2 speculative tokens), --kv-cache-dtype fp8_e4m3,
    --enable-prefix-caching (align mode). The drafter's attention layer makes 11, so the 30 GDN layers fill
    3 groups of 11 with 3 padding layers; the state (3 + 2 convolution rows) is exactly 2,128 attention
    tokens. 0.20.0 still logs whole blocks per group: 2,973 // 4 x 2,128 = 1,581,104 tokens."""
    e = complete_log("0.20.0")
    spec, inputs = inputs_for(e, "qwen--qwen3.6-35b-a3b", kv_dtype="fp8", gpu="RTX 5090")
    lines = inputs.log_lines(spec, pl.Parallelism(1), inputs.plan(spec, pl.Parallelism(1)))
    assert lines == log_tail(e)  # (vLLM prints the padding warning twice, before and after profiling)
    p = inputs.plan(spec, pl.Parallelism(1))
    assert p.num_blocks == 2973 and p.blocks_per_request == 124 + 3 * (2 + 2)


def test_qwen3_next_tp2_vllm_0_13_complete_log():
    """vLLM 0.13.0, 2 x L40S: Qwen3-Next at TP2 with --kv-cache-dtype fp8 and --enable-prefix-caching, which
    0.13 turns off for Gated DeltaNet models. 512 B an attention token per rank; the state (bf16 both: 0.13
    ignores the SSM dtype for GDN) is 4,096 x 3 + 16 x 128 x 128 elements = 548,864 B = 1,072 tokens. The log's
    17.58 GiB is rounded: 2,866 blocks of 12 pages (17.5801 to 17.585 GiB) print what was logged, 17.58 GiB
    exactly would give 2,865 blocks and 84.26x."""
    e = complete_log("0.13.0")
    spec = load_preset("qwen3-next-80b-a3b")
    from core.accounting.plan_inputs import PlanSettings, plan_inputs

    s = PlanSettings(
        32_768, kv_dtype="fp8", kv_budget_gib=17.5802, n_gpus=2, tp=2, max_model_len=32_768, max_num_seqs=8,
        max_num_batched_tokens=8192, vllm_version="0.13.0", enable_prefix_caching=True, gpu="L40S",
    )  # fmt: skip
    inputs = plan_inputs(s)
    p = inputs.plan(spec, pl.Parallelism(2))
    assert not p.hybrid.prefix_caching and p.block_size == 1072 and p.num_blocks == 2866
    assert inputs.log_lines(spec, pl.Parallelism(2), p) == log_tail(e)


def test_qwen35_27b_vllm_0_19_issue_40691_whole_blocks_per_group():
    """vllm#40691 (vLLM 0.19.0, H20): `vllm serve Qwen3.5-27B --max-model-len 32768 --max-num-seqs 16
    --max-num-batched-token 16384` logged 290,864 tokens and 33.04x, and asked why the tokens are not
    concurrency x max_model_len. Prefix caching is off for hybrids in 0.19 (one state block per group); bf16
    attention, 4 kv heads of 256: 4,096 B a token; the state 10,240 x 3 bf16 + 48 x 128 x 128 fp32 (the
    config's mamba_ssm_dtype) = 3,207,168 B -> blocks of 784 tokens, 4 groups of 16 layers. The two logged
    numbers allow one pool: 1,487 blocks (1,487 // 4 x 784 = 290,864; 1,487 / (42 + 3) = 33.04); the
    thread gives no 'Available KV cache memory' line, so the budget is that pool's bytes."""
    e = LOGS["40691"]
    spec = config("qwen--qwen3.5-27b")
    page = 784 * 4096
    p = hybrid_plan(spec, 1, "bf16", 1487 * 16 * page, 32_768, vh.HybridSettings("0.19.0"), gpu="H20")
    assert p.block_size == 784 and p.hybrid.mode == "none" and p.hybrid.state_bytes == 3_207_168
    assert p.num_blocks == 1487 and p.blocks_per_request == 42 + 3
    size, conc = logged(e)
    assert (f"{p.kv_cache_tokens:,} tokens", f"{p.max_concurrency:.2f}x") == (size, conc)
    near = {b for b in range(1480, 1495) if b // 4 * 784 == 290_864 and f"{b / 45:.2f}" == "33.04"}
    assert near == {1487}


def test_max_num_seqs_above_the_pool_stops_vllm_0_24_with_cuda_graphs():
    """vllm/config/compilation.py (0.24 and later): with full CUDA graphs every decoding sequence needs a
    state block, so max_num_seqs above the pool's blocks (null block included) stops vLLM, as a public report
    shows ("max_num_seqs (1024) exceeds available Mamba cache blocks (524)", NVIDIA-AI-Blueprints/
    retail-shopping-assistant#95). 0.23 does not check; --enforce-eager skips it; with MTP drafts the graphs
    depend on the attention backend, so the plan only warns."""
    spec = load_preset("qwen3.5-27b")

    def plan(version, eager=False, seqs=None, mtp=0):
        s = vh.HybridSettings(version, enable_prefix_caching=False, enforce_eager=eager, num_speculative_tokens=mtp)
        alloc = pl.Allocator(kv_budget_bytes=2 * GIB, max_model_len=8192, max_num_seqs=seqs, hybrid=s)
        return pl.plan(spec, pl.Hardware("H100 SXM", 80 * 10**9, 3.35e12, 1), 8192, allocator=alloc)

    p = plan("0.24.0")
    assert p.max_num_seqs == 1024 and p.num_blocks < 1024
    assert p.startup_error.startswith(
        f"vLLM refuses to start: max_num_seqs (1,024) exceeds available Mamba cache blocks ({p.num_blocks:,})"
    )
    assert not p.fits and p.max_running_requests == 0
    assert plan("0.23.0").startup_error is None
    assert plan("0.24.0", eager=True).startup_error is None
    assert plan("0.24.0", seqs=p.num_blocks).startup_error is None
    drafts = plan("0.24.0", mtp=1)
    assert drafts.startup_error is None and any("full CUDA graphs" in n for n in drafts.notes)


def test_qwen35_9b_tp2_block_and_padding_lines_vllm_37467():
    """vllm#37467 (a 0.19-era build: the lines come from models/config.py): 'Setting attention block size to
    528 tokens' and 'Padding mamba page size by 0.76%'. Qwen3.5-9B at TP2: 2 kv heads of 256 in bf16 per rank,
    2,048 B a token; the state 4,096 x 3 bf16 + 16 x 128 x 128 fp32 = 1,073,152 B; 16 x cdiv(1,073,152,
    16 x 2,048) = 528 tokens, padded (1,081,344 - 1,073,152) / 1,073,152 = 0.76%."""
    e = LOGS["37467"]
    pool = vh.hybrid_pool(config("qwen--qwen3.5-9b"), 2, "bf16", "bf16", 16, vh.HybridSettings("0.19.0"), None)
    assert pool.state_bytes == 1_073_152 and pool.attention_token_bytes == 2048
    assert pool.lines() == log_tail(e)


def test_all_mode_only_where_the_release_has_it():
    """--mamba-cache-mode arrived in 0.15; 0.32 dropped "all" (MambaCacheMode = align | none)."""
    spec = load_preset("nemotron-h-56b")
    for version in ("0.13.0", "0.32.0", "0.34.0"):
        with pytest.raises(ValueError, match="has no --mamba-cache-mode"):
            vh.hybrid_pool(spec, 1, "bf16", "bf16", 16, vh.HybridSettings(version, True, "all"), 128)
    assert vh.hybrid_pool(spec, 1, "bf16", "bf16", 16, vh.HybridSettings("0.31.0", True, "all"), 128).mode == "all"


def test_prefill_checkpoint_blocks_by_release_and_kind():
    """Align mode's state blocks: 2 up to 0.31; Mamba-2 keeps a prefill checkpoint block more from 0.32 (always),
    Gated DeltaNet from 0.33 when its prefill runs on FlashInfer."""
    nemotron, qwen = load_preset("nemotron-h-56b"), load_preset("qwen3.5-27b")

    def blocks(spec, version, gdn=None):
        s = vh.HybridSettings(version, True, gdn_prefill=gdn)
        return vh.hybrid_pool(spec, 1, "bf16", "bf16", 16, s, 128).state_blocks(8192)

    assert [blocks(nemotron, v) for v in ("0.31.0", "0.32.0", "0.33.0")] == [2, 3, 3]
    assert [blocks(qwen, v, "flashinfer") for v in ("0.31.0", "0.32.0", "0.33.0")] == [2, 2, 3]
    assert blocks(qwen, "0.33.0", "triton") == 2


# ----------------------------------------------------------------------------- Qwen3.6-27B with MTP on 3090s


def qwen36_27b_mtp3(issue: str, tp: int, budget: int):
    """club-3090's dual and quad RTX 3090 profiles: Qwen3.6-27B (Qwen3.5-27B's shapes, see the data file),
    fp8 cache (e4m3 or e5m2: one byte), prefix caching (align mode), MTP with 3 speculative tokens,
    --max-model-len 262144: blocks of 1,600 tokens, 17 attention layers (the drafter's included) per group."""
    e = LOGS[issue]
    assert e["num_speculative_tokens"] == 3 and e["enable_prefix_caching"] and e["tp"] == tp
    s = vh.HybridSettings(e["vllm_version"], True, num_speculative_tokens=3)
    return e, hybrid_plan(config("qwen--qwen3.5-27b"), tp, "fp8", budget, 262_144, s, gpu="RTX 4090")


def test_club3090_922_vllm_0_25_1_every_line():
    """#922: v0.25.1, TP2, fp8_e4m3, MTP 3: 'Available KV cache memory: 10.86 GiB', 612,157 tokens, 2.34x. A
    block is 17 pages of 1,600 x 1,024 B; 10.86 GiB holds 418 of them; a request takes 164 + 3 x (2 + 3)."""
    e, p = qwen36_27b_mtp3("922", 2, int(10.86 * GIB))
    assert p.num_blocks == 418 and p.blocks_per_request == 164 + 15 and p.block_size == 1600
    size, conc = logged(e)
    assert (f"{p.kv_cache_tokens:,} tokens", f"{p.max_concurrency:.2f}x") == (size, conc)
    assert f"Available KV cache memory: {p.allocator.release.gib(p.kv_budget_bytes_per_gpu)} GiB" in e["lines"][0]


def test_club3090_584_vllm_0_24_tp4_halves_the_page():
    """#584: v0.24.0, TP4, fp8_e5m2, MTP 3: 'Available KV cache memory: 15.72 GiB' and 1,774,963 tokens (its
    concurrency line is cut off in the thread). At TP4 one attention token is 512 B and the state page half as
    big, so the block stays 1,600 tokens and a block is 17 x 819,200 B: 1,212 blocks for a budget printed as
    15.72 GiB (15.7205 to 15.725)."""
    e, p = qwen36_27b_mtp3("584", 4, int(15.7205 * GIB))
    assert p.block_size == 1600 and p.num_blocks == 1212
    assert f"GPU KV cache size: {p.kv_cache_tokens:,} tokens" in next(x for x in e["lines"] if "KV cache size" in x)
    assert p.allocator.release.gib(p.kv_budget_bytes_per_gpu) == "15.72"


def test_club3090_91_vllm_0_20_1_tokens_and_concurrency_pin_the_pool():
    """#91: v0.20.1 (the first release logging concurrency x max_model_len), TP2, fp8_e5m2, MTP 3: 619,479
    tokens and 2.36x, no 'Available' line in the thread. 619,479 is int(423 / 179 x 262,144): only a pool of
    423 blocks prints it, and the planner reproduces both lines from that pool."""
    e = LOGS["91"]
    assert [b for b in range(400, 450) if int(b / 179 * 262_144) == 619_479] == [423]
    _, p = qwen36_27b_mtp3("91", 2, 423 * 17 * 1600 * 1024)
    size, conc = logged(e)
    assert (f"{p.kv_cache_tokens:,} tokens", f"{p.max_concurrency:.2f}x") == (size, conc)


def test_mtp_drafts_on_other_models_make_the_plan_an_estimate():
    """MTP drafts add the draft's attention layers to vLLM's pool; they are modelled for hybrids only, so a
    full-attention model planned with drafts is labelled an estimate instead of silently ignoring them."""
    alloc = pl.Allocator(kv_budget_bytes=10 * GIB, hybrid=vh.HybridSettings(num_speculative_tokens=2))
    p = pl.plan(load_preset("llama-3.1-8b"), pl.Hardware("H100 SXM", 1, 0.0, 1), 8192, allocator=alloc)
    assert not p.exact and "drafts are planned for Gated DeltaNet and Mamba-2 hybrids only" in p.notes[-1]


def test_qwen3_next_mtp_takes_vllms_default_of_one_draft_layer():
    """Qwen3-Next's config names no MTP count; vLLM's qwen3_next_mtp reads num_nextn_predict_layers with a
    default of 1, so MTP drafts add one attention layer (13 beside 36 Gated DeltaNet layers) and rows to the
    convolution state."""
    pool = vh.hybrid_pool(
        load_preset("qwen3-next-80b-a3b"),
        4,
        "bf16",
        "bf16",
        16,
        vh.HybridSettings("0.24.0", num_speculative_tokens=2),
        None,
    )
    assert pool.n_attention == 13 and pool.state_blocks(4096) == 3
    assert pool.state_bytes == (2048 * (3 + 2) + 8 * 128 * 128) * 2
