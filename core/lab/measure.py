"""Measure here: this device's copy bandwidth and matmul rate, decode steps timed against the bytes they
must read, and the three MLA paths timed next to their counted cost (core.accounting.mla_paths).

The model a measurement is held against: a decode step streams its cache once, so it should take
bytes / bandwidth, with the bandwidth measured here by a large tensor copy; the roofline adds the
compute roof, FLOPs / matmul rate, and takes the longer of the two. Where measurement and model part,
the reasons are ones a learner should see:
- a cache that fits in the processor's caches (CPU L2/L3, GPU L2) is read faster than memory;
- fixed costs (Python, kernel launches, waking threads) dominate steps of a few microseconds;
- absorbed MLA does 2 n_h (2 d_c + d_r) FLOPs per cached token of (d_c + d_r) b bytes, about 2 n_h / b
  FLOPs per byte (docs/facts.md section 6, FlashMLA): above a CPU's ridge point (a few FLOPs per byte) it
  is compute-bound, below a GPU's (hundreds) it stays memory-bound.

Timing (`time_fn`): warm-up runs first (lazy initialisation, allocator, caches), then `repeats` runs
timed with `time.perf_counter`, with `torch.cuda.synchronize()` before and after each on CUDA (kernels
launch asynchronously); the median is the number to quote (robust to the odd slow run when other
processes share the machine), min and p90 show the spread.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from core.accounting import totals as acc
from core.accounting.mla_paths import PATHS, V2_LITE_MLA, mla_path_cost
from core.layers.attention import default_device
from core.layers.decode_kernels import (
    KVBuffer,
    LatentBuffer,
    attend_kv,
    attend_latent,
    default_plan,
    empty_buffer,
    mla_attention,
)
from core.model.specs import DenseMLP, GQASpec, MLASpec, ModelSpec
from core.model.units import fmt_bytes

MIB = 1 << 20
DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
# Copy sizes well above the last-level cache (this machine's CPU L3: 32 MiB; an H100's L2: 50 MB,
# a B200's: 126 MB) and small enough that a CPU copy takes a few tens of milliseconds.
COPY_BYTES = {"cpu": 256 * MIB, "cuda": 1024 * MIB}
# Bytes written between timed runs of a "cold" step, to evict the last-level cache (2x the sizes above).
FLUSH_BYTES = {"cpu": 64 * MIB, "cuda": 256 * MIB}


# ----------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Seconds per call of `repeats` timed runs."""

    median: float
    min: float
    p90: float
    samples: tuple[float, ...]


def _device(device) -> torch.device:
    return torch.device(device) if device is not None else default_device()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(
    fn: Callable[[], object],
    device=None,
    warmup: int = 2,
    repeats: int = 7,
    clock: Callable[[], float] = time.perf_counter,
    setup: Callable[[], object] | None = None,
) -> Timing:
    """Call `fn` `warmup` times untimed, then `repeats` times timed; synchronise CUDA around each run.
    `setup`, if given, runs untimed before every call (e.g. to evict the caches)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}.")
    dev = _device(device)
    for _ in range(warmup):
        if setup:
            setup()
        fn()
    samples = []
    for _ in range(repeats):
        if setup:
            setup()
        _sync(dev)
        t0 = clock()
        fn()
        _sync(dev)
        samples.append(clock() - t0)
    ranked = sorted(samples)
    p90 = ranked[math.ceil(0.9 * len(ranked)) - 1]  # nearest rank
    return Timing(statistics.median(samples), ranked[0], p90, tuple(samples))


def copy_bandwidth(device=None, nbytes: int | None = None, repeats: int = 7) -> float:
    """Bytes per second of a large tensor copy, counted as read + write (2 x nbytes per copy), median of
    `repeats`. The source is written first so no page is first touched inside the timed copy."""
    dev = _device(device)
    nbytes = nbytes or COPY_BYTES.get(dev.type, COPY_BYTES["cuda"])
    n = max(nbytes // 4, 1)
    src = torch.ones(n, dtype=torch.float32, device=dev)
    dst = torch.empty_like(src)
    t = time_fn(lambda: dst.copy_(src), dev, warmup=1, repeats=repeats)
    return 2 * n * 4 / t.median


def matmul_rate(
    device=None,
    dtype: torch.dtype = torch.float32,
    n: int | None = None,
    repeats: int = 5,
    shape: tuple[int, int, int, int] | None = None,
) -> float:
    """FLOPs per second of an n x n x n matmul (2 n^3 FLOPs), median of `repeats`: the compute roof. With
    `shape` = (batch, m, k, n): a batch of m x k by k x n matmuls (2 batch m k n FLOPs) on operands already in
    the processor's caches, the roof of a kernel whose matmuls have that shape (`kernel_matmul`)."""
    dev = _device(device)
    if shape is None:
        n = n or (2048 if dev.type == "cpu" else 8192)  # 1024 reached a third of the 2048 rate here
        shape = (1, n, n, n)
    b, m, k, n = shape
    x, y = torch.randn(b, m, k, device=dev, dtype=dtype), torch.randn(b, k, n, device=dev, dtype=dtype)
    t = time_fn(lambda: torch.matmul(x, y), dev, warmup=1, repeats=repeats)
    return 2 * b * m * k * n / t.median


def last_level_cache_bytes(device=None) -> int | None:
    """The largest cache between the cores and memory (CPU L3 from Linux sysfs, GPU L2 from the
    driver), or None where it cannot be read."""
    dev = _device(device)
    if dev.type == "cuda":
        return getattr(torch.cuda.get_device_properties(dev), "L2_cache_size", None) or None
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = path.read_text().strip().upper()  # e.g. "32768K"
            sizes.append(int(text.rstrip("KMG")) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1))
        except (OSError, ValueError):
            continue
    return max(sizes) if sizes else None


# ----------------------------------------------------------------------------- designs


@dataclass(frozen=True)
class DecodeDesign:
    """An attention design as decode reads it: a spec, and for MLA the path ("absorbed" reads the latent
    cache, "materialised" a per-head K/V cache)."""

    label: str
    spec: GQASpec | MLASpec
    mode: str = "absorbed"

    def __post_init__(self) -> None:
        if self.mode not in acc.MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose absorbed or materialised.")

    @property
    def layout(self) -> str:
        return "materialised" if isinstance(self.spec, MLASpec) and self.mode == "materialised" else "latent"

    @property
    def model(self) -> ModelSpec:
        """A one-layer model, for the accounting (its hidden size and MLP do not enter cache bytes)."""
        return ModelSpec(self.label, "measure", 2048, 1, (self.spec,), (DenseMLP(1),))


# DeepSeek-V2-Lite's attention (hidden 2048, 16 heads, d_c 512, d_r 64, no query compression), and the
# MHA/GQA/MQA layers of the same width and 16 heads of 128. At 64K tokens in fp32 the caches are
# 1 GiB (MHA), 256 MiB (GQA), 144 MiB (MLA latent) and 1.25 GiB (MLA materialised).
DESIGNS: dict[str, DecodeDesign] = {
    d.label: d
    for d in (
        DecodeDesign("MHA", GQASpec(16, 16, 128)),
        DecodeDesign("GQA", GQASpec(16, 4, 128)),
        DecodeDesign("MQA", GQASpec(16, 1, 128)),
        DecodeDesign("MLA absorbed", V2_LITE_MLA, "absorbed"),
        DecodeDesign("MLA materialised", V2_LITE_MLA, "materialised"),
    )
}


def kernel_matmul(design: DecodeDesign, chunk: int, parallel: int) -> tuple[int, int, int, int]:
    """(batch, m, k, n) of the score matmuls one block of the decode kernels runs: for absorbed MLA, every head's
    query against a chunk of latent rows (n_heads x (d_c + d_r) by (d_c + d_r) x chunk, `parallel` chunks at
    once); for a per-head cache, each kv head's group of query heads against its keys."""
    spec = design.spec
    if isinstance(spec, MLASpec) and design.mode == "absorbed":
        return parallel, spec.n_heads, spec.kv_lora_rank + spec.qk_rope_head_dim, chunk
    if isinstance(spec, MLASpec):  # materialised: per-head keys of nope + rope width, one query row each
        return parallel * spec.n_heads, 1, spec.qk_nope_head_dim + spec.qk_rope_head_dim, chunk
    return parallel * spec.n_kv_heads, spec.n_heads // spec.n_kv_heads, spec.head_dim, chunk


def random_buffer(
    design: DecodeDesign, batch: int, context: int, device=None, dtype: torch.dtype = torch.float32, seed: int = 0
) -> KVBuffer | LatentBuffer:
    """A cache of `context` tokens in the layout the design reads, filled with unit normals.

    Random values, not a prefill of the real layer: a dense decode step does the same work whatever the
    values (no data-dependent branches; normals have no denormals), while a real prefill of 64K tokens
    costs O(N^2) attention plus ~1 TFLOP of projections for MHA on this machine's two cores. That the
    kernels compute the real layers' function on a real prefilled cache is proven by the tests. To fill
    gigabytes quickly, one random block of up to 4 MiB is tiled through each tensor.
    """
    dev = _device(device)
    buf = empty_buffer(design.spec, batch, context, design.mode, dev, dtype)
    g = torch.Generator().manual_seed(seed)
    for t in (buf.k, buf.v) if isinstance(buf, KVBuffer) else (buf.kv,):
        flat = t.view(-1)
        block = torch.randn(min(flat.numel(), 4 * MIB // t.element_size()), generator=g).to(dev, dtype)
        for s0 in range(0, flat.numel(), block.numel()):
            n = min(block.numel(), flat.numel() - s0)
            flat[s0 : s0 + n].copy_(block[:n])
    return replace(buf, length=context)


def row_bytes(buf: KVBuffer | LatentBuffer) -> int:
    """Cache bytes of one token over the whole batch."""
    if isinstance(buf, KVBuffer):
        return (buf.k[:, :, :1].numel() + buf.v[:, :, :1].numel()) * buf.k.element_size()
    return buf.kv[:, :1].numel() * buf.kv.element_size()


# ----------------------------------------------------------------------------- decode steps


@dataclass(frozen=True)
class DecodeMeasurement:
    """One decode step of one design at `context` on this device, next to its prediction."""

    design: str
    context: int
    batch: int
    device: str
    dtype: str  # accounting name: fp32, bf16, fp16
    chunk_tokens: int  # tokens per chunk
    parallel: int  # chunks side by side in one block
    timing: Timing
    bytes_read: int  # cache bytes the step must read (core.accounting.cache_bytes_read x batch)
    flops: int  # attention-core FLOPs (core.accounting.decode_core_flops x batch)
    bandwidth: float  # bytes/s of this device's copy: the memory roof
    peak_flops: float | None = None  # FLOP/s of a large matmul here: the compute roof, if measured
    cold: bool = True  # the last-level cache was evicted before every timed run

    @property
    def seconds(self) -> float:
        return self.timing.median

    @property
    def achieved_bytes_per_s(self) -> float:
        return self.bytes_read / self.seconds

    @property
    def achieved_flops_per_s(self) -> float:
        return self.flops / self.seconds

    @property
    def fraction_of_bandwidth(self) -> float:
        return self.achieved_bytes_per_s / self.bandwidth

    @property
    def predicted_seconds(self) -> float:
        """The memory-bound prediction: bytes / measured copy bandwidth."""
        return self.bytes_read / self.bandwidth

    @property
    def compute_seconds(self) -> float | None:
        return self.flops / self.peak_flops if self.peak_flops else None

    @property
    def roofline_seconds(self) -> float:
        """max(bytes / bandwidth, FLOPs / matmul rate): the slower roof wins."""
        return max(self.predicted_seconds, self.compute_seconds or 0.0)

    @property
    def bound(self) -> str:
        return "compute" if (self.compute_seconds or 0.0) > self.predicted_seconds else "memory"

    def to_dict(self) -> dict:
        """Plain data (for JSON and st.cache_data): the fields and the derived numbers."""
        names = ("seconds", "achieved_bytes_per_s", "achieved_flops_per_s", "fraction_of_bandwidth")
        names += ("predicted_seconds", "compute_seconds", "roofline_seconds", "bound")
        return asdict(self) | {n: getattr(self, n) for n in names}


def decode_benchmark(
    design: DecodeDesign,
    context: int,
    batch: int = 1,
    device=None,
    dtype: torch.dtype = torch.float32,
    *,
    bandwidth: float | None = None,
    peak_flops: float | None = None,
    chunk: int | None = None,
    parallel: int | None = None,
    cold: bool = True,
    warmup: int = 2,
    repeats: int = 5,
    seed: int = 0,
) -> DecodeMeasurement:
    """Time the attention core of one decode step: the newest token's query against a cache of `context`
    tokens (its own key included), built once beforehand (`random_buffer`), read by the chunked kernels.

    The timed part is what the accounting counts: the cache bytes read and the core FLOPs (scores and
    value mixing). Projections (W^Q, W^O, and absorbed MLA's W^UK and W^UV) read weights, not cache,
    and are the same at every context, so they are left out. `bandwidth` defaults to a fresh
    `copy_bandwidth(device)`; pass one measured once to time many steps.

    cold=True writes FLUSH_BYTES before every run, as the other layers of a real model would between two
    steps of this one, so the cache comes from memory; cold=False times back-to-back repeats, where a
    cache smaller than the last-level cache is served from it, faster than the memory model predicts.
    """
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {', '.join(map(str, DTYPE_NAMES))}, got {dtype}.")
    for name, value in (("context", context), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}.")
    dev = _device(device)
    bandwidth = bandwidth or copy_bandwidth(dev)
    buf = random_buffer(design, batch, context, dev, dtype, seed)
    plan = default_plan(row_bytes(buf), dev, reuse=isinstance(buf, LatentBuffer))
    chunk, parallel = chunk or plan[0], parallel or plan[1]
    g = torch.Generator().manual_seed(seed + 1)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(dev, dtype)

    s = design.spec
    if isinstance(buf, LatentBuffer):
        q_lat, q_pe = randn(batch, 1, s.n_heads, s.kv_lora_rank), randn(batch, 1, s.n_heads, s.qk_rope_head_dim)
        scale = 1 / math.sqrt(s.qk_head_dim)
        fn = lambda: attend_latent(q_lat, q_pe, buf.filled, scale, chunk, parallel)
    else:
        width = s.head_dim if isinstance(s, GQASpec) else s.qk_head_dim
        q = randn(batch, s.n_heads, 1, width)
        fn = lambda: attend_kv(q, buf.keys, buf.values, 1 / math.sqrt(width), chunk, parallel)
    setup = None
    if cold:
        scratch = torch.empty(FLUSH_BYTES.get(dev.type, FLUSH_BYTES["cuda"]) // 4, device=dev)
        setup = lambda: scratch.fill_(1.0)
    timing = time_fn(fn, dev, warmup, repeats, setup=setup)
    return DecodeMeasurement(
        design=design.label,
        context=context,
        batch=batch,
        device=str(dev),
        dtype=DTYPE_NAMES[dtype],
        chunk_tokens=chunk,
        parallel=parallel,
        timing=timing,
        bytes_read=batch * acc.cache_bytes_read(design.model, context, DTYPE_NAMES[dtype], design.layout),
        flops=batch * acc.decode_core_flops(s, context, design.mode),
        bandwidth=bandwidth,
        peak_flops=peak_flops,
        cold=cold,
    )


def explain(m: DecodeMeasurement, llc_bytes: int | None = None) -> str:
    """One sentence for a page: does the measured step agree with the roofline model, and if not, why.
    Agreement means within 25%; `llc_bytes` is the last-level cache (`last_level_cache_bytes`)."""
    ratio = m.seconds / m.roofline_seconds
    size = fmt_bytes(m.bytes_read)
    if ratio < 0.8:
        if llc_bytes and m.bytes_read <= llc_bytes:
            how = "stays there between back-to-back runs" if not m.cold else "part of it survives the eviction"
            return (
                f"{1 / ratio:.1f}x faster than the model: the {size} cache fits in the {fmt_bytes(llc_bytes)} "
                f"last-level cache and {how}, so it is not read from memory."
            )
        return f"{1 / ratio:.1f}x faster than the model: reading alone can outrun a copy, which also writes."
    if ratio <= 1.25:
        if m.bound == "compute":
            return (
                f"agrees with the roofline, compute-bound: {m.flops / m.bytes_read:.1f} FLOPs per byte is above "
                f"this device's ridge of {m.peak_flops / m.bandwidth:.1f}, so bytes alone "
                f"({m.predicted_seconds * 1e3:.3g} ms) underestimate it."
            )
        return f"agrees with the memory-bound model (bytes / copy bandwidth) within {abs(ratio - 1):.0%}."
    overhead_s = 1e-3 if m.device == "cpu" else 1e-4
    if m.seconds < overhead_s:
        return (
            f"{ratio:.1f}x slower than the model: a {m.seconds * 1e6:.0f} µs step is dominated by fixed costs "
            f"(Python, kernel launches, waking threads), not by its {size} of cache."
        )
    if m.bound == "compute":
        return (
            f"{ratio:.1f}x slower than the roofline, compute-bound: its small matmuls (one row per head) run at "
            f"{m.achieved_flops_per_s / 1e9:.0f} GFLOP/s, below the {m.peak_flops / 1e9:.0f} of a large matmul."
        )
    return (
        f"{ratio:.1f}x slower than the model: it streams {m.achieved_bytes_per_s / 1e9:.1f} GB/s, "
        f"{m.fraction_of_bandwidth:.0%} of the copy bandwidth (matrix-vector products, per-block overheads)."
    )


# ----------------------------------------------------------------------------- the MLA paths, timed


def mla_crossover_measured(
    spec: MLASpec,
    points: Iterable[tuple[int, int, int]],
    device=None,
    dtype: torch.dtype = torch.float32,
    warmup: int = 1,
    repeats: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """Time the three paths (`decode_kernels.mla_attention`) at a few (context, batch, query_len)
    points on this device, next to their analytic FLOPs and bytes. Each timed call writes the same
    query_len new tokens after the same context - query_len cached ones, so every run does equal work."""
    dev = _device(device)
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dev, dtype)

    H, C, R = spec.n_heads, spec.kv_lora_rank, spec.qk_rope_head_dim
    Dn, V = spec.qk_nope_head_dim, spec.v_head_dim
    wkv_b = randn(H * (Dn + V), C, scale=C**-0.5)
    rows = []
    for n, b, t in points:
        new = (randn(b, t, H, Dn), randn(b, t, H, R), randn(b, t, C), randn(b, t, R))  # q_nope, q_pe, c_kv, k_pe
        for path in PATHS:
            design = DecodeDesign(path, spec, "materialised" if path == "materialised" else "absorbed")
            full = random_buffer(design, b, n, dev, dtype, seed)
            base = replace(full, length=n - t)
            fn = lambda base=base, path=path, new=new: mla_attention(spec, wkv_b, *new, base, path)
            timing = time_fn(fn, dev, warmup, repeats)
            cost = mla_path_cost(spec, n, b, t, path, DTYPE_NAMES.get(dtype, "fp32"))
            rows.append(
                {"context": n, "batch": b, "query_len": t, "path": path, "seconds": timing.median}
                | {"flops": cost.flops, "bytes": cost.bytes_read}
            )
            del full, base
    return pd.DataFrame(rows)
