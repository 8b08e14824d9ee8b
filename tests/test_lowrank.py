"""MHA -> MLA by joint SVD (core/lowrank.py) on all-MiniLM-L6-v2's real layers and the shipped text.

Proves, in float64 on CPU:
(a) the conversion is exact at full rank (384): keys, values, scores, probabilities and the attention
    output equal the original layer's, both through `to_mla` and in `rank_sweep` (errors ~ 0);
(b) the factors are an SVD: the up-projection [W^UK; W^UV] has orthonormal columns, the down-projection
    rows are orthogonal with norms equal to the singular values, and rank r is the best rank-r
    approximation of the stacked weights (Eckart-Young: its error is the tail of the spectrum);
(c) the absorbed path (attend in latent space, W^UK into the query, W^UV into W_O) equals the expanded path
    (keys and values rebuilt from the latent);
(d) errors fall with rank: the joint [K | V] error is non-increasing in every layer (a theorem: the
    residual is X V_tail S_tail U_tail^T with orthonormal U), never below the Eckart-Young floor of the
    activations; K, V and the attention output are non-increasing on layer 0 (measured, not a theorem:
    in deeper layers the output error wiggles at some ranks, so only layer 0 is pinned);
(e) energy is non-decreasing and ends at 1, per layer and per head; the keys and values of real text are
    more concentrated than the weights (layer 0: 90% of the energy needs 53 directions for the
    activations of the shipped passages against 173 for the weights);
(f) cache bytes per token = rank x bytes per element, equal to the latent tensor's nbytes per token;
(g) bad arguments (rank 0 or 385, layer 6, head 12, no ranks) raise ValueError with a sentence.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from core.lab.lowrank import (
    absorbed_attention,
    activation_spectra,
    cache_bytes_per_token,
    energy,
    layer_inputs,
    mha_cache_bytes_per_token,
    rank_for_energy,
    rank_sweep,
    shipped_sweeps,
    spectra,
    to_mla,
)
from core.lab.minilm import attention_io, load_minilm, tokenize
from core.lab.passages import load_passages

RANKS = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384]
ERRORS = ["k_error", "v_error", "kv_error", "scores_error", "probs_tv", "out_error"]


@pytest.fixture(scope="module")
def mini():
    return load_minilm(dtype=torch.float64)


@pytest.fixture(scope="module")
def ids():
    return [tokenize(p.text) for p in load_passages()]


@pytest.mark.parametrize("layer", [0, 5])
def test_full_rank_reproduces_the_layer_exactly(mini, ids, layer):
    x = layer_inputs(mini, layer, ids[0])[0]
    ref = attention_io(mini, layer, x)
    conv = to_mla(mini, layer, 384)
    io = attention_io(mini, layer, x, conv.keys_values(conv.latent(x)))
    for name in ("k", "v", "scores", "probs", "out"):
        torch.testing.assert_close(getattr(io, name), getattr(ref, name), rtol=1e-10, atol=1e-10, msg=name)


def test_full_rank_sweep_row_is_zero(mini, ids):
    row = rank_sweep(mini, 0, ids, [384]).iloc[0]
    assert all(row[c] < 1e-10 for c in ERRORS + ["kv_error_floor"])


def test_factors_are_an_svd_and_rank_r_is_eckart_young(mini):
    p = mini.layers[2]
    w = torch.cat([p.w_k, p.w_v])  # (768, 384)
    s = spectra(mini, 2).joint
    for r in (1, 40, 200):
        conv = to_mla(mini, 2, r)
        assert conv.w_dkv.shape == (r, 384) and conv.w_uk.shape == conv.w_uv.shape == (384, r)
        up = torch.cat([conv.w_uk, conv.w_uv])  # (768, r)
        torch.testing.assert_close(up.T @ up, torch.eye(r, dtype=torch.float64))
        torch.testing.assert_close(conv.w_dkv @ conv.w_dkv.T, torch.diag(s[:r] ** 2))
        err = torch.linalg.matrix_norm(w - up @ conv.w_dkv)
        torch.testing.assert_close(err**2, (s[r:] ** 2).sum())


def test_absorbed_path_equals_expanded_path(mini, ids):
    x = layer_inputs(mini, 1, ids[2])[0]
    conv = to_mla(mini, 1, 48)
    expanded = attention_io(mini, 1, x, conv.keys_values(conv.latent(x)))
    absorbed = absorbed_attention(mini, conv, x)
    assert absorbed.c_kv.shape == (1, x.shape[1], 48) and absorbed.q_latent.shape == (1, 12, x.shape[1], 48)
    for name in ("scores", "probs", "out"):
        torch.testing.assert_close(getattr(absorbed, name), getattr(expanded, name), msg=name)


@pytest.mark.parametrize("layer", range(6))
def test_joint_error_falls_with_rank_and_stays_above_the_activation_floor(mini, ids, layer):
    df = rank_sweep(mini, layer, ids, RANKS)
    assert (df["kv_error"].diff().dropna() <= 1e-12).all()
    assert (df["kv_error"] >= df["kv_error_floor"] - 1e-12).all()
    assert (df["kv_error_floor"].diff().dropna() <= 1e-12).all()


def test_key_value_and_output_errors_fall_with_rank_on_layer_0(mini, ids):
    df = rank_sweep(mini, 0, ids, RANKS)
    for col in ("k_error", "v_error", "kv_error", "out_error"):
        assert (df[col].diff().dropna() <= 1e-9).all(), col
    assert df["out_error"].iloc[0] > 0.9 and df["out_error"].iloc[-1] < 1e-10
    assert ((df["probs_tv"] >= 0) & (df["probs_tv"] <= 1)).all()


def test_sweep_table_shape_order_and_several_sequences(mini, ids):
    df = rank_sweep(mini, 0, ids[0], [64, 8, 64])
    assert list(df["rank"]) == [64, 8, 64]
    assert list(df.columns) == [
        "rank",
        *ERRORS[:3],
        "kv_error_floor",
        *ERRORS[3:],
        "cache_bytes_fp32",
        "cache_bytes_bf16",
        "cache_share",
    ]
    pd.testing.assert_frame_equal(df.iloc[[0]], df.iloc[[2]].set_axis([0]))
    one = rank_sweep(mini, 0, [ids[0]], [8])
    assert one.equals(df.iloc[[1]].reset_index(drop=True))


@pytest.mark.parametrize("head", [None, 0, 11])
def test_energy_is_non_decreasing_and_ends_at_one(mini, ids, head):
    w, a = spectra(mini, 4, head), activation_spectra(mini, 4, ids[1], head)
    width = 384 if head is None else 32
    assert (len(w.key), len(w.value), len(w.joint)) == (width, width, min(2 * width, 384))
    for s in (*w, *a):
        e = energy(s)
        assert (e.diff() >= -1e-15).all() and abs(float(e[-1]) - 1) < 1e-12
        assert rank_for_energy(s, 1.0) <= len(s)
    assert rank_for_energy(torch.tensor([3.0, 4.0]), 0.36) == 1  # 9 / 25 = 0.36 exactly
    assert rank_for_energy(torch.tensor([3.0, 4.0]), 0.37) == 2


def test_activations_are_more_concentrated_than_weights_on_layer_0(mini, ids):
    w = spectra(mini, 0).joint
    a = activation_spectra(mini, 0, ids).joint  # 793 tokens: the rank is not capped by the token count
    assert sum(map(len, ids)) > 384
    assert rank_for_energy(a, 0.9) < rank_for_energy(w, 0.9) / 2
    assert float(energy(a)[63]) > 0.9 > 0.7 > float(energy(w)[63])


def test_cache_bytes_per_token(mini, ids):
    assert cache_bytes_per_token(64, "bf16") == 128 and cache_bytes_per_token(64, "fp32") == 256
    assert mha_cache_bytes_per_token(mini, "bf16") == 2 * 384 * 2 == 1536
    x = layer_inputs(mini, 0, ids[0])[0].float()
    for r in (1, 64, 384):
        conv = to_mla(mini, 0, r)
        c = conv.latent(x.double()).float()  # (1, T, r)
        assert c.nbytes == x.shape[1] * conv.cache_bytes_per_token("fp32")
        assert c.bfloat16().nbytes == x.shape[1] * conv.cache_bytes_per_token("bf16")
    df = rank_sweep(mini, 0, ids[0], [32, 384])
    assert list(df["cache_bytes_fp32"]) == [128, 1536] and list(df["cache_bytes_bf16"]) == [64, 768]
    assert list(df["cache_share"]) == [32 / 768, 0.5]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, i: to_mla(m, 0, 0), r"rank must be an integer from 1 to 384 .*; got 0\."),
        (lambda m, i: to_mla(m, 0, 385), r"rank must be an integer from 1 to 384"),
        (lambda m, i: to_mla(m, 0, True), r"rank must be an integer"),
        (lambda m, i: to_mla(m, 6, 8), r"layer must be an integer from 0 to 5"),
        (lambda m, i: spectra(m, 6), r"layer must be"),
        (lambda m, i: spectra(m, 0, 12), r"head must be None .* from 0 to 11"),
        (lambda m, i: activation_spectra(m, -1, i[0]), r"layer must be"),
        (lambda m, i: rank_sweep(m, 0, i[0], [0]), r"rank must be"),
        (lambda m, i: rank_sweep(m, 0, i[0], [385]), r"rank must be"),
        (lambda m, i: rank_sweep(m, 6, i[0], [8]), r"layer must be"),
        (lambda m, i: rank_sweep(m, 0, i[0], []), r"at least one rank"),
        (lambda m, i: rank_sweep(m, 0, [], [8]), r"at least one sequence"),
        (lambda m, i: cache_bytes_per_token(8, "fp64"), r"unknown cache dtype"),
        (lambda m, i: energy(torch.tensor([])), r"non-empty"),
        (lambda m, i: rank_for_energy(torch.ones(3), 1.5), r"share must be"),
    ],
)
def test_bad_arguments_are_value_errors_with_a_sentence(mini, ids, call, match):
    with pytest.raises(ValueError, match=match) as e:
        call(mini, ids)
    assert str(e.value)[0].isalpha() and str(e.value).endswith(".")


def test_shipped_sweeps_cover_every_view():
    """The Latent rank page answers rank moves from assets/latent_rank: every layer, text (and all texts),
    every rank from 1 to 384."""
    shipped = shipped_sweeps()
    assert set(shipped) == {f"{layer}|{p}" for layer in range(6) for p in range(-1, len(load_passages()))}
    assert all(list(df["rank"]) == list(range(1, 385)) for df in shipped.values())


@pytest.mark.parametrize("key", ["0|0", "4|-1"])
def test_shipped_sweeps_equal_a_fresh_run(key):
    mini = load_minilm()  # float32, as the page runs it
    layer, passage = map(int, key.split("|"))
    texts = [tokenize(p.text, 512) for p in load_passages()]
    ids = texts if passage < 0 else [texts[passage]]
    ranks = [1, 7, 64, 200, 384]
    fresh = rank_sweep(mini, layer, ids, range(1, 385))
    want = fresh[fresh["rank"].isin(ranks)].reset_index(drop=True)
    got = shipped_sweeps()[key]
    got = got[got["rank"].isin(ranks)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, rtol=1e-5, atol=1e-9, check_dtype=False)


def test_error_crossing_reads_the_first_measured_rank_below_the_threshold():
    """error_crossing: the smallest measured rank whose error is below the threshold, nothing interpolated;
    None when no rank gets there; it says which ranks were measured; bad input is a ValueError."""
    from core.lab.lowrank import error_crossing

    sweep = pd.DataFrame({"rank": [64, 1, 16, 128], "out_error": [0.12, 0.9, 0.3, 0.08]})
    c = error_crossing(sweep, 0.10)
    assert c.rank == 128 and c.measured == (1, 16, 64, 128) and c.measured_text() == "1, 16, 64, 128"
    assert error_crossing(sweep, 0.5).rank == 16
    assert error_crossing(sweep, 0.05).rank is None
    wiggle = pd.DataFrame({"rank": [1, 2, 3], "out_error": [0.2, 0.09, 0.11]})
    assert error_crossing(wiggle).rank == 2  # where it first drops below, even if it rises again
    full = shipped_sweeps()["0|0"]
    c = error_crossing(full)
    assert c.measured_text() == "every rank from 1 to 384"
    assert full.set_index("rank").loc[c.rank, "out_error"] < 0.10
    assert (full[full["rank"] < c.rank]["out_error"] >= 0.10).all()
    for bad, match in ((dict(threshold=0), "threshold"), (dict(threshold=1.5), "threshold"), (dict(column="x"), "'x'")):
        with pytest.raises(ValueError, match=match):
            error_crossing(sweep, **bad)
    with pytest.raises(ValueError, match="no rows"):
        error_crossing(sweep.iloc[:0])
