"""Measure here (core/lab/measure.py): timing, bandwidth, decode benchmarks and the MLA paths timed.

Proves, without asserting anything about how fast this machine is (no timing asserts):
(a) `time_fn` runs the warm-ups and any setup untimed and reports the median, min and nearest-rank p90
    of exactly what its clock measured (a fake clock makes the durations known);
(b) `copy_bandwidth` and `matmul_rate` return positive finite numbers on tiny sizes;
(c) `decode_benchmark` reports consistent fields for every design, cold or warm: bytes = accounting's
    cache_bytes_read x batch, FLOPs = decode_core_flops x batch, achieved = bytes / seconds,
    predicted = bytes / bandwidth, the roofline is the slower roof; the result is plain JSON data;
    the shipped designs' 64K caches have the sizes the bench quotes; `explain` names why measurement and
    model part (caches, fixed costs, compute-bound, slow streaming) on hand-made measurements;
(d) `mla_crossover_measured` times every path at each point, next to its counted FLOPs
    (core.accounting.mla_paths, proven in tests/test_mla_paths.py and tests/test_decode_kernels.py);
(e) on CUDA (skipped without a GPU) a decode benchmark runs and reports consistent fields.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from core.accounting import totals as acc
from core.accounting.mla_paths import PATHS, mla_path_cost
from core.lab.measure import (
    DESIGNS,
    DecodeDesign,
    DecodeMeasurement,
    Timing,
    copy_bandwidth,
    decode_benchmark,
    explain,
    last_level_cache_bytes,
    matmul_rate,
    mla_crossover_measured,
    random_buffer,
    time_fn,
)
from core.model.specs import GQASpec, MLASpec

SMALL_MLA = MLASpec(4, 12, 8, 4, 6)
SMALL = [
    DecodeDesign("MHA", GQASpec(4, 4, 8)),
    DecodeDesign("GQA", GQASpec(4, 2, 8)),
    DecodeDesign("MQA", GQASpec(4, 1, 8)),
    DecodeDesign("MLA absorbed", SMALL_MLA, "absorbed"),
    DecodeDesign("MLA materialised", SMALL_MLA, "materialised"),
]


# ----------------------------------------------------------------------------- (a) time_fn


def fake_clock(durations):
    """A clock whose successive start/stop readings are `durations` apart."""
    readings, now = [], 100.0
    for d in durations:
        readings += [now, now + d]
        now += d + 1.0
    it = iter(readings)
    return lambda: next(it)


def test_time_fn_reports_the_median_min_and_p90_of_what_it_measured():
    calls = []
    durations = [5.0, 1.0, 3.0, 2.0, 4.0, 9.0, 7.0, 6.0, 8.0, 10.0]
    t = time_fn(lambda: calls.append(1), "cpu", warmup=3, repeats=10, clock=fake_clock(durations))
    assert len(calls) == 13  # 3 warm-ups + 10 timed
    assert t.samples == tuple(durations)
    assert t.median == 5.5 and t.min == 1.0 and t.p90 == 9.0


def test_time_fn_odd_repeats_median_is_the_middle_sample():
    t = time_fn(lambda: None, "cpu", warmup=0, repeats=3, clock=fake_clock([0.2, 0.9, 0.4]))
    assert t.median == pytest.approx(0.4) and t.p90 == pytest.approx(0.9)
    with pytest.raises(ValueError, match="repeats"):
        time_fn(lambda: None, "cpu", repeats=0)


def test_time_fn_runs_setup_untimed_before_every_call():
    events, readings = [], iter([0.0, 2.0, 10.0, 13.0])

    def clock():
        events.append("clock")
        return next(readings)

    t = time_fn(lambda: events.append("fn"), "cpu", 1, 2, clock=clock, setup=lambda: events.append("setup"))
    assert events == ["setup", "fn"] + ["setup", "clock", "fn", "clock"] * 2
    assert t.samples == (2.0, 3.0)


def test_time_fn_with_the_real_clock_returns_nonnegative_samples():
    t = time_fn(lambda: sum(range(100)), "cpu", warmup=1, repeats=3)
    assert len(t.samples) == 3 and all(s >= 0 for s in t.samples)


# ----------------------------------------------------------------------------- (b) roofs


def test_copy_bandwidth_and_matmul_rate_are_positive_finite_on_tiny_sizes():
    bw = copy_bandwidth("cpu", nbytes=1 << 16, repeats=3)
    rate = matmul_rate("cpu", n=32, repeats=3)
    assert math.isfinite(bw) and bw > 0
    assert math.isfinite(rate) and rate > 0


def test_kernel_matmul_is_the_score_matmul_the_kernels_run():
    """The shape whose matmul rate make bench prints beside the CPU decode target: absorbed MLA's 16 heads against
    576-wide latent rows, `parallel` chunks at a time; a per-head cache's query group per kv head. In one
    block, every query head meets every token once."""
    from core.lab.measure import DESIGNS, kernel_matmul

    assert kernel_matmul(DESIGNS["MLA absorbed"], 455, 4) == (4, 16, 576, 455)
    assert kernel_matmul(DESIGNS["MLA materialised"], 1638, 1) == (16, 1, 192, 1638)
    assert kernel_matmul(DESIGNS["GQA"], 8192, 1) == (4, 4, 128, 8192)
    assert kernel_matmul(DESIGNS["MHA"], 2048, 2) == (32, 1, 128, 2048)
    for d in DESIGNS.values():
        b, m, _, n = kernel_matmul(d, 64, 2)
        assert b * m * n == d.spec.n_heads * 2 * 64  # every head meets every token of the block's chunks once
    rate = matmul_rate("cpu", repeats=3, shape=(2, 16, 64, 32))
    assert math.isfinite(rate) and rate > 0


# ----------------------------------------------------------------------------- (c) decode benchmark


@pytest.mark.parametrize("design", SMALL, ids=lambda d: d.label)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_decode_benchmark_fields_are_consistent(design, dtype):
    name = {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
    m = decode_benchmark(
        design, 37, 2, "cpu", dtype, bandwidth=1e10, peak_flops=1e9, chunk=8, cold=False, warmup=0, repeats=2
    )
    assert m.bytes_read == 2 * acc.cache_bytes_read(design.model, 37, name, design.layout)
    assert m.flops == 2 * acc.decode_core_flops(design.spec, 37, design.mode)
    assert m.seconds == m.timing.median > 0
    assert m.achieved_bytes_per_s == pytest.approx(m.bytes_read / m.seconds)
    assert m.achieved_flops_per_s == pytest.approx(m.flops / m.seconds)
    assert m.predicted_seconds == pytest.approx(m.bytes_read / 1e10)
    assert m.fraction_of_bandwidth == pytest.approx(m.achieved_bytes_per_s / 1e10)
    assert m.roofline_seconds == pytest.approx(max(m.bytes_read / 1e10, m.flops / 1e9))
    assert m.bound == ("compute" if m.flops / 1e9 > m.bytes_read / 1e10 else "memory")
    d = json.loads(json.dumps(m.to_dict()))
    assert d["bytes_read"] == m.bytes_read and d["timing"]["median"] == m.seconds and d["chunk_tokens"] == 8
    assert d["parallel"] >= 1


def test_decode_benchmark_measures_bandwidth_when_not_given_and_refuses_bad_input():
    m = decode_benchmark(SMALL[1], 5, device="cpu", warmup=0, repeats=1)
    assert m.bandwidth > 0 and m.peak_flops is None and m.roofline_seconds == m.predicted_seconds
    assert m.cold and m.seconds > 0
    with pytest.raises(ValueError, match="context"):
        decode_benchmark(SMALL[1], 0, device="cpu", bandwidth=1.0)
    with pytest.raises(ValueError, match="dtype"):
        decode_benchmark(SMALL[1], 4, device="cpu", dtype=torch.float64, bandwidth=1.0)
    with pytest.raises(ValueError, match="mode"):
        DecodeDesign("x", SMALL_MLA, "fast")


def test_random_buffer_is_filled_finite_and_seeded():
    a = random_buffer(SMALL[3], 2, 9, "cpu", seed=1)
    b = random_buffer(SMALL[3], 2, 9, "cpu", seed=1)
    assert a.length == 9 and torch.isfinite(a.kv).all() and torch.equal(a.kv, b.kv)
    materialised = random_buffer(SMALL[4], 1, 9, "cpu")
    assert materialised.keys.shape == (1, 4, 9, 12) and materialised.values.shape == (1, 4, 9, 6)


def test_shipped_designs_have_the_cache_sizes_the_bench_quotes():
    n, mib = 65536, 1 << 20
    sizes = {k: acc.cache_bytes_read(d.model, n, "fp32", d.layout) for k, d in DESIGNS.items()}
    assert sizes == {
        "MHA": 1024 * mib,
        "GQA": 256 * mib,
        "MQA": 64 * mib,
        "MLA absorbed": 144 * mib,
        "MLA materialised": 1280 * mib,
    }


def measurement(seconds: float, bytes_read: int, flops: int, cold: bool = True, device: str = "cpu"):
    timing = Timing(seconds, seconds, seconds, (seconds,))
    return DecodeMeasurement(
        "x", 1, 1, device, "fp32", 16, 1, timing, bytes_read, flops, bandwidth=1e10, peak_flops=1e11, cold=cold
    )


def test_explain_names_the_reason_measurement_and_model_part():
    mib = 1 << 20
    # 64 MiB at 10 GB/s: 6.7 ms predicted, memory-bound (1 FLOP/B < ridge 10)
    assert "agrees with the memory-bound" in explain(measurement(7.0e-3, 64 * mib, 64 * mib))
    assert "0.0 GB/s" not in explain(measurement(20e-3, 64 * mib, 64 * mib))
    assert "streams" in explain(measurement(20e-3, 64 * mib, 64 * mib))
    assert "reading alone" in explain(measurement(3e-3, 64 * mib, 64 * mib), llc_bytes=32 * mib)
    warm = explain(measurement(0.4e-3, 16 * mib, 16 * mib, cold=False), llc_bytes=32 * mib)
    assert "fits in the 32 MiB last-level cache" in warm and "back-to-back" in warm
    assert "fixed costs" in explain(measurement(50e-6, 64 * 1024, 1000))
    # 100 FLOP/B > ridge 10: compute-bound; roofline = 64 MiB * 100 / 1e11 = 67 ms
    assert "compute-bound" in explain(measurement(70e-3, 64 * mib, 100 * 64 * mib))
    assert "small matmuls" in explain(measurement(200e-3, 64 * mib, 100 * 64 * mib))


def test_last_level_cache_is_positive_or_unknown():
    llc = last_level_cache_bytes("cpu")
    assert llc is None or llc > 0


# ----------------------------------------------------------------------------- (d) the MLA paths, timed


def test_mla_crossover_measured_returns_every_path_at_each_point():
    df = mla_crossover_measured(SMALL_MLA, [(16, 1, 1), (16, 2, 4)], "cpu", warmup=0, repeats=1)
    assert len(df) == 6 and set(df.path) == set(PATHS)
    assert (df.seconds > 0).all()
    row = df[(df.path == "expanded") & (df.query_len == 4)].iloc[0]
    assert row.flops == mla_path_cost(SMALL_MLA, 16, 2, 4, "expanded", "fp32").flops


# ----------------------------------------------------------------------------- (e) CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("design", SMALL, ids=lambda d: d.label)
def test_decode_benchmark_on_cuda(design):
    bw = copy_bandwidth("cuda", nbytes=1 << 24, repeats=3)
    m = decode_benchmark(design, 300, 2, "cuda", torch.bfloat16, bandwidth=bw, warmup=1, repeats=3)
    assert m.device.startswith("cuda") and m.seconds > 0
    assert m.predicted_seconds == pytest.approx(m.bytes_read / bw)
