"""The planner sizes vLLM's KV-cache pool per GPU under TP, PP and DP, and answers what fits, exactly.

Proves, against vLLM's own logs and tests (docs/facts.md section 10):
- Llama-3.1-8B: 3.8125 GiB for the cache -> 1,952 blocks -> 1.56x for 20,000-token requests;
- DeepSeek-V2-Lite at TP2 x PP2 (vLLM PR #20665): 807,792 tokens, 788.86x for 1,024 tokens, because every
  TP rank stores the whole 576-wide latent of its stage's 14 layers;
- the sliding-window admission rule (387 blocks -> 3.0 requests of 16K at window 1,024, 1,024 batched
  tokens), the full and hybrid cases of the same vLLM test, and the null block (64 blocks hold 1,008
  tokens; 32 blocks refuse a 512-token request, 33 admit it);
- DeepSeek-V3 on 8 x H200 under TP8 and under data-parallel attention, computed by hand here from the
  parameter breakdown;
- layers split across pipeline stages as vLLM's get_pp_indices splits them; bad layouts raise ValueError;
- each design says which vLLM cache-spec kind its layers get (full, sliding w, chunked c, or none planned
  block by block), and a layer spec no design registered raises TypeError.
"""

from dataclasses import dataclass, replace
from math import ceil

import pytest

from core.accounting import planner as pl
from core.accounting import totals as acc
from core.accounting.base import design_of
from core.model.dtypes import weight_dtype
from core.model.gpus import GPUS
from core.model.presets import load_preset, preset_names
from core.model.specs import DenseMLP, GQASpec, ModelSpec, NoMixer

GIB = 2**30
H200 = GPUS["H200"]


def h200s(n: int = 8, reserved: int = 0) -> pl.Hardware:
    return pl.Hardware("H200", H200.memory_bytes, 4.8e12, n, 0.9, reserved)


def budget(b: int, **kw) -> pl.Allocator:
    return pl.Allocator(kv_budget_bytes=b, **kw)


def toy(layers: list[GQASpec]) -> ModelSpec:
    """vLLM's test model: 32 kv heads of 128, fp16 (the cache bytes are all that matter here)."""
    return ModelSpec("toy", "test", 4096, 1000, tuple(layers), (DenseMLP(11008),) * len(layers))


# ----------------------------------------------------------------------------- vLLM's logs


def test_vllm_log_line_for_llama_8b():
    spec = load_preset("llama-3.1-8b")
    p = pl.plan(spec, h200s(1), 20_000, allocator=budget(int(3.8125 * GIB)))
    assert p.exact and p.num_blocks == 1952
    assert f"{p.max_concurrency:.2f}" == "1.56"
    assert p.kv_cache_tokens == 31_232  # "GPU KV cache size: 31,232 tokens"


def test_vllm_pr_20665_deepseek_v2_lite_tp2_pp2():
    """12.13 GiB per GPU (the log rounds; the pool is 50,487 blocks for any budget in [12.13334, 12.13358)
    GiB) -> 807,792 tokens, 788.86x for 1,024-token requests."""
    spec = load_preset("deepseek-v2-lite")
    par = pl.Parallelism(tp=2, pp=2)
    p = pl.plan(spec, h200s(4), 1024, parallel=par, allocator=budget(int(12.1334 * GIB)))
    assert [s.layers for s in p.stages] == [(0, 14), (14, 27)]
    assert p.stages[0].request_bytes == 14 * 576 * 2 * 1024  # whole latent + rope key on every TP rank
    assert p.num_blocks == 50_487 and p.stages[0].num_blocks == 50_487 < p.stages[1].num_blocks
    assert p.kv_cache_tokens == 807_792
    assert f"{p.max_concurrency:.2f}" == "788.86"
    assert p.replication == 2  # each request's cache is stored on both TP ranks


def test_vllm_sliding_window_full_and_hybrid_concurrency():
    """vLLM's test_get_max_concurrency_for_kv_cache_config: max_model_len 16,384, 1,024 batched tokens,
    synchronous scheduling, window 1,024, 32 kv heads of 128 in fp16."""
    full, sliding = GQASpec(32, 32, 128), GQASpec(32, 32, 128, sliding_window=1024)
    alloc = {"max_num_batched_tokens": 1024, "async_scheduling": False}
    page = 16 * 32 * 256 * 2  # one block of one layer

    def concurrency(layers, blocks):
        spec = toy(layers)  # every kind has 32 layers: one group of 32 per kind, a block is 32 pages
        p = pl.plan(spec, h200s(1), 16_384, kv_dtype="fp16", allocator=budget(blocks * 32 * page, **alloc))
        assert p.exact and p.num_blocks == blocks
        return p.max_concurrency

    assert concurrency([full] * 32, int(1024 * 1.5)) == 1.5
    assert concurrency([sliding] * 32, 129 * 3) == 3.0
    assert concurrency([full] * 32 + [sliding] * 32, (1024 + 129) * 3) == 3.0


def test_async_scheduling_doubles_the_sliding_allowance():
    """vLLM 0.33 schedules one batch ahead by default: (PP + 1) x max_num_batched_tokens in flight."""
    groups = pl.kv_groups(toy([GQASpec(32, 32, 128, sliding_window=1024)] * 32), "fp16", "latent")
    assert pl.blocks_per_request(groups, 16_384, 16, pl.Allocator(max_num_batched_tokens=1024).in_flight_tokens(1)) == (
        ceil((1023 + 2048) / 16) + 1
    )
    assert pl.Allocator(async_scheduling=False).in_flight_tokens(2) == 2 * 8192


def test_null_block_is_kept_out_of_the_pool():
    spec = toy([GQASpec(32, 32, 128)])
    page = 16 * 32 * 256 * 2
    p = pl.plan(spec, h200s(1), 1024, kv_dtype="fp16", allocator=budget(64 * page))
    assert p.num_blocks == 64 and p.max_context == 1008  # 63 usable blocks x 16
    assert p.max_concurrency == 1.0 and not p.fits  # vLLM's log counts the null block; admission does not
    assert not pl.plan(spec, h200s(1), 512, kv_dtype="fp16", allocator=budget(32 * page)).fits
    assert pl.plan(spec, h200s(1), 512, kv_dtype="fp16", allocator=budget(33 * page)).fits


def test_worked_examples_of_the_hybrid_grouping():
    """vLLM 0.33's grouping, worked by hand from its code for 100 GiB per GPU at 131,072 tokens with the
    default 8,192 batched tokens and async scheduling (16,384 in flight): gpt-oss-120b is 2 groups of 18
    layers; Gemma-3-27B is one full group of 10 and six sliding groups (52 layers padded to 60)."""
    gpt = pl.plan(load_preset("gpt-oss-120b"), h200s(1), 131_072, allocator=budget(100 * GIB))
    assert (gpt.num_blocks, gpt.kv_cache_tokens, f"{gpt.max_concurrency:.2f}") == (182_044, 2_586_544, "19.73")
    gemma = pl.plan(load_preset("gemma-3-27b"), h200s(1), 131_072, allocator=budget(100 * GIB))
    assert (gemma.num_blocks, gemma.kv_cache_tokens, f"{gemma.max_concurrency:.2f}") == (81_920, 729_146, "5.56")
    g = pl.kv_groups(load_preset("gemma-3-27b"), "bf16", "latent")
    assert g.group_size == 10 and g.n_groups == 7
    assert sorted(len(m) for _, m in g.members) == [8, 8, 9, 9, 9, 9, 10]


# ----------------------------------------------------------------------------- parallelism


def test_deepseek_v3_on_eight_h200_by_hand():
    """fp8 weights as released (bf16 embedding and lm_head), bf16 cache, 90%, 128K-token requests.
    TP8: everything split 8 ways except the replicated MLA down-projections, their norms, the routers and
    the layer norms; every GPU caches the whole latent. DP-attention: attention, dense MLPs, shared
    experts, routers, norms, embedding and lm_head whole on every GPU; routed experts 256 / 8 per GPU."""
    spec = load_preset("deepseek-v3")
    a, h, n = spec.attention[0], spec.hidden_size, spec.n_layers
    pc = acc.param_count(spec)
    fp8 = weight_dtype("fp8").bits_per_element
    replicated_attn = n * (
        h * a.q_lora_rank + a.q_lora_rank + h * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank
    )
    routers = sum(m.n_routed * h + m.n_routed for m in spec.mlp if hasattr(m, "n_routed"))
    norms = 2 * h * n + h
    dense_and_shared = pc.mlp - pc.routed_experts - routers
    split_attn = pc.attention - replicated_attn
    tp8 = ceil((2 * ceil(pc.embedding / 8) * 16 + (ceil(pc.routed_experts / 8) + split_attn // 8 + replicated_attn
                + dense_and_shared // 8 + routers + norms) * fp8) / 8)  # fmt: skip
    dp = ceil(
        (2 * pc.embedding * 16 + (pc.routed_experts / 8 + pc.attention + dense_and_shared + routers + norms) * fp8) / 8
    )
    usable = int(H200.memory_bytes * 0.9)
    per_token = 61 * (512 + 64) * 2
    for par, weights, groups in (
        (pl.Parallelism(tp=8), tp8, 1),
        (pl.Parallelism(tp=1, dp=8, dp_attention=True), dp, 8),
    ):
        p = pl.plan(spec, h200s(8), 131_072, kv_dtype="bf16", weight_dtype="native", parallel=par)
        assert abs(p.weights_bytes_per_gpu - weights) <= 64, par  # per-part rounding only
        blocks = (usable - p.weights_bytes_per_gpu) // (16 * per_token)
        assert p.num_blocks == blocks
        assert p.max_concurrency == blocks / (131_072 // 16) * groups
    tp = pl.plan(spec, h200s(8), 131_072, kv_dtype="bf16", weight_dtype="native", parallel=pl.Parallelism(tp=8))
    dpa = pl.plan(
        spec, h200s(8), 131_072, kv_dtype="bf16", weight_dtype="native", parallel=pl.Parallelism(1, 1, 8, True)
    )
    assert f"{tp.max_concurrency:.2f}" == "4.55" and f"{dpa.max_concurrency:.2f}" == "22.73"
    assert f"{tp.pooled_concurrency:.2f}" == "37.15"  # what pooling 8 GPUs' memory (the old answer) said
    assert tp.replication == 8 and dpa.replication == 1


def test_gqa_kv_heads_split_then_replicate():
    """Llama-3.1-70B has 8 kv heads: TP8 stores each once (as pooled memory would); Qwen3-235B has 4, so
    TP8 stores each twice and holds half the requests TP4 x PP2 holds."""
    llama = load_preset("llama-3.1-70b")
    p = pl.plan(llama, h200s(8), 131_072, weight_dtype="bf16", parallel=pl.Parallelism(tp=8))
    assert p.replication == 1 and p.stages[0].request_bytes * 8 == acc.kv_cache_bytes(llama, 131_072)
    qwen = load_preset("qwen3-235b-a22b")
    tp8 = pl.plan(qwen, h200s(8), 131_072, parallel=pl.Parallelism(tp=8))
    tp4pp2 = pl.plan(qwen, h200s(8), 131_072, parallel=pl.Parallelism(tp=4, pp=2))
    assert tp8.replication == 2 and tp4pp2.replication == 1
    assert tp4pp2.max_concurrency == pytest.approx(2 * tp8.max_concurrency, rel=0.01)


@pytest.mark.parametrize("name", preset_names())
def test_one_gpu_holds_every_weight_once(name):
    """With no parallelism the per-GPU weights are exactly the model's weights (same breakdown)."""
    spec = load_preset(name)
    for w in ("bf16", "native"):
        assert pl.stage_weights(spec, 0, spec.n_layers, pl.Parallelism(), w).total == pytest.approx(
            acc.weights_bytes(spec, w), abs=8
        )


@pytest.mark.parametrize("name", preset_names())
def test_tp_ranks_together_hold_at_least_the_model(name):
    spec = load_preset(name)
    for tp in (2, 4, 8):
        try:
            rank = pl.shard(spec, 0, spec.n_layers, tp)
        except ValueError as e:
            assert "does not divide" in str(e) or "not a multiple" in str(e)
            continue
        assert tp * acc.kv_cache_bytes(rank, 4096) >= acc.kv_cache_bytes(spec, 4096)
        assert tp * acc.state_bytes(rank) >= acc.state_bytes(spec)
        w = pl.stage_weights(spec, 0, spec.n_layers, pl.Parallelism(tp=tp), "bf16").total
        assert tp * w >= acc.weights_bytes(spec, "bf16") - 8 * tp


@pytest.mark.parametrize(
    ("layers", "pp", "split"),
    [(27, 2, [14, 13]), (61, 2, [31, 30]), (80, 2, [40, 40]), (94, 4, [23, 24, 24, 23]),
     (61, 4, [15, 15, 16, 15]), (61, 8, [7, 7, 8, 8, 8, 8, 8, 7])],
)  # fmt: skip
def test_pipeline_stages_split_layers_as_vllm(layers, pp, split):
    stages = pl.pp_split(layers, pp)
    assert [b - a for a, b in stages] == split and stages[0][0] == 0 and stages[-1][1] == layers


def test_pipeline_stage_with_more_layers_decides_and_embedding_and_head_sit_at_the_ends():
    spec = load_preset("deepseek-v2-lite")
    w0 = pl.stage_weights(spec, 0, 14, pl.Parallelism(tp=2, pp=2), "bf16")
    w1 = pl.stage_weights(spec, 14, 27, pl.Parallelism(tp=2, pp=2), "bf16")
    table = ceil(spec.vocab_size * spec.hidden_size / 2) * 2
    assert w0.embedding == table and w1.embedding == 0 and w1.rest > w0.rest - table


def test_mamba_groups_extend_to_the_tp_size():
    """vLLM's extra_groups_for_head_shards: 8 groups over TP16 become 16, one per rank."""
    spec = load_preset("nemotron-h-56b")
    m = next(a for a in pl.shard(spec, 0, spec.n_layers, 16).attention if a.kind == "Mamba-2")
    assert m.n_groups == 1 and m.n_heads == 256 // 16


def test_bad_layouts_raise_one_sentence():
    llama = load_preset("llama-3.1-70b")
    with pytest.raises(ValueError, match="does not divide 6 GPU"):
        pl.Parallelism.for_gpus(6, tp=4)
    with pytest.raises(ValueError, match="larger than the 80 layers"):
        pl.plan(llama, h200s(100), 1024, parallel=pl.Parallelism(tp=1, pp=100))
    with pytest.raises(ValueError, match="does not divide the query heads"):
        pl.plan(llama, h200s(3), 1024, parallel=pl.Parallelism(tp=3))
    with pytest.raises(ValueError, match="must be equal"):
        pl.plan(llama, h200s(8), 1024, parallel=pl.Parallelism(tp=4))
    with pytest.raises(ValueError, match="block size"):
        pl.Allocator(block_size=0)


def test_tp_beyond_kv_heads_must_be_a_multiple():
    spec = toy([GQASpec(48, 8, 128)])
    with pytest.raises(ValueError, match="not a multiple of the 8 key/value heads"):
        pl.shard(spec, 0, 1, 12)
    assert pl.shard(spec, 0, 1, 16).attention[0].n_kv_heads == 1  # replicated: one per rank
    assert pl.shard(spec, 0, 1, 4).attention[0].n_kv_heads == 2


# ----------------------------------------------------------------------------- estimates and bytes


def test_one_kind_of_layer_is_one_group_whatever_the_pages():
    """vLLM's UniformTypeKVCacheSpecs: when every layer is full attention, all go in one group and a block
    holds a page of each, whatever its size. DeepSeek-V3.2 with fp8_ds_mla: a 656-byte latent entry and a
    132-byte indexer key per token per layer; Nemotron-Super: layers with different kv heads (and none)."""
    v32 = load_preset("deepseek-v3.2")
    p = pl.plan(v32, h200s(1), 131_072, layout="fp8_ds_mla", allocator=budget(40 * GIB, block_size=64))
    assert p.exact and p.num_blocks == 40 * GIB // (64 * 61 * (656 + 132))
    assert p.max_concurrency == p.num_blocks / (131_072 // 64) and not p.notes
    short = budget(GIB, max_model_len=4096)  # 1 GiB holds no request of the derived 163,840 tokens
    assert pl.plan(v32, h200s(1), 4096, allocator=short).notes[0].startswith("vLLM uses its MLA kernel")
    decilm = load_preset("llama-3.3-nemotron-super-49b")
    q = pl.plan(decilm, h200s(1), 131_072, allocator=budget(40 * GIB))
    assert q.exact and q.num_blocks == 40 * GIB // (16 * acc.kv_bytes_per_token(decilm))


@pytest.mark.parametrize(
    "name,gpu",
    [
        ("deepseek-v4-flash", "H200"),
        ("kimi-linear-48b-a3b", "H200"),  # MLA beside Kimi Delta Attention
        ("qwen3-next-80b-a3b", "B200"),  # vLLM 0.33's align-mode GDN checkpoints depend on the prefill backend
        ("gemma-4-26b-a4b", "H200"),
    ],
)
def test_models_vllm_allocates_otherwise_are_labelled_estimates(name, gpu):
    spec = load_preset(name)
    hw = pl.Hardware(gpu, H200.memory_bytes, 4.8e12, 8, 0.9, 0)
    p = pl.plan(spec, hw, 131_072, weight_dtype="native", parallel=pl.Parallelism(tp=8))
    assert not p.exact and p.num_blocks is None and p.kv_cache_tokens is None
    assert p.notes and p.notes[0].startswith("Estimate:")
    n = p.max_context
    assert n and pl.paged_request_bytes(pl.shard(spec, 0, spec.n_layers, 8), n) <= p.kv_budget_bytes_per_gpu


@pytest.mark.parametrize("name", ["llama-3.1-8b", "deepseek-v3", "gemma-3-27b", "gpt-oss-120b", "qwen3.5-27b"])
@pytest.mark.parametrize("batch", [1, 7])
def test_max_context_is_the_largest_that_fits(name, batch):
    spec = load_preset(name)
    alloc = budget(40 * GIB, max_num_seqs=16)  # a hybrid's pool holds fewer blocks than the default 1,024 seqs
    p = pl.plan(spec, h200s(1), 4096, batch, allocator=alloc)
    n = p.max_context
    assert n is not None and n > 0

    def fits(tokens):
        return pl.plan(spec, h200s(1), tokens, batch, allocator=alloc).fits

    assert fits(n) and not fits(n + 1)


def test_bounded_cache_has_no_context_limit_and_tiny_budget_none_fits():
    """Mistral-7B's layers keep at most 4,096 tokens, so the pool holds a request of any length; vLLM still
    serves none longer than max_model_len (its config's 8,192, or what is set)."""
    mistral = load_preset("mistral-7b")
    p = pl.plan(mistral, h200s(1), 4096, allocator=budget(10 * GIB))
    assert p.pool_max_context is None and p.max_context == p.max_model_len == 8192
    unbounded = pl.plan(mistral, h200s(1), 4096, allocator=budget(10 * GIB, max_model_len=1 << 30))
    assert unbounded.startup_error and "greater than the derived max_model_len" in unbounded.startup_error
    tiny = pl.plan(mistral, h200s(1), 4096, allocator=budget(1000))
    assert tiny.max_context == 0 and not tiny.fits and tiny.max_concurrency == 0


def test_paging_rounds_up_to_whole_blocks():
    spec = load_preset("llama-3.1-8b")
    assert pl.paged_request_bytes(spec, 1) == pl.paged_request_bytes(spec, 16) == 16 * 131_072
    assert pl.paged_request_bytes(spec, 17) == 32 * 131_072
    assert pl.paged_request_bytes(spec, 17, block=64) == 64 * 131_072


def test_weights_that_do_not_fit_leave_no_budget():
    v4 = load_preset("deepseek-v4-pro")
    p = pl.plan(v4, h200s(1), 4096)
    assert p.kv_budget_bytes_per_gpu < 0 and not p.fits and p.max_concurrency == 0 and p.max_context == 0


def test_budget_is_memory_times_utilization_minus_weights_minus_reserved_per_gpu():
    spec = load_preset("llama-3.1-70b")
    p = pl.plan(spec, h200s(8, reserved=2 * GIB), 131_072, weight_dtype="bf16")
    assert p.kv_budget_bytes_per_gpu == int(141e9 * 0.9) - p.weights_bytes_per_gpu - 2 * GIB


def test_auto_cache_dtype_is_the_models():
    assert pl.auto_kv_dtype(load_preset("llama-3.1-8b")) == "bf16"
    assert pl.auto_kv_dtype(load_preset("gpt2")) == "bf16"  # float32 checkpoints are downcast, as vLLM does
    assert pl.auto_kv_dtype(replace(load_preset("gpt2"), native_weights=("fp16",) * 3)) == "fp16"


def test_bad_hardware_and_requests_raise_value_error():
    with pytest.raises(ValueError, match="utilization"):
        pl.Hardware("x", 1, 1, 1, 0.0)
    with pytest.raises(ValueError, match="positive"):
        pl.Hardware("x", 1, 1, 0, 0.9)
    with pytest.raises(ValueError, match="at least 1"):
        pl.plan(load_preset("gpt2"), h200s(1), 0)


def test_decode_step_reads_weights_once_and_each_cache():
    """Dense model: the lm_head and every layer's weights (not the embedding table, a lookup) plus the
    cache of each request; MoE: routed experts only up to the share the batch can reach."""
    llama = load_preset("llama-3.1-8b")
    embed, head, routed, rest = acc.weights_bytes_parts(llama, "bf16")
    one = pl.decode_step_bytes(llama, 4096, 1, "bf16", "bf16", "latent")
    assert one == head + rest + acc.cache_bytes_read(llama, 4096)
    v3 = load_preset("deepseek-v3")
    _, head, routed, rest = acc.weights_bytes_parts(v3, "native")
    b1 = pl.decode_step_bytes(v3, 1, 1, "bf16", "native", "latent") - acc.cache_bytes_read(v3, 1)
    assert b1 == head + rest + int(routed * 8 / 256)
    p = pl.plan(llama, h200s(1), 4096, 2, weight_dtype="bf16")
    assert p.step_seconds == pytest.approx(pl.decode_step_bytes(llama, 4096, 2, "bf16", "bf16", "latent") / 4.8e12)


def test_auto_tp_is_the_widest_that_splits_the_model():
    """Without a TP given, the planner takes the widest TP that splits every layer and divides a stage's
    GPUs, and keeps the rest as replicas: 12 heads (GPT-2) on 8 GPUs is TP4 x DP2."""
    assert pl.Parallelism.auto(load_preset("gpt2"), 8) == pl.Parallelism(4, 1, 2)
    assert pl.Parallelism.auto(load_preset("llama-3.1-70b"), 16, pp=2) == pl.Parallelism(8, 2, 1)
    assert pl.Parallelism.auto(load_preset("deepseek-v3"), 8, dp_attention=True) == pl.Parallelism(1, 1, 8, True)
    with pytest.raises(ValueError, match="PP 3 does not divide 8"):
        pl.Parallelism.auto(load_preset("gpt2"), 8, pp=3)
    assert pl.plan(load_preset("gpt2"), h200s(8), 1024).parallel == pl.Parallelism(4, 1, 2)


# ----------------------------------------------------------------------------- each design's vLLM kind


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("llama-3.1-8b", {("full",)}),
        ("mistral-7b", {("sliding", 4096)}),
        ("gemma-3-27b", {("sliding", 1024), ("full",)}),
        ("llama-4-scout", {("chunked", 8192), ("full",)}),
        ("deepseek-v3", {("full",)}),  # MLA
        ("deepseek-v3.2", {("full",)}),  # DSA: latent and indexer key, both full-attention pages
        ("deepseek-v4-pro", {None}),  # compressed layers: vLLM's own specs
        ("qwen3-next-80b-a3b", {None, ("full",)}),  # Gated DeltaNet state: a MambaSpec
        ("nemotron-h-56b", {None, ("full",)}),  # Mamba-2 and MLP-only layers
    ],
)
def test_each_design_names_its_vllm_cache_kind(name, kinds):
    assert {design_of(a).vllm_kind(a) for a in load_preset(name).attention} == kinds


def test_no_mixer_layers_are_left_out_of_the_groups():
    spec = toy([GQASpec(32, 32, 128), NoMixer(), GQASpec(32, 32, 128, sliding_window=64)])
    assert design_of(NoMixer()).vllm_kind(NoMixer()) is None
    groups = pl.kv_groups(spec, "bf16", "latent")
    assert {kind: layers for kind, layers in groups.members} == {("full",): (0,), ("sliding", 64): (2,)}


@dataclass(frozen=True)
class Unknown:
    """A layer spec no design registered."""

    kind = "unknown"


def test_an_unknown_layer_spec_raises_type_error():
    spec = toy([GQASpec(32, 32, 128), Unknown()])
    for call in (
        lambda: pl.kv_groups(spec, "bf16", "latent"),
        lambda: pl.why_estimate(spec, "bf16", "latent"),
        lambda: pl.plan(spec, h200s(1), 4096),
    ):
        with pytest.raises(TypeError, match="Unknown"):
            call()
