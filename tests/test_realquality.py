"""core.lab.realquality and core.lab.realpasskey on the real decoder, and the sweep shipped with the app.

Proves: every method's stored bytes (its tensors' nbytes) equal the engine's accounting of its spec; the
reference reads its own cache (KL 0, top-1 100%); each eviction keeps what its paper keeps; the MLA conversion
at full RoPE and full rank reproduces the model's logits through the decoder; the shipped sweep covers every
method on every window and every passkey trial, and re-running sampled entries gives its numbers; the page's
table (frame) and formulas agree with the accounting."""

import pytest
import torch

from core.lab import real_methods, smollm
from core.lab import realpasskey as pk
from core.lab import realquality as rq
from core.layers.llama import LayerRecord
from core.layers.mha2mla import ConvertedMLA

P = 256  # a short context keeps the tests quick; the sweep uses rq.CONTEXT


@pytest.fixture(scope="module")
def lm():
    return smollm.load()


@pytest.fixture(scope="module")
def pre(lm):
    return rq.prefill(lm, smollm.text_ids(lm)[:, :P])


@pytest.fixture(scope="module")
def sweep():
    return rq.shipped()


SAMPLE = [m for m in real_methods.methods() if m.family != "low rank"] + [
    m for m in real_methods.methods() if m.family == "low rank" and m.setting == 48
]


@pytest.mark.parametrize("method", SAMPLE, ids=lambda m: m.label)
def test_stored_bytes_are_the_accounting(lm, pre, method):
    caches, _, nbytes = rq.compress(lm, pre, method)
    assert nbytes == rq.cache_bytes(lm.spec, method, P)
    if method.family in ("eviction", "low rank"):  # held in bf16: half the fp32 tensors that compute with them
        assert nbytes == sum(t.nbytes for c in caches for t in c.tensors()) // 2


def test_reference_reads_its_own_cache(lm, pre):
    ids = smollm.text_ids(lm)[:, P : P + 17]
    ref = lm.model(ids[:, :-1], pre.caches).logits
    s = rq.score(ref, ref, ids[:, 1:])
    assert s.kl == pytest.approx(0, abs=1e-9) and s.agree == s.tokens == 16


def test_evictions_keep_what_their_papers_keep():
    S, B, H, G = 100, 1, 9, 3
    received = torch.rand(B, H, S, generator=torch.Generator().manual_seed(0))
    received[:, :, 40] = 50  # a heavy hitter for every head
    observed = torch.zeros(B, H, S)
    observed[:, :, 10] = 9  # what the last queries look at
    rec = LayerRecord(None, received, observed)
    window = rq.eviction_indices("sliding window", 20, rec, G)
    assert window[0, 0].tolist() == list(range(80, 100))
    sinks = rq.eviction_indices("StreamingLLM", 20, rec, G)[0, 0].tolist()
    assert sinks[:4] == [0, 1, 2, 3] and sinks[4:] == list(range(84, 100))
    h2o = rq.eviction_indices("H2O", 20, rec, G)[0, 0].tolist()
    assert 40 in h2o and h2o[-10:] == list(range(90, 100))
    snap = rq.eviction_indices("SnapKV", 64, rec, G)[0, 0].tolist()
    assert 10 in snap and snap[-32:] == list(range(68, 100)) and len(snap) == 64
    assert rq.eviction_indices("H2O", 200, rec, G).shape == (B, G, S)  # a budget above the cache keeps it all
    with pytest.raises(ValueError, match="unknown eviction"):
        rq.eviction_indices("LRU", 20, rec, G)


def test_full_conversion_reproduces_the_model(lm, pre):
    """All 32 RoPE pairs and rank 192 (the values' width; keys stay whole): the converted model is the model."""
    layers = [ConvertedMLA(b.attn, 192, 32) for b in lm.model.blocks]
    caches = [layer.prefill_cache(r.x) for layer, r in zip(layers, pre.records, strict=True)]
    ids = smollm.text_ids(lm)[:, P : P + 8]
    want = lm.model(ids, pre.caches).logits
    got = lm.model(ids, caches, attn=layers).logits
    assert (got - want).abs().max() < 1e-3


# ----------------------------------------------------------------------------- the shipped sweep


def test_sweep_covers_every_view(sweep):
    labels = [m.label for m in real_methods.methods()]
    assert [m["label"] for m in sweep["methods"]] == labels
    proto = sweep["protocol"]
    assert (proto["context"], proto["scored"]) == (rq.CONTEXT, rq.SCORED)
    assert proto["windows"] == rq.WINDOWS and proto["passkey_trials"] == pk.TRIALS
    for label in labels:
        assert len(sweep["quality"][label]) == rq.WINDOWS
        assert set(sweep["passkey"][label]) == {str(n) for n in pk.CONTEXTS}
        assert all(len(t) == pk.TRIALS for t in sweep["passkey"][label].values())
    df = rq.frame(sweep)
    assert list(df.method) == labels
    for n in pk.CONTEXTS:
        assert df[f"passkey_{n}"].between(0, 1).all()
    ref = df.set_index("method").loc["fp32"]
    assert ref.ppl_increase == 0 and ref.kl == pytest.approx(0, abs=1e-9) and ref.top1 == 1
    assert ref.passkey_1024 >= 0.9  # the uncompressed model solves the task it is asked


def test_shipped_bytes_equal_the_accounting(sweep):
    df = rq.frame(sweep).set_index("method")
    for label, rows in sweep["quality"].items():
        assert {r[4] for r in rows} == {round(df.loc[label, "bytes_per_token"] * rq.CONTEXT)}, label
    for label, by_n in sweep["passkey"].items():
        for n, trials in by_n.items():
            assert {t[2] for t in trials} == {round(df.loc[label, f"bytes_per_token_{n}"] * int(n))}, label


@pytest.mark.parametrize(
    "label", ["kivi-2bit", "q4_0", "H2O 128", "SnapKV 256", "MLA whitened SVD, 4 RoPE pairs, d_c=48"]
)
def test_sampled_entries_rerun_to_the_shipped_numbers(lm, sweep, label):
    s, nbytes = rq.live(lm, real_methods.method_of(label), window=0)
    nll, kl, agree, tokens, stored = sweep["quality"][label][0]
    assert (tokens, nbytes) == (s.tokens, stored)
    assert s.nll == pytest.approx(nll, rel=1e-4, abs=1e-3)
    assert s.kl == pytest.approx(kl, rel=1e-3, abs=1e-4)
    assert abs(s.agree - agree) <= 1  # a near-tie may flip on another CPU's arithmetic


def test_a_passkey_trial_reruns(lm, sweep):
    t = pk.trial(lm, 1024, 3)
    assert sweep["trials"]["1024"][3]["key"] == t.key
    pre = pk.prefill(lm, t)
    for label in ("fp32", "sliding window 64"):
        ans, nbytes = pk.answers(lm, t, pre, real_methods.method_of(label))
        ok, shipped, stored = sweep["passkey"][label]["1024"][3]
        assert (ans, nbytes) == (shipped, stored) and ok == (ans == t.key)


def test_formulas_quote_the_accounting(lm):
    for m in (
        real_methods.REFERENCE,
        real_methods.method_of("H2O 128"),
        real_methods.method_of("MLA SVD, 4 RoPE pairs, d_c=48"),
        real_methods.method_of("kivi-2bit"),
    ):
        per_token = rq.cache_bytes(lm.spec, m) / rq.CONTEXT
        assert f"{per_token:,.0f}" in rq.bytes_formula(lm.spec, m)
    assert "30 \\times (48 + 3 \\cdot 8)" in rq.bytes_formula(
        lm.spec, real_methods.method_of("MLA SVD, 4 RoPE pairs, d_c=48")
    )
    with pytest.raises(ValueError, match="unknown method"):
        real_methods.method_of("zip")
