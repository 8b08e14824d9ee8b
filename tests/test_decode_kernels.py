"""The chunked decode kernels (core/decode_kernels.py) compute the reference layers' function and read
exactly the cache the accounting says, once, in order.

Proves, in float64 on CPU:
(a) a decode step (and a step of several tokens) through the preallocated buffer and the chunked
    kernels equals the reference layer (core/layers.py) on the same prefilled cache, for MHA, GQA, MQA
    and MLA absorbed, materialised and expanded, with chunks of 1, 3, 4 and more tokens than
    the context, one or several side by side (contexts that are not a multiple of the chunk), low-rank
    queries, no-rope and rope-only MLA; several steps in a row stay equal and write the same cache the
    reference returns;
(b) the cached tensors a step reads have exactly `core.accounting.cache_bytes_read` bytes (x batch), and a
    dispatch-level trace of the kernel shows it touches exactly those bytes of the buffer, nothing past
    the filled length, block by block in order (every read of a block, scores and values, happens before
    the next block's): one pass over the cache;
(c) the kernels' FLOPs equal `core.accounting.decode_core_flops` under FlopCounterMode, and `mla_attention`'s
    on several new tokens equal `core.accounting.mla_paths.mla_path_cost` for each path (its bytes are the
    buffer's);
(d) bad inputs (full buffer, sliding window, DSA, unknown mode, chunk 0) raise ValueError;
(e) on CUDA (skipped without a GPU) the kernels equal the CPU result.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from core.accounting import totals as acc
from core.accounting.mla_paths import PATHS, mla_path_cost
from core.layers.attention import DSAttention, GQAttention, MLAttention
from core.layers.decode_kernels import (
    KVBuffer,
    LatentBuffer,
    attend_kv,
    attend_latent,
    blocks,
    chunk_bounds,
    empty_buffer,
    gqa_step,
    mla_attention,
    mla_step,
)
from core.model.specs import DenseMLP, DSASpec, GQASpec, MLASpec, ModelSpec

F64 = torch.float64
D_MODEL = 16
GQA_SPECS = [GQASpec(4, 4, 8), GQASpec(4, 2, 8), GQASpec(4, 1, 8)]  # MHA, GQA, MQA
MLA_SPECS = [
    MLASpec(4, 12, 8, 4, 6),
    MLASpec(4, 12, 8, 4, 6, q_lora_rank=10),
    MLASpec(2, 6, 0, 4, 6),  # rope-only keys
    MLASpec(2, 6, 4, 0, 6),  # no rope
]
CASES = [(s, "absorbed") for s in GQA_SPECS] + [
    (s, m) for s in MLA_SPECS for m in ("absorbed", "materialised", "expanded")
]


def case_id(v):
    if isinstance(v, str):
        return v
    if isinstance(v, GQASpec):
        return v.design
    return f"MLA-nope{v.qk_nope_head_dim}-rope{v.qk_rope_head_dim}" + ("-qlora" if v.q_lora_rank else "")


def inputs(batch: int, tokens: int, seed: int, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, tokens, D_MODEL, generator=g, dtype=F64).to(dtype)


def one_layer(spec) -> ModelSpec:
    return ModelSpec("t", "t", D_MODEL, 10, (spec,), (DenseMLP(16),))


def layout(spec, mode: str) -> str:
    return "materialised" if isinstance(spec, MLASpec) and mode == "materialised" else "latent"


def reference(layer, x, cache=None, mode: str = "absorbed"):
    """The reference layer's forward; MLA "expanded" computes what "absorbed" does, on the same cache."""
    if isinstance(layer, GQAttention):
        return layer(x, cache)
    return layer(x, cache, mode="materialised" if mode == "materialised" else "absorbed")


def step(layer, x, buf, mode: str, chunk: int | None, parallel: int | None = None):
    if isinstance(layer, GQAttention):
        return gqa_step(layer, x, buf, chunk, parallel)
    return mla_step(layer, x, buf, mode, chunk, parallel)


def to_buffer(cache, capacity: int):
    return (KVBuffer if hasattr(cache, "k") else LatentBuffer).from_cache(cache, capacity)


@functools.cache
def build(spec, dtype=F64, device="cpu"):
    """Layers are stateless (they hold no cache), so one per spec serves every test."""
    cls = GQAttention if isinstance(spec, GQASpec) else MLAttention
    return cls(spec, D_MODEL, seed=3, device=device, dtype=dtype)


def assert_same_cache(buf, cache) -> None:
    for ours, ref in zip(buf.as_cache().tensors(), cache.tensors(), strict=True):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- (a) equality


@pytest.mark.parametrize("spec, mode", CASES, ids=case_id)
@pytest.mark.parametrize("chunk, parallel", [(1, 1), (4, 1), (64, 1), (3, 2)])
@pytest.mark.parametrize("batch, prefill, new", [(1, 9, 1), (2, 6, 1), (2, 10, 3)])
def test_step_equals_reference_layer(spec, mode, chunk, parallel, batch, prefill, new):
    layer = build(spec)
    with torch.no_grad():
        _, cache = reference(layer, inputs(batch, prefill, 0), mode=mode)
        x = inputs(batch, new, 1)
        ref_out, ref_cache = reference(layer, x, cache, mode)
        out, buf = step(layer, x, to_buffer(cache, prefill + new + 5), mode, chunk, parallel)
    assert buf.length == prefill + new
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
    assert_same_cache(buf, ref_cache)


@pytest.mark.parametrize("spec, mode", CASES, ids=case_id)
def test_many_steps_in_one_buffer_equal_token_by_token_reference(spec, mode):
    layer = build(spec)
    with torch.no_grad():
        _, cache = reference(layer, inputs(2, 5, 0), mode=mode)
        buf = to_buffer(cache, 12)
        for i in range(7):
            x = inputs(2, 1, 10 + i)
            ref_out, cache = reference(layer, x, cache, mode)
            out, buf = step(layer, x, buf, mode, chunk=4)
            torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
        assert_same_cache(buf, cache)


def test_the_default_chunk_covers_small_contexts_in_one_chunk_and_still_matches():
    spec = GQA_SPECS[1]
    layer = build(spec)
    with torch.no_grad():
        _, cache = layer(inputs(1, 40, 0))
        ref, _ = layer(inputs(1, 1, 1), cache)
        out, _ = gqa_step(layer, inputs(1, 1, 1), to_buffer(cache, 41))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


def test_chunks_and_blocks_tile_the_context_once_in_order():
    for n in (1, 7, 8, 9, 100):
        for chunk in (1, 3, 8, 200):
            bounds = chunk_bounds(n, chunk)
            covered = [t for s0, s1 in bounds for t in range(s0, s1)]
            assert covered == list(range(n))
            assert all(0 < s1 - s0 <= chunk for s0, s1 in bounds)
            for parallel in (1, 2, 5):
                bl = blocks(n, chunk, parallel)
                assert [(s0 + i * L, s0 + (i + 1) * L) for s0, P, L in bl for i in range(P)] == bounds
                assert all(1 <= P <= parallel for _, P, _ in bl)


# ----------------------------------------------------------------------------- (b) bytes read


class CacheReads(TorchDispatchMode):
    """Records which elements of the watched tensors' storage every non-view op touches."""

    def __init__(self, *watched: torch.Tensor):
        super().__init__()
        self.watched = {t.untyped_storage().data_ptr(): t for t in watched}
        self.touches: list[tuple[int, torch.Tensor]] = []  # (storage, flat element indices), in op order

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not func.is_view:
            for a in pytree.tree_leaves((args, kwargs)):
                if isinstance(a, torch.Tensor) and a.untyped_storage().data_ptr() in self.watched:
                    n = a.untyped_storage().nbytes() // a.element_size()
                    idx = torch.arange(n).as_strided(a.shape, a.stride(), a.storage_offset())
                    self.touches.append((a.untyped_storage().data_ptr(), idx.reshape(-1)))
        return func(*args, **kwargs)


def run_kernel(spec, mode: str, buf, chunk: int, batch: int, dtype, parallel: int = 1):
    """The attention core a decode step runs, on random queries (what decode_benchmark times)."""
    g = torch.Generator().manual_seed(5)
    if isinstance(buf, LatentBuffer):
        q_lat = torch.randn(batch, 1, spec.n_heads, spec.kv_lora_rank, generator=g).to(dtype)
        q_pe = torch.randn(batch, 1, spec.n_heads, spec.qk_rope_head_dim, generator=g).to(dtype)
        kv = buf.filled
        return lambda: attend_latent(q_lat, q_pe, kv, 0.5, chunk, parallel)
    width = buf.k.shape[-1]
    q = torch.randn(batch, spec.n_heads, 1, width, generator=g).to(dtype)
    k, v = buf.keys, buf.values
    return lambda: attend_kv(q, k, v, 0.5, chunk, parallel)


KERNEL_CASES = [(s, "absorbed") for s in GQA_SPECS] + [
    (s, m) for s in MLA_SPECS[:3] for m in ("absorbed", "materialised")
]


@pytest.mark.parametrize("spec, mode", KERNEL_CASES, ids=case_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("batch", [1, 3])
def test_buffer_views_hold_exactly_the_accounted_bytes(spec, mode, dtype, batch):
    name = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    for n in (1, 5, 13):
        buf = replace(empty_buffer(spec, batch, 20, mode, "cpu", dtype), length=n)
        got = sum(t.nbytes for t in buf.tensors())
        assert got == batch * acc.cache_bytes_read(one_layer(spec), n, name, layout(spec, mode))


@pytest.mark.parametrize("spec, mode", KERNEL_CASES, ids=case_id)
@pytest.mark.parametrize("chunk, parallel, n", [(4, 1, 13), (5, 1, 5), (3, 1, 1), (64, 1, 13), (2, 3, 13)])
def test_kernel_touches_the_accounted_bytes_once_in_block_order(spec, mode, chunk, parallel, n):
    batch, capacity = 2, 20
    buf = empty_buffer(spec, batch, capacity, mode, "cpu", torch.float32)
    bases = (buf.k, buf.v) if isinstance(buf, KVBuffer) else (buf.kv,)
    for t in bases:
        t.normal_(generator=torch.Generator().manual_seed(0))
    buf = replace(buf, length=n)
    kernel = run_kernel(spec, mode, buf, chunk, batch, torch.float32, parallel)
    with CacheReads(*bases) as reads:
        kernel()
    spans = [(s0, s0 + P * L) for s0, P, L in blocks(n, chunk, parallel)]
    touched = {t.untyped_storage().data_ptr(): torch.zeros(t.numel(), dtype=torch.bool) for t in bases}
    last = 0
    for ptr, idx in reads.touches:
        tokens = (idx // reads.watched[ptr].shape[-1]) % capacity  # token of every touched element (axis -2)
        lo, hi = int(tokens.min()), int(tokens.max())
        assert hi < n, "read past the filled length"
        i = next(i for i, (s0, s1) in enumerate(spans) if s0 <= lo < s1)
        assert hi < spans[i][1], "one op read across two blocks"
        assert i >= last, "a block was read again after a later one"
        last = i
        touched[ptr][idx] = True
    unique_bytes = sum(int(m.sum()) * 4 for m in touched.values())
    assert unique_bytes == batch * acc.cache_bytes_read(one_layer(spec), n, "fp32", layout(spec, mode))
    assert last == len(spans) - 1


# ----------------------------------------------------------------------------- (c) FLOPs


@pytest.mark.parametrize("spec, mode", KERNEL_CASES, ids=case_id)
@pytest.mark.parametrize("chunk, parallel", [(3, 1), (64, 1), (2, 4)])
def test_kernel_flops_equal_decode_core_flops(spec, mode, chunk, parallel):
    batch, n = 2, 11
    buf = empty_buffer(spec, batch, n, mode, "cpu", F64)
    for t in (buf.k, buf.v) if isinstance(buf, KVBuffer) else (buf.kv,):
        t.normal_(generator=torch.Generator().manual_seed(0))
    buf = replace(buf, length=n)
    kernel = run_kernel(spec, mode, buf, chunk, batch, F64, parallel)
    with FlopCounterMode(display=False) as counter:
        kernel()
    assert counter.get_total_flops() == batch * acc.decode_core_flops(spec, n, mode)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("spec", [MLA_SPECS[0], MLA_SPECS[2], MLA_SPECS[3]], ids=case_id)
@pytest.mark.parametrize("context, batch, query_len", [(9, 1, 1), (9, 2, 3), (5, 1, 5)])
def test_mla_path_cost_equals_flop_counter_and_buffer_bytes(path, spec, context, batch, query_len):
    g = torch.Generator().manual_seed(0)
    H, C, R, Dn, V = spec.n_heads, spec.kv_lora_rank, spec.qk_rope_head_dim, spec.qk_nope_head_dim, spec.v_head_dim
    f64 = dict(generator=g, dtype=torch.float64)
    wkv_b = torch.randn(H * (Dn + V), C, **f64)
    new = (
        torch.randn(batch, query_len, H, Dn, **f64),
        torch.randn(batch, query_len, H, R, **f64),
        torch.randn(batch, query_len, C, **f64),
        torch.randn(batch, query_len, R, **f64),
    )
    buf = empty_buffer(
        spec, batch, context, "materialised" if path == "materialised" else "absorbed", "cpu", torch.float64
    )
    for t in buf.__dict__.values():
        if isinstance(t, torch.Tensor):
            t.normal_(generator=g)
    buf = replace(buf, length=context - query_len)
    with FlopCounterMode(display=False) as counter:
        out, full = mla_attention(spec, wkv_b, *new, buf, path, chunk=4)
    cost = mla_path_cost(spec, context, batch, query_len, path, "fp32")
    assert counter.get_total_flops() == cost.flops
    assert out.shape == (batch, query_len, H, V)
    assert sum(t.nbytes for t in full.tensors()) == 2 * cost.bytes_read  # float64 buffer, fp32 accounting


# ----------------------------------------------------------------------------- (d) errors


def test_bad_inputs_raise_value_errors():
    spec = GQA_SPECS[1]
    layer = build(spec)
    buf = empty_buffer(spec, 1, 3, device="cpu", dtype=F64)
    with torch.no_grad():
        _, buf = gqa_step(layer, inputs(1, 3, 0), buf)
        with pytest.raises(ValueError, match="holds 3 tokens"):
            gqa_step(layer, inputs(1, 1, 1), buf)
    with pytest.raises(ValueError, match="sliding-window"):
        empty_buffer(GQASpec(4, 2, 8, sliding_window=4), 1, 8)
    dsa = DSASpec(2, 6, 4, 2, 4, index_n_heads=2, index_head_dim=4, index_topk=2)
    with pytest.raises(ValueError, match="DSASpec"):
        empty_buffer(dsa, 1, 8)
    with pytest.raises(ValueError, match="DSA"):
        mla_step(DSAttention(dsa, D_MODEL, dtype=F64), inputs(1, 1, 0), empty_buffer(MLA_SPECS[0], 1, 4, dtype=F64))
    with pytest.raises(ValueError, match="unknown MLA mode"):
        empty_buffer(MLA_SPECS[0], 1, 8, mode="fast")
    with pytest.raises(ValueError, match="chunk"):
        chunk_bounds(8, 0)
    with pytest.raises(ValueError, match="parallel"):
        blocks(8, 2, 0)


# ----------------------------------------------------------------------------- (e) CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("spec, mode", CASES, ids=case_id)
def test_cuda_step_equals_cpu_step(spec, mode):
    results = []
    for device in ("cpu", "cuda"):
        layer = build(spec, torch.float32, device)
        with torch.no_grad():
            _, cache = reference(layer, inputs(2, 9, 0).float().to(device), mode=mode)
            out, _ = step(layer, inputs(2, 2, 1).float().to(device), to_buffer(cache, 16), mode, chunk=4)
        results.append(out.cpu())
    torch.testing.assert_close(results[1], results[0], rtol=1e-4, atol=1e-5)
    assert math.isfinite(results[1].abs().sum().item())
