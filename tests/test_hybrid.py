"""The Hybrid models lesson's runs (core/lab/hybrid.py) against the accounting and against hand counts.

Proves, on CPU in float32 with the lesson's three small layers (GQA attention, Gated DeltaNet, Mamba-2):
(a) at every checkpoint of runs of 1, 7, 64 and 300 tokens of seeded random input, and of 64 tokens of real
    text (MiniLM), each row's measured nbytes equals the accounting's bytes and the next decode step's
    FlopCounterMode FLOPs equal the accounting's, and both columns are what `accounted_bytes` and
    `accounted_step_flops` give for that layer and context;
(b) the numbers are the hand counts: attention keeps 2 x 2 kv heads x 16 x 4 B = 256 B per token and its
    step costs 2 x 12,288 weights + 256 FLOPs per key read; the Gated DeltaNet state is
    4 x 32 x 16 x 4 B + 3 x 192 conv channels x 4 B = 10,496 B and Mamba-2's 4 x 16 x 16 x 4 B +
    3 x 96 x 4 B = 5,248 B, whatever the context;
(c) the attention cache grows linearly (bytes at 2N are twice the bytes at N) while both recurrent states
    keep the same bytes and the same step FLOPs at every checkpoint, and real text changes none of it;
(d) checkpoints(n) is every power of two up to n, then n itself, for every n the lesson allows;
(e) SmallHybrid refuses 0 and MAX_TOKENS + 1 tokens, and run refuses an unknown input, with ValueError.
"""

from __future__ import annotations

from functools import cache

import pandas as pd
import pytest

from core.lab.hybrid import (
    MAX_TOKENS,
    SOURCES,
    SmallHybrid,
    accounted_bytes,
    accounted_step_flops,
    checkpoints,
    run,
    shipped_runs,
)
from core.view.urlstate import HYBRID_TOKENS

ATTENTION, GDN, MAMBA = "attention (GQA)", "Gated DeltaNet", "Mamba-2"
RUNS = [(1, "random"), (7, "random"), (64, "random"), (300, "random"), (64, "text")]
ATTENTION_BYTES_PER_TOKEN = 2 * 2 * 16 * 4  # K and V, 2 kv heads of 16, fp32
ATTENTION_WEIGHTS = 64 * 64 + 64 * 32 + 64 * 32 + 64 * 64  # wq, wk, wv, wo at width 64
STATE_BYTES = {GDN: 4 * 32 * 16 * 4 + 3 * 192 * 4, MAMBA: 4 * 16 * 16 * 4 + 3 * 96 * 4}


@cache
def frame(tokens: int, source: str) -> pd.DataFrame:
    return run(SmallHybrid(tokens), source)


@pytest.mark.parametrize(("tokens", "source"), RUNS)
def test_every_row_measured_equals_accounted(tokens, source):
    df = frame(tokens, source)
    assert list(df.layer.unique()) == [ATTENTION, GDN, MAMBA]
    specs = SmallHybrid(tokens).specs
    for layer, rows in df.groupby("layer", sort=False):
        assert list(rows.context) == checkpoints(tokens), layer
        for r in rows.itertuples():
            assert r.measured_bytes == r.accounted_bytes == accounted_bytes(specs[layer], r.context), r
            assert r.step_flops_measured == r.step_flops_accounted, r
            assert r.step_flops_accounted == accounted_step_flops(specs[layer], r.context + 1), r
            assert r.measured_kib * 1024 == r.measured_bytes and r.accounted_kib * 1024 == r.accounted_bytes
    assert set(df.holds[df.layer == ATTENTION]) == {"KV cache"}
    assert set(df.holds[df.layer != ATTENTION]) == {"fixed state"}


@pytest.mark.parametrize(("tokens", "source"), RUNS)
def test_numbers_are_the_hand_counts(tokens, source):
    df = frame(tokens, source)
    att = df[df.layer == ATTENTION]
    assert list(att.measured_bytes) == [ATTENTION_BYTES_PER_TOKEN * n for n in att.context]
    # the next token reads n + 1 keys and values: 2 x H x D FLOPs for scores and as many for the weighted sum
    assert list(att.step_flops_measured) == [2 * ATTENTION_WEIGHTS + 4 * 4 * 16 * (n + 1) for n in att.context]
    for layer, size in STATE_BYTES.items():
        assert set(df.measured_bytes[df.layer == layer]) == {size}, layer


def test_cache_grows_linearly_and_states_stay_the_same():
    df = frame(300, "random")
    att = df[df.layer == ATTENTION].set_index("context").measured_bytes
    powers = [n for n in att.index if n * 2 in att.index]
    assert powers == [1, 2, 4, 8, 16, 32, 64, 128]
    for n in powers:
        assert att[2 * n] == 2 * att[n], n
    assert att[300] == 300 * att[1]
    for layer in (GDN, MAMBA):
        rows = df[df.layer == layer]
        assert len(rows) == len(checkpoints(300))
        assert rows.measured_bytes.nunique() == 1 and rows.step_flops_measured.nunique() == 1, layer
    assert att[256] > STATE_BYTES[GDN] > att[32]  # the cache passes the bigger state between 32 and 256 tokens


def test_real_text_changes_no_byte_and_no_flop():
    cols = ["layer", "context", "measured_bytes", "step_flops_measured"]
    pd.testing.assert_frame_equal(frame(64, "text")[cols], frame(64, "random")[cols])


def test_checkpoints_are_powers_of_two_then_the_end():
    assert checkpoints(1) == [1]
    assert checkpoints(7) == [1, 2, 4, 7]
    assert checkpoints(64) == [1, 2, 4, 8, 16, 32, 64]
    assert checkpoints(300) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    for n in range(1, MAX_TOKENS + 1):
        got = checkpoints(n)
        powers = [1 << k for k in range(13) if 1 << k <= n]
        assert got == (powers if powers[-1] == n else [*powers, n]), n


@pytest.mark.parametrize("tokens", [0, -1, MAX_TOKENS + 1])
def test_small_hybrid_refuses_token_counts_out_of_range(tokens):
    with pytest.raises(ValueError, match="tokens must be between 1 and"):
        SmallHybrid(tokens)


def test_small_hybrid_accepts_the_bounds():
    assert SmallHybrid(1).tokens == 1 and SmallHybrid(MAX_TOKENS).tokens == MAX_TOKENS


@pytest.mark.parametrize("source", ["noise", "", "Text"])
def test_unknown_input_is_refused(source):
    with pytest.raises(ValueError, match="unknown input"):
        run(SmallHybrid(1), source)


def test_shipped_runs_cover_every_stop_and_equal_fresh_runs():
    """The page shows assets/hybrid/runs.json instead of running the layers on every move: it holds every
    token count and input the page offers, and a fresh run of the layers gives exactly the same table."""
    runs = shipped_runs()
    assert set(runs) == {f"{t}|{s}" for t in HYBRID_TOKENS for s in SOURCES}
    for key in ("16|random", "256|text", "2048|random"):
        tokens, source = key.split("|")
        fresh = run(SmallHybrid(int(tokens)), source)
        pd.testing.assert_frame_equal(pd.DataFrame(runs[key]), fresh, check_dtype=False)
