"""core/quant.py: each quantizer's round trip stays within its theory's error, and its bytes are its tensors.

Proves: (1) round-trip error within the theory for every scheme on Gaussian data: fp8 within half an ulp
per element; intN within step/2 per element and step^2/12 on average; TurboQuant at the computed
Lloyd-Max codebook's distortion and under the paper's sqrt(3) pi / 2 * 4^-b (arXiv 2504.19874, Thm 1);
with QJL at ||r||^2 (pi d / (2m) - 1/m); (2) the codebook solves the Lloyd-Max problem for the Beta
density (1-bit closed form, Gaussian limit of Max 1960); (3) error falls as bits grow; (4) the packed
bytes are exactly the bits accounting, and agree with core/dtypes' vector_bytes for int8, int4, fp8,
tq3.5, tq2.5; (5) over a fixed set of 200 seeds the QJL estimate of <q, k> is unbiased (within 3
standard errors) while the MSE-only estimate is shrunk; (6) the rotation is orthogonal and seeded;
(7) KIVI keeps its recent window exactly; (8) bad arguments raise ValueError.
"""

import math

import pandas as pd
import pytest
import torch

from core.layers import quant as qz
from core.layers.quant import (
    DTYPE_SCHEMES,
    SCHEMES,
    Fp8,
    GgmlBlock,
    IntQuant,
    Preset,
    TurboQuant,
    inner_product_estimate,
    lloyd_max_codebook,
    pack_bits,
    preset,
    qjl_projection,
    random_rotation,
    relative_mse,
    unpack_bits,
)
from core.model.dtypes import CACHE_DTYPES, cache_dtype


def gaussian(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


X = gaussian(2, 512, 128)  # (B, T, C)


# ----------------------------------------------------------------------------- packing


def test_pack_layout_and_round_trip():
    codes = torch.tensor([[6, 1, 10, 11]])
    assert pack_bits(codes, torch.full((4,), 4)).tolist() == [[6 | 1 << 4, 10 | 11 << 4]]  # two per byte
    assert pack_bits(torch.tensor([[1, 2, 3, 0]]), torch.full((4,), 2)).tolist() == [[1 | 2 << 2 | 3 << 4]]
    assert pack_bits(torch.tensor([[1, 0, 1, 1, 0, 0, 0, 1]]), torch.ones(8, dtype=torch.long)).tolist() == [[141]]
    widths = torch.tensor([3, 1, 4, 2, 2, 4])
    codes = gaussian(7, 6).abs().mul(100).long() % (1 << widths)  # (7, 6) codes that fit their widths
    packed = pack_bits(codes, widths)
    assert packed.shape == (7, 2) and packed.dtype == torch.uint8  # 16 bits
    assert torch.equal(unpack_bits(packed, widths), codes)


# ----------------------------------------------------------------------------- fp8


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("granularity", ["tensor", "token"])
def test_fp8_within_half_an_ulp(fmt, granularity):
    scheme = Fp8(fmt, granularity)
    qz = scheme.quantize(X)
    x_hat = qz.dequantize()
    info = torch.finfo(scheme.torch_dtype)  # eps = 2^-mantissa bits, tiny = smallest normal
    scale = qz.tensors["scale"]
    # Round to nearest: relative error eps/2 for normal values, eps/2 * tiny absolute below them (x scale).
    bound = info.eps / 2 * (X.abs() + info.tiny * scale) * (1 + 1e-6)
    assert ((X - x_hat).abs() <= bound).all()
    assert relative_mse(X, x_hat) <= (info.eps / 2) ** 2
    assert qz.tensors["codes"].dtype == scheme.torch_dtype


def test_fp8_e5m2_is_coarser_than_e4m3():
    assert relative_mse(X, Fp8("e5m2").quantize(X).dequantize()) > relative_mse(X, Fp8("e4m3").quantize(X).dequantize())


# ----------------------------------------------------------------------------- intN and KIVI


def steps(x: torch.Tensor, s: IntQuant) -> tuple[torch.Tensor, int]:
    """The quantizer step of every quantized element, derived from the data (not from the stored scales)."""
    t_q = s.quantized_tokens(x.shape[-2])
    rows = x[..., :t_q, :].mT if s.granularity == "channel" else x[..., :t_q, :]
    n = rows.shape[-1]
    g = n if s.granularity == "token" or not s.group_size else s.group_size
    grp = rows.unflatten(-1, (n // g, g))
    if s.symmetric:
        step = grp.abs().amax(-1, keepdim=True) / (2 ** (s.bits - 1) - 1)
    else:
        step = (grp.amax(-1, keepdim=True) - grp.amin(-1, keepdim=True)) / (2**s.bits - 1)
    step = step.expand_as(grp).flatten(-2)
    return (step.mT if s.granularity == "channel" else step), t_q


INT_SCHEMES = [p.scheme(r) for p in SCHEMES.values() for r in ("key", "value") if isinstance(p.scheme(r), IntQuant)]
INT_SCHEMES += [IntQuant(2, True, "group", 32), IntQuant(3, False, "channel", 64), IntQuant(8, False, "token", 0)]


@pytest.mark.parametrize("scheme", INT_SCHEMES, ids=repr)
def test_int_within_half_a_step(scheme):
    step, t_q = steps(X, scheme)
    err = (X - scheme.quantize(X).dequantize())[..., :t_q, :]
    # fp16 scales and zero points move the grid by ~2^-11 of a step: allow 0.2%.
    assert (err.abs() <= step / 2 * 1.002).all()
    assert (err**2).mean() <= 1.02 * (step**2).mean() / 12  # uniform rounding error: step^2 / 12


@pytest.mark.parametrize("granularity,group", [("token", 0), ("group", 32), ("channel", 0)])
def test_int_error_falls_with_bits(granularity, group):
    errs = [relative_mse(X, IntQuant(b, False, granularity, group).quantize(X).dequantize()) for b in (2, 3, 4, 8)]
    assert errs == sorted(errs, reverse=True)
    assert errs[-1] < 1e-4


def test_kivi_keeps_recent_window_exactly():
    x = gaussian(3, 300, 64).half().float()  # fp16-representable, so the fp16 window is exact
    kivi = preset("kivi-2bit")
    k_hat, v_hat = kivi.quantize(x, "key").dequantize(), kivi.quantize(x, "value").dequantize()
    # Keys wait for whole groups of 32 tokens: 300 - 128 = 172 -> 160 quantized, 140 in fp16.
    assert kivi.key.quantized_tokens(300) == 160 and kivi.value.quantized_tokens(300) == 172
    assert torch.equal(k_hat[:, 160:], x[:, 160:]) and torch.equal(v_hat[:, 172:], x[:, 172:])
    assert not torch.equal(k_hat[:, :160], x[:, :160])
    short = x[:, :100]  # shorter than the window: nothing quantized
    assert torch.equal(kivi.quantize(short).dequantize(), short)


def test_kivi_groups_keys_per_channel_values_per_token():
    x = gaussian(256 + 128, 64)
    x[:, 5] += 40.0  # an outlier channel, as in real keys
    k = preset("kivi-2bit").quantize(x, "key")
    v = preset("kivi-2bit").quantize(x, "value")
    assert k.tensors["scale"].shape == (64, 256 // 32)  # (C, T_q / g): per channel, groups along tokens
    assert v.tensors["scale"].shape == (256, 64 // 32)  # (T_q, C / g): per token, groups along channels
    # Per-channel scales isolate the outlier channel; per-token groups spread its range over 31 others.
    assert relative_mse(x, k.dequantize()) < relative_mse(x, v.dequantize()) / 10


# ----------------------------------------------------------------------------- TurboQuant


def test_codebook_solves_lloyd_max_for_the_beta_density():
    for d in (3, 16, 128):
        (lo, hi), dist = lloyd_max_codebook(d, 1)
        mean_abs = math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)  # E|y|
        assert hi == pytest.approx(mean_abs, rel=1e-6) and lo == -hi
        assert dist == pytest.approx(1 / d - mean_abs**2, rel=1e-5)  # E y^2 = 1/d
    # Large d: the coordinate is ~ N(0, 1/d); Max (1960) gives the Gaussian Lloyd-Max distortions.
    for bits, gauss in zip((1, 2, 3, 4), (0.3634, 0.1175, 0.03454, 0.009497), strict=True):
        assert 4096 * lloyd_max_codebook(4096, bits)[1] == pytest.approx(gauss, rel=3e-3)


def test_rotation_is_orthogonal_and_seeded():
    r = random_rotation(96, 7)
    assert torch.allclose(r @ r.T, torch.eye(96, dtype=torch.float64), atol=1e-12)
    assert torch.equal(r, random_rotation.__wrapped__(96, 7))  # the seed alone decides it
    assert not torch.allclose(r, random_rotation(96, 8))
    assert qjl_projection(32, 96, 7).shape == (32, 96)


TQ_BITS = (1, 2, 2.5, 3, 3.5, 4)


@pytest.mark.parametrize("bits", TQ_BITS)
def test_turboquant_distortion_on_unit_vectors(bits):
    x = gaussian(4096, 128, seed=1)
    u = x / x.norm(dim=-1, keepdim=True)  # uniformly random unit vectors
    tq = TurboQuant(bits, seed=3)
    mse = relative_mse(u, tq.quantize(u).dequantize())  # = mean ||u - u^||^2
    assert mse == pytest.approx(tq.distortion(128), rel=0.03)
    if bits == int(bits):
        assert mse <= math.sqrt(3) * math.pi / 2 * 4.0**-bits  # the paper's bound
    # On Gaussian (unnormalised) vectors the error scales with ||x||^2: the same relative error.
    assert relative_mse(x, tq.quantize(x).dequantize()) == pytest.approx(tq.distortion(128), rel=0.03)


def test_turboquant_error_falls_with_bits():
    errs = [relative_mse(X, TurboQuant(b).quantize(X).dequantize()) for b in TQ_BITS]
    assert errs == sorted(errs, reverse=True)


@pytest.mark.parametrize("bits", [1, 3])
def test_qjl_reconstruction_error(bits):
    x = gaussian(4096, 64, seed=2)
    tq = TurboQuant(bits, qjl=True, qjl_dim=128, seed=5)
    qz = tq.quantize(x)
    gamma2 = qz.tensors["residual_norm"].double() ** 2
    d, m = 64, 128
    predicted = float(gamma2.sum()) * (math.pi * d / (2 * m) - 1 / m)  # E||x - x~||^2 given r
    assert float(((x.double() - qz.dequantize().double()) ** 2).sum()) == pytest.approx(predicted, rel=0.05)
    assert relative_mse(x, tq.dequantize_mse(qz)) == pytest.approx(tq.distortion(d), rel=0.03)


def test_qjl_estimator_is_unbiased_and_mse_is_shrunk():
    d, seeds = 64, range(200)
    k = gaussian(4, d, seed=11, dtype=torch.float64)  # (T, C)
    q = k + gaussian(4, d, seed=12, dtype=torch.float64)  # (Q, C), correlated with k: large <q, k>
    truth = (q * k).sum(-1)  # (4,)
    for bits, shrink in ((1, 2 / math.pi), (2, 0.88)):
        qjl, mse = [], []
        for s in seeds:
            qz = TurboQuant(bits, qjl=True, seed=s).quantize(k)
            qjl.append(inner_product_estimate(q, qz).diagonal())
            mse.append(inner_product_estimate(q, qz, qjl=False).diagonal())
            if s == 0:  # the estimator is q . x~ with x~ the paper's DeQuant_prod
                assert torch.allclose(inner_product_estimate(q, qz), q @ qz.dequantize().mT)
        qjl, mse = torch.stack(qjl), torch.stack(mse)  # (seeds, 4)
        se = qjl.std(0) / math.sqrt(len(seeds))
        assert ((qjl.mean(0) - truth).abs() < 3 * se).all()
        se_mse = mse.std(0) / math.sqrt(len(seeds))
        assert ((truth - mse.mean(0)) > 10 * se_mse).all()  # biased towards 0...
        assert (mse.mean(0) / truth).numpy() == pytest.approx(shrink, abs=0.02)  # ...by about 1 - D (2/pi at 1 bit)


def test_batched_equals_per_slice():
    x = gaussian(2, 3, 40, 64)
    for name in ("int4-group64", "tq-3.5bit", "fp8-e4m3-token", "kivi-2bit"):
        p = preset(name)
        whole = p.quantize(x).dequantize()
        for i in range(2):
            for j in range(3):
                assert torch.equal(whole[i, j], p.quantize(x[i, j]).dequantize()), name


def test_zero_vectors_and_constant_groups_decode_to_themselves():
    x = torch.zeros(4, 64)
    x[1] = 3.0
    for p in SCHEMES.values():
        x_hat = p.quantize(x).dequantize()
        assert torch.isfinite(x_hat).all() and torch.equal(x_hat[[0, 2, 3]], x[[0, 2, 3]]), p.name
        if not isinstance(p.key, TurboQuant):  # a constant group is exact up to its fp16 scale
            assert torch.allclose(x_hat[1], x[1], rtol=2**-10), p.name


# ----------------------------------------------------------------------------- bits accounting

# Bits per element at width 128 in a long cache: codes + overhead per element.
BITS_128 = {
    "fp16": 16,
    "fp8-e4m3": 8,  # + one fp32 per tensor
    "fp8-e5m2": 8,
    "fp8-e4m3-token": 8 + 32 / 128,
    "int8-token": 8 + 16 / 128,
    "int8-group64": 8 + 16 / 64,
    "int4-token": 4 + 32 / 128,
    "int4-channel": 4,  # + fp16 scale and zero per channel, once per tensor
    "int4-group64": 4 + 32 / 64,
    "int2-group32": 2 + 32 / 32,
    "int2-token": 2 + 32 / 128,
    "int2-channel": 2,  # + fp16 scale and zero per channel, once per tensor
    "int8-channel": 8,  # + an fp16 scale per channel, once per tensor
    "q8_0": 8 + 16 / 32,  # llama.cpp blocks of 32 with an fp16 scale
    "q4_0": 4 + 16 / 32,
    "kivi-2bit": 2 + 32 / 32,  # + the fp16 window, which does not grow
    "kivi-4bit": 4 + 32 / 32,
    "tq-4bit": 4 + 16 / 128,  # + fp16 norm per vector
    "tq-3.5bit": 3.5 + 16 / 128,
    "tq-3bit": 3 + 16 / 128,
    "tq-2.5bit": 2.5 + 16 / 128,
    "tq-2bit": 2 + 16 / 128,
    "tq-1bit": 1 + 16 / 128,
    "tq-1bit+qjl": 1 + 1 + 32 / 128,  # + 1-bit sketch (m = d) and the residual's fp16 norm
    "tq-2bit+qjl": 2 + 1 + 32 / 128,
    "tq-3bit+qjl": 3 + 1 + 32 / 128,
}


def test_every_preset_is_pinned():
    assert set(BITS_128) == set(SCHEMES)
    for name, bits in BITS_128.items():
        assert SCHEMES[name].bits_per_element(128) == bits, name
        assert SCHEMES[name].description


@pytest.mark.parametrize("name", list(SCHEMES))
@pytest.mark.parametrize("shape", [(256, 128), (2, 3, 200, 96), (130, 64), (5, 40)])
def test_packed_bytes_match_accounting(name, shape):
    p = SCHEMES[name]
    x = gaussian(*shape)
    if isinstance(p.key, GgmlBlock) and shape[-1] % 32:
        with pytest.raises(ValueError, match="blocks of 32"):
            p.quantize(x)
        return
    for role in ("key", "value"):
        scheme = p.scheme(role)
        qz = scheme.quantize(x)
        assert qz.nbytes == scheme.packed_bytes(shape) == sum(t.nbytes for t in qz.tensors.values())
        assert qz.bits_per_element * qz.numel == pytest.approx(8 * qz.nbytes, rel=1e-12)
        if not isinstance(scheme, IntQuant) or scheme.granularity != "channel" and not scheme.residual:
            rows = math.prod(shape[:-1])  # per-vector storage: rows x vector_bytes + per-tensor constants
            assert qz.nbytes == rows * scheme.vector_bytes(shape[-1]) + scheme.tensor_bytes(shape[-1])
    bits = p.bits_per_element(shape[-1], shape[-2])
    assert bits * 2 * math.prod(shape[-2:]) == pytest.approx(8 * p.packed_bytes(shape[-2:]), rel=1e-12)


def test_exact_bits_at_a_token_count():
    # kivi-2bit keys at 4096 tokens: 3968 quantized tokens at 2 + 1 bits, 128 fp16 tokens.
    k = preset("kivi-2bit").key
    assert 8 * k.packed_bytes((4096, 128)) == 3 * 3968 * 128 + 16 * 128 * 128
    # tq-3bit: 3 + 16/128 bits per element, plus one 8-entry fp32 codebook per tensor.
    assert 8 * preset("tq-3bit").key.packed_bytes((4096, 128)) == 4096 * 128 * 3 + 4096 * 16 + 8 * 32
    # int4 codes: two per byte; 2-bit: four; QJL signs: eight.
    assert SCHEMES["int4-group64"].quantize(X).tensors["codes"].shape == (2, 512, 64)
    assert SCHEMES["int2-group32"].quantize(X).tensors["codes"].shape == (2, 512, 32)
    assert SCHEMES["tq-3bit+qjl"].quantize(X).tensors["qjl_signs"].shape == (2, 512, 16)


@pytest.mark.parametrize("dtype_name", list(DTYPE_SCHEMES))
@pytest.mark.parametrize("width", [64, 100, 128, 512, 576])
def test_cache_dtypes_count_the_packed_bytes(dtype_name, width):
    scheme = preset(DTYPE_SCHEMES[dtype_name]).key
    assert cache_dtype(dtype_name).vector_bytes(width) == scheme.vector_bytes(width)
    tokens = 7
    per_tensor = {"fp8": 4, "tq3.5": 4 * (16 + 8), "tq2.5": 4 * (8 + 4)}.get(dtype_name, 0)  # scale, codebooks
    assert scheme.packed_bytes((tokens, width)) == tokens * cache_dtype(dtype_name).vector_bytes(width) + per_tensor


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "make",
    [
        lambda: IntQuant(9),
        lambda: IntQuant(1, True),
        lambda: IntQuant(4, False, "row", 0),
        lambda: IntQuant(4, False, "group", 0),
        lambda: IntQuant(4, False, "token", 32),
        lambda: IntQuant(4, False, "group", 32, residual=-1),
        lambda: Fp8("e3m4"),
        lambda: Fp8("e4m3", "group"),
        lambda: TurboQuant(0.5),
        lambda: TurboQuant(5),
        lambda: TurboQuant(2, qjl=True, qjl_dim=-1),
        lambda: lloyd_max_codebook(1, 2),
        lambda: preset("int3-magic"),
        lambda: preset("fp16").scheme("query"),
        lambda: preset("int8-token").quantize(torch.randn(16)),
        lambda: preset("int8-token").quantize(torch.ones(4, 4, dtype=torch.long)),
        lambda: preset("tq-3bit").quantize(torch.tensor([[1.0, float("nan")]])),
        lambda: preset("tq-3bit").quantize(torch.randn(4, 1)),
        lambda: preset("kivi-2bit").key.vector_bytes(128),
    ],
)
def test_bad_arguments_raise(make):
    with pytest.raises(ValueError):
        make()


def test_preset_type():
    assert all(isinstance(p, Preset) and p.name == n for n, p in SCHEMES.items())


@pytest.mark.parametrize("name", ["q8_0", "q4_0"])
def test_llama_cpp_blocks_are_ggml_reference(name):
    """q8_0 and q4_0 are llama.cpp's own formats: 34 and 18 bytes per 32 values, and the rounding of the
    reference quantizer (q8_0: d = max|x| / 127; q4_0: d = -x_max / 8 with codes 0..15 offset by 8)."""
    x = gaussian(3, 64, 128)
    qz = preset(name).quantize(x)
    blocks = x.numel() // 32
    assert qz.nbytes == blocks * (34 if name == "q8_0" else 18)
    x_hat = qz.dequantize()
    g = x.reshape(-1, 32)
    amax = g.abs().amax(-1, keepdim=True)
    if name == "q8_0":
        want = torch.round(g / (amax / 127)) * (amax / 127)
        assert torch.allclose(x_hat.reshape(-1, 32), want, atol=2e-3 * float(amax.max()))
    else:
        err = (x_hat.reshape(-1, 32) - g).abs()
        # steps of amax / 8 cover [-7/8, 1] amax on the side of the extreme value: half a step of rounding, or
        # one step where a value of the other sign near -amax is clipped to 7/8 of it
        assert bool((err <= amax / 8 * 1.01).all())
        assert float((err <= amax / 16 * 1.01).float().mean()) > 0.99


def test_every_preset_has_one_label_and_the_planners_dtypes_keep_their_names():
    """One name per method across pages: every preset has a distinct label; a preset that stores what one of the
    planner's cache dtypes counts is labelled with that dtype's name (tq-3.5bit is 'tq3.5', fp8-e4m3 'fp8',
    int8-group64 'int8'), and the two count the same bytes per vector; the others follow the same style ('tq3',
    'int8 per token', 'KIVI 2-bit'). quantlab.labelled renames a table's schemes and shared_with_planner names
    the page's schemes that are planner dtypes (fp16, fp8, tq3.5, tq2.5)."""
    from core.lab import quantlab

    assert set(qz.LABELS) == set(qz.SCHEMES) and len(set(qz.LABELS.values())) == len(qz.LABELS)
    for dtype, name in qz.DTYPE_SCHEMES.items():
        assert qz.label(name) == dtype
        assert qz.preset(name).key.vector_bytes(128) == cache_dtype(dtype).vector_bytes(128)
    for name in ("q8_0", "q4_0"):
        assert qz.label(name) == name and name in CACHE_DTYPES
    others = [qz.label(n) for n in ("tq-3bit", "int8-token", "kivi-2bit")]
    assert others == ["tq3", "int8 per token", "KIVI 2-bit"]
    assert quantlab.shared_with_planner() == {"fp16": "fp16", "fp8": "fp8", "tq3.5": "tq3.5", "tq2.5": "tq2.5"}
    df = pd.DataFrame({"scheme": ["tq-3.5bit", "fp16"]})
    assert list(quantlab.labelled(df)["scheme"]) == ["tq3.5", "fp16"]
