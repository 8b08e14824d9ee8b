"""Needle-in-a-haystack evaluation under cache compression, on the shipped tiny models.

Proves: every method at its "no compression" setting reproduces the uncompressed result exactly (the
cache is untouched: low rank at full width, 16-bit quantization, top-k / windows / H2O budgets at least
the prompt, pooling by 1); dropping the needle (a window that excludes it) loses it; the cache surgery
keeps the tensors' shapes consistent and `seen` (RoPE positions); the byte accounting of each method
matches the compressed tensors where the method stores plain tensors; the precomputed results shipped
for the page agree with a fresh evaluation."""

import json
from pathlib import Path

import pytest
import torch

from core.lab import needle as nd
from core.lab import tiny
from core.layers.attention import KVCache, LatentCache, cache_nbytes

ROOT = Path(__file__).resolve().parent.parent
LENGTH, N = 128, 24


@pytest.fixture(scope="module", params=["tiny-mha", "tiny-gqa", "tiny-mla"])
def model(request):
    torch.set_num_threads(1)
    return tiny.load(ROOT / "assets" / "models" / f"{request.param}.safetensors")


def acc(model, method, depth=0.5):
    return nd.evaluate(model, method, LENGTH, depth, N, seed=3)["accuracy"]


def test_uncompressed_retrieves(model):
    assert acc(model, nd.Method("none")) >= 0.9


@pytest.mark.parametrize(
    "method",
    [
        nd.Method("sliding window", 1000),
        nd.Method("StreamingLLM", 1000),
        nd.Method("H2O", 1000),
        nd.Method("top-k", 1000),
        nd.Method("quantization", "fp16"),
        nd.Method("pooling", 1),
    ],
    ids=lambda m: m.label,
)
def test_no_compression_settings_reproduce_the_uncompressed_result(model, method):
    assert acc(model, method) == acc(model, nd.Method("none"))


def test_full_rank_reproduces(model):
    full = model.cfg.kv_elements_per_token()
    assert acc(model, nd.Method("low rank", full)) == acc(model, nd.Method("none"))


def test_a_window_that_excludes_the_needle_loses_it(model):
    assert acc(model, nd.Method("sliding window", 8), depth=0.0) <= 0.1


def _cache(model):
    return model.trace(tiny.make_batch(4, LENGTH, 0, 0.5).tokens[:, :-3]).caches[0]


def test_surgery_keeps_shapes_and_positions(model):
    c = _cache(model)
    S = (c.k if isinstance(c, KVCache) else c.c_kv).shape[-2]
    for out, n in (
        (nd.window(c, 10), 10),
        (nd.streaming(c, 12), 12),
        (nd.pool(c, 4), (S - 16) // 4 + 16 + (S - 16) % 4),
    ):
        t = out.k if isinstance(out, KVCache) else out.c_kv
        assert t.shape[-2] == n and out.seen == c.seen
        assert cache_nbytes(out) == cache_nbytes(c) * n // S
    lr = nd.low_rank(c, 4)
    assert type(lr) is type(c) and cache_nbytes(lr) == cache_nbytes(c)  # projected in place (bytes: see below)
    q = nd.quantize(c, "int4-token")
    assert type(q) in (KVCache, LatentCache)


def test_bytes_of_token_dropping_methods_match_the_tensors(model):
    S = LENGTH - model.cfg.task.n_digits - 1
    c = model.trace(tiny.make_batch(1, LENGTH, 0, 0.5).tokens[:, :S]).caches
    for method, fn in ((nd.Method("sliding window", 32), lambda x: nd.window(x, 32)),
                       (nd.Method("pooling", 8), lambda x: nd.pool(x, 8))):  # fmt: skip
        assert nd.compressed_bytes(model, method, LENGTH) == sum(cache_nbytes(fn(x)) for x in c)
    assert nd.compressed_bytes(model, nd.Method("none"), LENGTH) == sum(cache_nbytes(x) for x in c)


def test_unknown_method_is_a_value_error(model):
    with pytest.raises(ValueError, match="unknown compression"):
        nd.evaluate(model, nd.Method("magic", 3), LENGTH, 0.5, 4)


def test_shipped_results_match_a_fresh_run():
    r = json.loads((ROOT / "assets" / "needle" / "results.json").read_text())
    m = tiny.load(ROOT / "assets" / "models" / "tiny-mla.safetensors")
    rows = r["heatmaps"]["tiny-mla|H2O (64)"]
    cell = next(x for x in rows if x["length"] == 256 and x["depth"] == 0.0)
    fresh = nd.evaluate(m, nd.Method("H2O", 64), 256, 0.0, r["n_heatmap"], seed=0)
    assert fresh["accuracy"] == pytest.approx(cell["accuracy"]) and fresh["cache_bytes"] == cell["cache_bytes"]


def test_every_view_the_page_offers_is_shipped():
    """Every model x method x strength of the page is precomputed, so no slider stop runs 600 prompts."""
    r = json.loads((ROOT / "assets" / "needle" / "results.json").read_text())
    want = {f"{name}|{m.label}" for name in nd.MODELS for m in nd.all_methods()}
    assert want <= set(r["heatmaps"]) and len(want) == 3 * (1 + sum(map(len, nd.STRENGTHS.values())))
    for key in want:
        assert {(x["length"], x["depth"]) for x in r["heatmaps"][key]} == {
            (n, d) for n in nd.LENGTHS for d in nd.DEPTHS
        }


@pytest.mark.parametrize(
    ("key", "method", "length", "depth"),
    [("tiny-mha|quantization (tq-2bit)", nd.Method("quantization", "tq-2bit"), 128, 0.25),
     ("tiny-gqa|low rank (4)", nd.Method("low rank", 4), 192, 1.0),
     ("tiny-mla|pooling (32)", nd.Method("pooling", 32), 64, 0.75)],
)  # fmt: skip
def test_shipped_strengths_match_fresh_runs(key, method, length, depth):
    """Three cells from the sweep's new views (other models, methods and strengths than the defaults)."""
    r = json.loads((ROOT / "assets" / "needle" / "results.json").read_text())
    m = tiny.load(ROOT / "assets" / "models" / f"{key.split('|')[0]}.safetensors")
    cell = next(x for x in r["heatmaps"][key] if x["length"] == length and x["depth"] == depth)
    fresh = nd.evaluate(m, method, length, depth, r["n_heatmap"], seed=0)
    assert fresh["accuracy"] == pytest.approx(cell["accuracy"]) and fresh["cache_bytes"] == cell["cache_bytes"]
