"""Memory planning: weights + KV cache + headroom on a set of GPUs, and what fits.

Paging follows vLLM: the cache is allocated in blocks of 16 token positions. For a model whose every
layer caches a fixed number of bytes per token (full-attention GQA/MLA/DSA), vLLM computes
    num_blocks = floor(kv_budget / (16 x bytes_per_token_all_layers))
    maximum concurrency = num_blocks / ceil(N / 16)
(vllm/v1/core/kv_cache_utils.py, the "Maximum concurrency for N tokens per request" log line); this
module reproduces that exactly. For hybrid models (sliding windows, V4 compression) the cache of a
request is not proportional to its tokens; there a request's paged cache is the cache at N rounded up
to a whole block, and concurrency = kv_budget / that (vLLM's hybrid allocator differs in details).

kv_budget = n_gpus x memory x utilization - weights - reserved, with `reserved` what the engine needs
besides weights and cache (activations, CUDA graphs, NCCL buffers): vLLM measures it by profiling; here
the user states it.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from core.accounting import totals as acc
from core.accounting.base import design_of
from core.model.specs import ModelSpec, MoEMLP

BLOCK_TOKENS = 16
MAX_TOKENS = 1 << 40  # the largest context the planner searches


@dataclass(frozen=True)
class Hardware:
    name: str
    memory_bytes: int  # per GPU
    bandwidth_bytes_s: float  # per GPU
    n_gpus: int = 1
    utilization: float = 0.9  # vLLM's gpu_memory_utilization
    reserved_bytes: int = 0  # activations, CUDA graphs, buffers: everything but weights and cache

    def __post_init__(self) -> None:
        if not 0 < self.utilization <= 1:
            raise ValueError(f"memory utilization must be in (0, 1], got {self.utilization}.")
        if self.n_gpus < 1 or self.memory_bytes < 1:
            raise ValueError("GPU count and memory must be positive.")

    @property
    def usable_bytes(self) -> int:
        return int(self.n_gpus * self.memory_bytes * self.utilization)

    @property
    def total_bytes(self) -> int:
        return self.n_gpus * self.memory_bytes


def grows_linearly(spec: ModelSpec) -> bool:
    """True when every layer caches the same bytes for every token (no windows, no compression) and no
    layer keeps a fixed-size state (linear attention, Mamba)."""
    return all(design_of(a).grows_linearly(a) for a in spec.attention) and not acc.state_bytes(spec)


def paged_request_bytes(
    spec: ModelSpec, tokens: int, kv_dtype: str = "bf16", layout: str = "latent", block: int = BLOCK_TOKENS
) -> int:
    """Cache one request of `tokens` occupies when allocated in blocks of `block` token positions, plus the
    fixed-size state its linear-attention or Mamba layers keep (one per request, whatever its length)."""
    return acc.kv_cache_bytes(spec, ceil(tokens / block) * block, 1, kv_dtype, layout) + acc.state_bytes(spec)


@dataclass(frozen=True)
class Plan:
    context: int
    batch: int
    weights_bytes: int
    usable_bytes: int  # n_gpus x memory x utilization
    total_bytes: int  # n_gpus x memory
    reserved_bytes: int
    kv_budget_bytes: int  # usable - weights - reserved (negative: the weights do not fit)
    kv_bytes: int  # batch x cache at context, unpaged
    kv_paged_bytes: int  # batch x (cache at context rounded up to whole blocks + fixed-size state)
    state_bytes: int  # batch x fixed-size state (linear attention, Mamba), included in kv_paged_bytes
    block_bytes: int  # one 16-token block across all layers (full-attention models)
    num_blocks: int  # vLLM's "GPU KV cache size" in blocks (full-attention models), else 0
    max_concurrency: float  # requests of `context` tokens the budget holds (vLLM's "Maximum concurrency")
    max_context: int | None  # largest context for `batch` requests; None: the cache stops growing
    linear: bool
    step_bytes_read: int  # one decode step of the whole batch: weights it touches + cache it reads
    step_seconds: float  # memory-bound lower bound: step_bytes_read / (n_gpus x bandwidth)

    @property
    def tokens_per_second(self) -> float:
        """Upper bound on decoded tokens per second for the whole batch (memory-bound)."""
        return self.batch / self.step_seconds if self.step_seconds else 0.0

    @property
    def fits(self) -> bool:
        return self.kv_budget_bytes >= self.kv_paged_bytes

    @property
    def headroom_bytes(self) -> int:
        """Usable memory left after weights, reserved memory and this batch's cache (negative: over)."""
        return self.kv_budget_bytes - self.kv_paged_bytes


def plan(
    spec: ModelSpec,
    hw: Hardware,
    context: int,
    batch: int = 1,
    kv_dtype: str = "bf16",
    weight_dtype: str = "bf16",
    layout: str = "latent",
) -> Plan:
    if context < 1 or batch < 1:
        raise ValueError("context and batch must be at least 1.")
    weights = acc.weights_bytes(spec, weight_dtype)
    budget = hw.usable_bytes - weights - hw.reserved_bytes
    per_request = paged_request_bytes(spec, context, kv_dtype, layout)
    linear = grows_linearly(spec)
    block = acc.kv_cache_bytes(spec, BLOCK_TOKENS, 1, kv_dtype, layout) if linear else 0
    if linear:
        num_blocks = max(budget, 0) // block
        concurrency = num_blocks / ceil(context / BLOCK_TOKENS)
    else:
        num_blocks = 0
        concurrency = max(budget, 0) / per_request if per_request else float("inf")
    step = decode_step_bytes(spec, context, batch, kv_dtype, weight_dtype, layout)
    return Plan(
        context=context,
        batch=batch,
        weights_bytes=weights,
        usable_bytes=hw.usable_bytes,
        total_bytes=hw.total_bytes,
        reserved_bytes=hw.reserved_bytes,
        kv_budget_bytes=budget,
        kv_bytes=acc.kv_cache_bytes(spec, context, batch, kv_dtype, layout),
        kv_paged_bytes=batch * per_request,
        state_bytes=acc.state_bytes(spec, batch),
        block_bytes=block,
        num_blocks=num_blocks,
        max_concurrency=concurrency,
        max_context=max_context(spec, budget, batch, kv_dtype, layout),
        linear=linear,
        step_bytes_read=step,
        step_seconds=step / (hw.n_gpus * hw.bandwidth_bytes_s),
    )


def decode_step_bytes(spec: ModelSpec, context: int, batch: int, kv_dtype: str, weight_dtype: str, layout: str) -> int:
    """Bytes one decode step of `batch` requests reads: the weights once for the whole batch (the lm_head
    or tied embedding, everything that is not a routed expert, and of the routed experts at most the
    share min(1, batch x top_k / n_routed) the batch's tokens can reach), plus every request's cache
    reads (sparse layers read only what they select). Bytes / bandwidth bounds the step time from
    below: decode is memory-bound until arithmetic intensity crosses the ridge (DESIGN.md)."""
    embed, head, routed, rest = acc.weights_bytes_parts(spec, weight_dtype)
    moe = [m for m in spec.mlp if isinstance(m, MoEMLP)]
    share = min(1.0, batch * moe[0].top_k / moe[0].n_routed) if moe else 1.0
    weights = (head or embed) + rest + int(routed * share)
    return weights + batch * acc.cache_bytes_read(spec, context, kv_dtype, layout)


def max_context(
    spec: ModelSpec, budget: int, batch: int = 1, kv_dtype: str = "bf16", layout: str = "latent"
) -> int | None:
    """Largest context N (whole blocks) such that `batch` requests of N tokens fit in `budget` bytes;
    0 if not even one block fits; None if the cache stops growing before MAX_TOKENS (all layers
    windowed). Binary search: the paged cache never shrinks as N grows."""

    def fits(n: int) -> bool:
        return batch * paged_request_bytes(spec, n, kv_dtype, layout) <= budget

    if budget <= 0 or not fits(BLOCK_TOKENS):
        return 0
    if fits(MAX_TOKENS):
        return None
    lo, hi = 1, MAX_TOKENS // BLOCK_TOKENS  # in blocks: lo fits, hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid * BLOCK_TOKENS) else (lo, mid)
    return lo * BLOCK_TOKENS
