"""The engine of the "Sparse & compressed attention" page (core/sparse.py), checked against brute force,
the layers it runs (core.layers.DSAttention, core.v4_layers.CompressedAttention) and core.accounting.

What it proves:
- dsa_selection: every query t keeps exactly min(t + 1, k) keys, all causal (key <= t), and they are the
  top-k of the indexer scores the table itself returns, by a brute-force sort in which ties go to the
  earliest key; the table holds every causal (query, key) pair once and only finite scores;
- v4_visibility: in a sliding-only (SWA) layer exactly the last `window` tokens are raw and nothing else
  is reachable; in HCA every token of every complete entry (t // m < (q + 1) // m) outside the window is
  "in a selected entry" and the tokens of the incomplete block outside the window are unreachable; in CSA
  each query attends to min(k, complete entries) distinct entries, they are the ones
  CompressedAttention.trace reports in entry_idx (and the brute-force top-k of its indexer scores), every
  complete entry's tokens outside the window share one label, and with a window of 1 the table itself
  shows min(k, complete entries) selected entries per query;
- SmallSparse and v4_spec reject bad values with ValueError;
- flops_vs_context: V3.2's indexer part at context N is 61 x 2 x 64 x 128 x N, V4-Pro's is
  30 x 2 x 64 x 128 x floor(N / 4); V3.2's attention core grows up to 2,048 tokens (its top-k) and not
  beyond; the three parts sum to core.accounting.decode_cost(...).model_flops for both models;
- claim_steps: the KV parts sum to core.accounting.kv_cache_bytes for each model and precision, the FLOP
  parts to decode_cost's model FLOPs (projections: attention block minus core), and the V4-Pro / V3.2
  ratios equal core.claims.v4_claims' kv_fraction (bf16 and production) and flops_fraction.
"""

from __future__ import annotations

import math

import pytest
import torch

from core.accounting import totals as acc
from core.accounting.claims import PRECISIONS, v4_claims
from core.lab.sparse import (
    D_MODEL,
    SmallSparse,
    _input,
    claim_steps,
    dsa_selection,
    flops_vs_context,
    v4_spec,
    v4_visibility,
)
from core.layers.compressed import CompressedAttention
from core.model.presets import load_preset

V32 = load_preset("deepseek-v3.2")
V4 = load_preset("deepseek-v4-pro")
RAW, SEL, NOT_SEL = "raw (window)", "in a selected entry", "in an entry not selected"


def top_k_brute(scores: dict[int, float], k: int) -> set[int]:
    """The k best keys by score; ties go to the earliest key."""
    return set(sorted(scores, key=lambda s: (-scores[s], s))[:k])


# ----------------------------------------------------------------------------- DSA selection

DSA_CASES = [
    (SmallSparse(), "random"),
    (SmallSparse(tokens=24, index_topk=1), "random"),
    (SmallSparse(tokens=16, index_topk=32), "random"),  # k > T: every query keeps every causal key
    (SmallSparse(tokens=40, index_topk=5, seed=3), "random"),
    (SmallSparse(tokens=32, index_topk=8), "text"),
]


@pytest.mark.parametrize("cfg,source", DSA_CASES, ids=lambda v: str(v) if isinstance(v, str) else f"T{v.tokens}")
def test_dsa_selection_keeps_min_t1_k_causal_keys_that_are_the_indexer_top_k(cfg, source):
    df = dsa_selection(cfg, source)
    assert list(df.columns) == ["query", "key", "score", "selected"]
    T, k = cfg.tokens, cfg.index_topk
    assert len(df) == T * (T + 1) // 2
    assert (df.key <= df["query"]).all()  # causal pairs only
    assert not df.duplicated(["query", "key"]).any()
    assert df.score.map(math.isfinite).all()
    for t, g in df.groupby("query"):
        assert sorted(g.key) == list(range(t + 1))
        kept = set(g.key[g.selected])
        assert len(kept) == min(t + 1, k), (t, kept)
        assert kept == top_k_brute(dict(zip(g.key, g.score, strict=True)), k), t


def test_dsa_selection_is_deterministic_and_the_input_matters():
    cfg = SmallSparse(tokens=24, index_topk=4)
    a, b = dsa_selection(cfg), dsa_selection(cfg)
    assert a.equals(b)
    c = dsa_selection(SmallSparse(tokens=24, index_topk=4, seed=1))
    assert not a.score.equals(c.score)


# ----------------------------------------------------------------------------- V4 visibility


def views(df) -> dict[int, dict[int, str]]:
    """query -> {token: how}."""
    out: dict[int, dict[int, str]] = {}
    for q, t, how in df[["query", "token", "how"]].itertuples(index=False):
        assert t not in out.setdefault(q, {}), (q, t)
        out[q][t] = how
    return out


def trace(cfg: SmallSparse, kind: str, source: str = "random"):
    spec = v4_spec(cfg, kind)
    layer = CompressedAttention(spec, D_MODEL, seed=cfg.seed, device="cpu", dtype=torch.float64)
    with torch.no_grad():
        return layer.trace(_input(cfg, source))


@pytest.mark.parametrize("window", [1, 5, 8, 64])
def test_swa_sees_only_the_last_window_tokens_raw(window):
    cfg = SmallSparse(tokens=40, window=window)
    v = views(v4_visibility(cfg, "SWA"))
    for q in range(cfg.tokens):
        assert v.get(q, {}) == {t: RAW for t in range(max(0, q - window + 1), q + 1)}, q


@pytest.mark.parametrize(
    "m,window",
    [
        (16, 8),
        (8, 1),
        (2, 3),
        (64, 8),
        (8, 20),
    ],
)
def test_hca_complete_entries_are_all_selected_and_the_incomplete_block_is_unreachable(m, window):
    cfg = SmallSparse(tokens=72, hca_ratio=m, window=window)
    df = v4_visibility(cfg, "HCA")
    assert NOT_SEL not in set(df.how)  # HCA attends to every complete entry
    v = views(df)
    tr = trace(cfg, "HCA")
    for q in range(cfg.tokens):
        complete = (q + 1) // m
        want = {}
        for t in range(q + 1):
            if q - t < window:
                want[t] = RAW
            elif t // m < complete:
                want[t] = SEL
            # else: the incomplete block outside the window is unreachable (no row)
        assert v.get(q, {}) == want, q
        assert {int(e) for e in tr.entry_idx[0, q] if e >= 0} == set(range(complete)), q


@pytest.mark.parametrize(
    "cfg,source",
    [
        (SmallSparse(), "random"),
        (SmallSparse(tokens=80, index_topk=3, window=5, seed=2), "random"),
        (SmallSparse(tokens=48, index_topk=1, window=8), "random"),
        (SmallSparse(tokens=40, index_topk=64, window=2), "random"),  # k > entries: every complete entry
        (SmallSparse(tokens=32, index_topk=4, window=8), "text"),
    ],
    ids=["defaults", "k3-w5", "k1", "k64", "text"],
)
def test_csa_selects_min_k_complete_entries_as_the_layer_trace_does(cfg, source):
    m, w, k = 4, cfg.window, cfg.index_topk
    df = v4_visibility(cfg, "CSA", source)
    v = views(df)
    tr = trace(cfg, "CSA", source)
    for q in range(cfg.tokens):
        complete = (q + 1) // m
        used = [int(e) for e in tr.entry_idx[0, q] if e >= 0]
        assert len(used) == len(set(used)) == min(k, complete), (q, used)
        # the trace's entries are the brute-force top-k of its own indexer scores over complete entries
        scores = {e: float(tr.index_scores[0, q, e]) for e in range(complete)}
        assert set(used) == top_k_brute(scores, k), q
        row = v.get(q, {})
        for t in range(q + 1):
            if q - t < w:
                want = RAW
            elif t // m < complete:
                want = SEL if t // m in used else NOT_SEL
            else:
                want = None
            assert row.get(t) == want, (q, t)
        shown = {t // m for t, how in row.items() if how == SEL}
        assert shown == {e for e in used if q - m * e >= w}  # a selected entry shows where not all raw


def test_csa_with_a_window_of_one_shows_min_k_complete_entries_per_query():
    cfg = SmallSparse(tokens=64, index_topk=5, window=1)
    df = v4_visibility(cfg, "CSA")
    sel = df[df.how == SEL]
    for q in range(cfg.tokens):
        entries = set(sel[sel["query"] == q].token // 4)
        assert len(entries) == min(5, (q + 1) // 4), q


# ----------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    "kw",
    [
        dict(tokens=1),
        dict(tokens=513),
        dict(tokens=-5),
        dict(index_topk=0),
        dict(window=0),
        dict(ratio=1),
        dict(hca_ratio=1),
        dict(hca_ratio=0),
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()),
)
def test_small_sparse_rejects_bad_sizes(kw):
    with pytest.raises(ValueError):
        SmallSparse(**kw)


def test_small_sparse_accepts_its_bounds():
    for kw in (dict(tokens=2), dict(tokens=512), dict(index_topk=1, window=1, ratio=2, hca_ratio=2)):
        SmallSparse(**kw)


@pytest.mark.parametrize("ratio", [2, 8, 16])
def test_v4_spec_rejects_a_csa_ratio_other_than_4(ratio):
    cfg = SmallSparse(ratio=ratio)
    with pytest.raises(ValueError, match="CSA"):
        v4_spec(cfg, "CSA")
    v4_spec(cfg, "HCA")  # the other kinds do not use `ratio`
    v4_spec(cfg, "SWA")


def test_v4_spec_shapes():
    cfg = SmallSparse(index_topk=5, window=3, hca_ratio=8)
    csa, hca, swa = (v4_spec(cfg, k) for k in ("CSA", "HCA", "SWA"))
    assert (csa.compress_ratio, csa.indexed, csa.index_topk, csa.sliding_window) == (4, True, 5, 3)
    assert (hca.compress_ratio, hca.indexed, hca.sliding_window) == (8, False, 3)
    assert (swa.compress_ratio, swa.indexed, swa.sliding_window) == (0, False, 3)


def test_an_hca_ratio_of_4_is_refused_because_it_is_csa():
    with pytest.raises(ValueError, match="CSA"):
        SmallSparse(hca_ratio=4)


@pytest.mark.parametrize("kind", ["MLA", "csa", ""])
def test_v4_spec_rejects_an_unknown_layer_type_with_value_error(kind):
    with pytest.raises(ValueError):
        v4_spec(SmallSparse(), kind)


# ----------------------------------------------------------------------------- FLOPs by part

CONTEXTS = [1, 2, 3, 4, 5, 7, 100, 2047, 2048, 2049, 4096, 100_000, 2**20]
MODELS = {"V3.2": V32, "V4-Pro": V4}


@pytest.fixture(scope="module")
def parts():
    df = flops_vs_context(MODELS, CONTEXTS)
    assert len(df) == 2 * len(CONTEXTS) * 3
    return df.set_index(["model", "context", "part"])["flops"]


def test_layer_counts_behind_the_formulas():
    assert len(V32.attention) == 61 and all(a.index_n_heads == 64 and a.index_head_dim == 128 for a in V32.attention)
    csa = [a for a in V4.attention if a.indexed]
    assert len(csa) == 30 and all(a.compress_ratio == 4 and a.index_head_dim == 128 for a in csa)


@pytest.mark.parametrize("n", CONTEXTS)
def test_indexer_part_formulas(parts, n):
    assert parts["V3.2", n, "indexer"] == 61 * 2 * 64 * 128 * n
    assert parts["V4-Pro", n, "indexer"] == 30 * 2 * 64 * 128 * (n // 4)


def test_v32_attention_core_stops_growing_beyond_2048(parts):
    core = [parts["V3.2", n, "attention core"] for n in CONTEXTS]
    below = [c for n, c in zip(CONTEXTS, core, strict=True) if n <= 2048]
    assert all(a < b for a, b in zip(below, below[1:], strict=False))  # grows up to the top-k
    at_2048 = parts["V3.2", 2048, "attention core"]
    assert all(c == at_2048 for n, c in zip(CONTEXTS, core, strict=True) if n >= 2048)
    assert parts["V3.2", 2047, "attention core"] < at_2048


@pytest.mark.parametrize("n", CONTEXTS)
def test_parts_sum_to_decode_cost_model_flops(parts, n):
    for label, spec in MODELS.items():
        total = sum(parts[label, n, p] for p in ("indexer", "attention core", "weights (2 x active params)"))
        assert total == acc.decode_cost(spec, n).model_flops, (label, n)
        assert (
            parts[label, n, "indexer"] + parts[label, n, "attention core"]
            == acc.decode_cost(spec, n).attention_core_flops
        )
        assert parts[label, n, "weights (2 x active params)"] == 2 * acc.param_count(spec).matmul_active


# ----------------------------------------------------------------------------- the claims


@pytest.fixture(scope="module")
def steps():
    return claim_steps(V32, V4)


@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_kv_parts_sum_to_kv_cache_bytes_and_the_ratio_is_the_claim(steps, precision):
    dtype, layout, _ = PRECISIONS[precision]
    kv = steps[(steps.what == "KV cache bytes") & (steps.precision == precision)]
    totals = kv.groupby("model")["value"].sum()
    for label, spec in MODELS.items():
        assert totals[label] == acc.kv_cache_bytes(spec, 1_048_576, 1, dtype, layout), label
    claim = v4_claims(precision=precision)
    assert totals["V3.2"] == claim.v32_kv_bytes and totals["V4-Pro"] == claim.v4_kv_bytes
    assert totals["V4-Pro"] / totals["V3.2"] == pytest.approx(claim.kv_fraction, rel=1e-15)


def test_kv_ratios_are_the_pages_numbers(steps):
    kv = steps[steps.what == "KV cache bytes"].groupby(["precision", "model"])["value"].sum()
    assert f"{kv['bf16', 'V4-Pro'] / kv['bf16', 'V3.2']:.1%}" == "11.5%"
    assert f"{kv['production', 'V4-Pro'] / kv['production', 'V3.2']:.1%}" == "10.5%"


def test_flop_parts_sum_to_model_flops_and_the_ratio_is_the_claim(steps):
    fl = steps[(steps.what == "FLOPs per token") & (steps.part != "of which attention projections")]
    totals = fl.groupby("model")["value"].sum()
    for label, spec in MODELS.items():
        cost = acc.decode_cost(spec, 1_048_576)
        assert totals[label] == cost.model_flops, label
        proj = steps[(steps.model == label) & (steps.part == "of which attention projections")]["value"]
        assert list(proj) == [cost.attention_block_flops - cost.attention_core_flops], label
    claim = v4_claims()
    assert totals["V4-Pro"] / totals["V3.2"] == pytest.approx(claim.flops_fraction, rel=1e-15)
    assert f"{claim.flops_fraction:.1%}" == "26.2%"
    assert v4_claims(precision="production").flops_fraction == claim.flops_fraction  # FLOPs ignore storage
