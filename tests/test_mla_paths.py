"""MLA's three paths counted (core/accounting/mla_paths.py), no torch.

Proves:
(a) at decode (one new token) `mla_path_cost` is the accounting's attention core plus the W^UK/W^UV
    projections of the new token, for absorbed and materialised; bad query lengths and unknown paths raise;
(b) `mla_crossover` finds what is true of DeepSeek-V2-Lite shapes: the latent (absorbed, expanded) is read
    with fewer bytes than a materialised cache at every point, materialised does the fewest FLOPs at
    every point, absorbed beats expanded in FLOPs at decode and expanded beats absorbed at long query length,
    the flip happens at `query_len_crossover`, and batch moves nothing;
(c) with roofs, every path gets a roofline time and `fastest` is the least of them; a latent wider than
    the heads' keys and values never loses to expanding.
That the kernels do exactly these FLOPs and read these bytes is proven in tests/test_decode_kernels.py.
"""

from __future__ import annotations

import math

import pytest

from core.accounting import totals as acc
from core.accounting.mla_paths import PATHS, V2_LITE_MLA, mla_crossover, mla_path_cost, query_len_crossover
from core.model.specs import MLASpec


def test_mla_path_cost_at_decode_matches_the_accounting_core():
    for n in (1, 100, 4096):
        absorbed = mla_path_cost(V2_LITE_MLA, n, 1, 1, "absorbed")
        materialised = mla_path_cost(V2_LITE_MLA, n, 1, 1, "materialised")
        projections = 2 * 16 * 512 * (128 + 128)
        assert absorbed.flops == acc.decode_core_flops(V2_LITE_MLA, n, "absorbed") + projections
        assert materialised.flops == acc.decode_core_flops(V2_LITE_MLA, n, "materialised") + projections
    with pytest.raises(ValueError, match="query_len"):
        mla_path_cost(V2_LITE_MLA, 4, 1, 5)
    with pytest.raises(ValueError, match="path"):
        mla_path_cost(V2_LITE_MLA, 4, 1, 1, "fast")


def test_mla_crossover_on_v2_lite_shapes():
    contexts, batches, lens = (512, 4096, 65536), (1, 8), (1, 16, 64, 128, 256, 1024, 4096)
    df = mla_crossover(V2_LITE_MLA, contexts, batches, lens)
    assert len(df) == sum(t <= n for n in contexts for t in lens) * len(batches)
    # bytes: the latent is read by absorbed and expanded alike, 8.9x fewer bytes than a materialised cache
    assert (df.absorbed_bytes == df.expanded_bytes).all() and (df.fewer_bytes == "absorbed").all()
    assert (df.materialised_bytes * 576 == df.absorbed_bytes * 16 * 320).all()
    # FLOPs: materialised fewest everywhere (tied with expanded at T = N, where both expand every
    # token once); absorbed beats expanded at decode, expanded wins at long query length
    assert (df.materialised_flops < df.absorbed_flops).all() and (df.materialised_flops <= df.expanded_flops).all()
    assert (df[df.query_len < df.context].materialised_flops < df[df.query_len < df.context].expanded_flops).all()
    assert (df[df.query_len == 1].fewer_flops == "absorbed").all()
    assert (df[df.query_len >= 256].fewer_flops == "expanded").all()
    for n in contexts:
        star = query_len_crossover(V2_LITE_MLA, n)
        sub = df[df.context == n]
        assert (sub[sub.query_len < star].fewer_flops == "absorbed").all()
        assert (sub[sub.query_len > star].fewer_flops == "expanded").all()
    assert query_len_crossover(V2_LITE_MLA, 10**12) == pytest.approx(512 * 256 / (1024 - 256))
    # batch scales every path alike
    one, eight = df[df.batch == 1].reset_index(drop=True), df[df.batch == 8].reset_index(drop=True)
    assert (one.fewer_flops == eight.fewer_flops).all() and (eight.absorbed_flops == 8 * one.absorbed_flops).all()


def test_mla_crossover_roofline_columns_and_a_latent_that_never_loses():
    df = mla_crossover(V2_LITE_MLA, [4096], [1], [1, 1024], bandwidth=4.8e12, peak_flops=989e12)
    assert {f"{p}_seconds" for p in PATHS} <= set(df.columns)
    for _, row in df.iterrows():
        assert row.fastest == min(PATHS, key=lambda p: row[f"{p}_seconds"])
    wide_heads = MLASpec(4, 64, 128, 16, 128)  # 2 d_c < d_nope + d_v: absorbing never costs more
    assert query_len_crossover(wide_heads, 4096) == math.inf
