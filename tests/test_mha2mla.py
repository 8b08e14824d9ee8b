"""core.layers.mha2mla: GQA converted to MLA. At full RoPE and full rank the converted layer is the GQA layer
(plain and whitened SVD alike); absorbed attention equals attention over keys and values rebuilt from the
latent; decoding token by token from the LatentCache equals one pass; the cache's bytes are the engine's
accounting of the converted MLASpec; S_2-norm keeps the pairs with the largest q-k norm products; bad ranks
and pair counts are refused in a sentence."""

import pytest
import torch

from core.accounting.totals import kv_cache_bytes
from core.layers.attention import GQAttention, LatentCache, cache_nbytes
from core.layers.mha2mla import Calibration, ConvertedMLA, calibrate, rope_pairs
from core.model.specs import DenseMLP, GQASpec, ModelSpec

GQA = GQASpec(9, 3, 64)
E = 400  # wider than the 3 x (64 + 64) NoPE keys and values, so full rank is reachable


@pytest.fixture(scope="module")
def gqa():
    return GQAttention(GQA, E, seed=3, dtype=torch.float64, device="cpu", rope_theta=1e5)


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 24, E, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.fixture(scope="module")
def cal(gqa):
    return calibrate(gqa, torch.randn(1, 64, E, generator=torch.Generator().manual_seed(1), dtype=torch.float64))


@pytest.mark.parametrize("whiten", [False, True])
def test_full_rope_full_rank_is_the_gqa_layer(gqa, x, cal, whiten):
    ref, _ = gqa(x)
    got, cache = ConvertedMLA(gqa, 192, 32, cal, whiten=whiten)(x)
    assert (got - ref).abs().max() < 1e-9
    assert isinstance(cache, LatentCache) and cache.c_kv.shape == (2, 24, 192) and cache.k_pe.shape == (2, 24, 192)


def test_partial_rope_changes_the_function_and_low_rank_adds_error(gqa, x, cal):
    ref, _ = gqa(x)
    full = ConvertedMLA(gqa, 360, 4, cal)(x)[0]
    low = ConvertedMLA(gqa, 24, 4, cal)(x)[0]
    e_full, e_low = (full - ref).norm() / ref.norm(), (low - ref).norm() / ref.norm()
    assert 1e-3 < e_full < e_low


def test_absorbed_equals_expanded_and_decoding_equals_one_pass(gqa, x, cal):
    layer = ConvertedMLA(gqa, 40, 4, cal, whiten=True)
    absorbed, cache = layer(x)
    expanded, _ = layer(x, mode="expanded")
    assert (absorbed - expanded).abs().max() < 1e-10
    a, c = layer(x[:, :10])
    parts = [a]
    for t in range(10, 24):
        o, c = layer(x[:, t : t + 1], c)
        parts.append(o)
    assert (torch.cat(parts, 1) - absorbed).abs().max() < 1e-10
    assert torch.equal(layer.prefill_cache(x).c_kv, cache.c_kv)


def test_cache_bytes_are_the_engines_accounting(gqa, x, cal):
    layer = ConvertedMLA(gqa, 48, 4, cal)
    _, cache = layer(x[:1])
    spec = ModelSpec("converted", "llama", E, 100, (layer.spec,), (DenseMLP(8),))
    assert cache_nbytes(cache) == kv_cache_bytes(spec, 24, kv_dtype="fp64") == 24 * (48 + 3 * 8) * 8


def test_s2_norm_keeps_the_strongest_pairs():
    scores = torch.zeros(3, 32)
    scores[0, [5, 9]] = 1
    scores[1, [0, 31]] = 2
    scores[2, [7, 8]] = 3
    picked = rope_pairs(2, 64, 3, Calibration(torch.eye(4), scores))
    assert picked.tolist() == [[5, 9], [0, 31], [7, 8]]
    assert rope_pairs(3, 64, 3, None).tolist() == [[0, 1, 2]] * 3  # S_high without calibration


def test_bad_ranks_and_pairs_are_refused(gqa, cal):
    with pytest.raises(ValueError, match="latent rank"):
        ConvertedMLA(gqa, 361, 4, cal)
    with pytest.raises(ValueError, match="rope pairs"):
        ConvertedMLA(gqa, 24, 33, cal)
    with pytest.raises(ValueError, match="calibration"):
        ConvertedMLA(gqa, 24, 4, None, whiten=True)
