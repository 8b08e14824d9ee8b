"""Takeaways (core/view/takeaways.py): each page's two or three sentences carry the engine's numbers for
the view, and follow the view.

What it proves, page by page:
- every function returns two or three sentences, each a plain string ending in a full stop;
- each number in them equals the engine's on that view, computed here again through core.accounting /
  core.lab (bytes and ratios of the Overview and Hybrid presets, the planner's concurrency and TP copies, the
  measured caches and FLOPs of Inside MLA's layers, the 10% rank of the shipped rank sweep, the roofline's
  intensities, V4's claims, the quantization schemes' bytes and errors, the needle summary);
- changing the view (context, models, KV heads, layer, batch, model, compression) changes the sentences;
- bad input (no model, no plan) raises ValueError with a sentence.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from core.accounting import planner as pl
from core.accounting import roofline as rl
from core.accounting import totals as acc
from core.accounting.claims import v4_claims
from core.accounting.plan_inputs import plan_inputs
from core.lab import inside, lowrank, quantlab
from core.lab.sparse import flops_vs_context
from core.model.gpus import GPUS
from core.model.presets import load_preset
from core.model.units import fmt_bytes
from core.view import takeaways as tk
from core.view.frames import CONTEXTS
from core.view.urlstate import ComputeState, InsideState, OverviewState, PlannerState

ROOT = Path(__file__).resolve().parents[1]


def well_formed(lines: list[str]) -> None:
    assert 2 <= len(lines) <= 3, lines
    assert all(isinstance(x, str) and x.endswith(".") for x in lines), lines


# ----------------------------------------------------------------------------- Overview


def overview(models, context=131_072, kv="bf16", batch=1, gpu="H200"):
    s = OverviewState(tuple(models), context, gpu, kv, batch)
    return tk.overview(s, {m: load_preset(m) for m in models}, GPUS[gpu])


def test_overview_states_the_ratio_the_issue_asks_for():
    """DeepSeek-V3 vs Llama-3.1-70B: 4.66x fewer bytes, with both caches and how many fit on an H200."""
    lines = overview(["llama-3.1-70b", "deepseek-v3"])
    well_formed(lines)
    llama = acc.kv_cache_bytes(load_preset("llama-3.1-70b"), 131_072)
    v3 = acc.kv_cache_bytes(load_preset("deepseek-v3"), 131_072)
    assert f"{llama / v3:.2f}x" == "4.66x"
    assert "deepseek-v3 caches 4.66x fewer bytes per sequence than llama-3.1-70b" in lines[0]
    assert fmt_bytes(llama) in lines[0] and fmt_bytes(v3) in lines[0]
    gpu = GPUS["H200"].memory_bytes
    assert f"{gpu // v3:,} sequences of deepseek-v3" in lines[1] and f"{gpu // llama:,} sequences of llama" in lines[1]


def test_overview_follows_the_view():
    a = overview(["llama-3.1-70b", "deepseek-v3"])
    assert overview(["llama-3.1-70b", "deepseek-v3"], context=4096) != a
    assert overview(["llama-3.1-70b", "deepseek-v3"], kv="fp8") != a
    assert overview(["llama-3.1-70b", "deepseek-v4-pro"]) != a
    batch = overview(["llama-3.1-70b", "deepseek-v3"], batch=8)
    assert len(batch) == 3 and batch[:2] == a  # the batch adds what it would take of the GPU
    share = 8 * acc.kv_cache_bytes(load_preset("llama-3.1-70b"), 131_072) / GPUS["H200"].memory_bytes
    assert f"{share:.0%} of one H200" in batch[2]
    one = overview(["deepseek-v3"])
    well_formed(one)
    assert "one sequence of deepseek-v3 caches" in one[0]
    with pytest.raises(ValueError, match="at least one model"):
        tk.overview(OverviewState(), {}, GPUS["H200"])


def test_hybrid_state_is_counted_in_the_overview():
    """A hybrid's fixed state joins its cache, as the Overview's fit column counts it."""
    spec = load_preset("qwen3-next-80b-a3b")
    per_seq = acc.kv_cache_bytes(spec, 1024) + acc.state_bytes(spec)
    lines = overview(["qwen3-next-80b-a3b", "llama-3.1-70b"], context=1024)
    assert fmt_bytes(per_seq) in lines[0]


# ----------------------------------------------------------------------------- Planner


def plans_for(s: PlannerState):
    g = GPUS[s.gpu]
    hw = pl.Hardware(s.gpu, g.memory_bytes, g.bandwidth_tb_s * 1e12, s.n_gpus, s.utilization / 100, 0)
    specs = {m: load_preset(m) for m in s.models}
    alloc = plan_inputs(s.plan_settings()).allocator  # the page's: vLLM's defaults for the GPU
    plans = {
        m: pl.plan(sp, hw, s.context, s.batch, s.kv_dtype, s.weight_dtype, s.layout, pl.Parallelism.auto(sp, 8), alloc)
        for m, sp in specs.items()
    }
    return plans, specs


def test_planner_concurrency_limits_and_copies_are_the_plans():
    s = PlannerState()
    plans, specs = plans_for(s)
    lines = tk.planner(s, plans, specs)
    well_formed(lines)
    for m, p in plans.items():
        assert f"{m} {p.max_concurrency:,.2f}" in lines[0]
    least = min(plans, key=lambda m: plans[m].max_concurrency)
    p = plans[least]
    weights = "released: fp8, bf16 embedding and lm_head" if least == "deepseek-v3" else "released: bf16"
    share = f"{p.weights_bytes_per_gpu / p.usable_bytes:.0%}"
    assert f"What limits {least}: its weights ({weights}) take {share}" in lines[1]
    v3 = plans["deepseek-v3"]
    assert v3.replication > 1  # MLA's latent is whole on every TP rank
    assert f"Under TP{v3.parallel.tp}, deepseek-v3 keeps {v3.replication:.3g} copies" in lines[2]
    assert f"{v3.pooled_concurrency:,.2f} requests, not {v3.max_concurrency:,.2f}" in lines[2]


def test_planner_names_the_weights_chosen():
    """DeepSeek-V3's weights as released are not 'fp8': the sentence names the weights the plan used."""
    for w, said in (("native", "released: fp8, bf16 embedding and lm_head"), ("fp8", "fp8")):
        s = PlannerState(models=("deepseek-v3",), weight_dtype=w)
        assert f"What limits deepseek-v3: its weights ({said}) take " in tk.planner(s, *plans_for(s))[1]


def test_planner_follows_the_view():
    s = PlannerState()
    a = tk.planner(s, *plans_for(s))
    s2 = PlannerState(context=32_768)
    assert tk.planner(s2, *plans_for(s2)) != a
    s3 = PlannerState(models=("llama-3.1-70b",))
    one = tk.planner(s3, *plans_for(s3))
    well_formed(one)
    assert "No model here keeps more than one copy" in one[2]
    with pytest.raises(ValueError, match="at least one plan"):
        tk.planner(s, {}, {})


def test_planner_says_which_vllm_limit_binds():
    """A request longer than max_model_len runs nowhere; short requests are capped by max_num_seqs; with
    neither binding, the takeaways say nothing about them (the default view)."""
    s = PlannerState(models=("qwen3-235b-a22b", "llama-3.1-70b"))
    lines = tk.planner(s, *plans_for(s))
    well_formed(lines)
    assert (
        "qwen3-235b-a22b serves requests of at most 40,960 tokens (its max_model_len), so none of 131,072" in (lines[1])
    )
    short = PlannerState(models=("llama-3.1-70b",), context=1024)
    plans, specs = plans_for(short)
    p = plans["llama-3.1-70b"]
    assert (
        f"runs at most {p.max_num_seqs:,} per engine: {p.max_running_requests:,} at once"
        in tk.planner(short, plans, specs)[1]
    )
    assert not any(
        "max_model_len" in x or "scheduler" in x for x in tk.planner(PlannerState(), *plans_for(PlannerState()))
    )


# ----------------------------------------------------------------------------- Inside MLA


def inside_runs(s: InsideState) -> dict:
    cfg = inside.InsideConfig(s.d_model, s.n_heads, s.n_kv_heads, s.head_dim, s.kv_lora_rank, s.rope_dim, None, 16)
    x = inside.random_input(cfg)
    runs = inside.run_designs(cfg, x, torch.float64, "cpu")
    return {
        k: {"nbytes": r.cache_nbytes, "prefill": r.prefill_flops, "decode": r.decode_flops} for k, r in runs.items()
    }


def test_inside_mla_cache_and_flops_ratios_are_the_measured_ones():
    s = InsideState(seq_len=16)
    runs = inside_runs(s)
    lines = tk.inside_mla(s, runs)
    well_formed(lines)
    b = 8  # float64
    mha, gqa = 2 * s.n_heads * s.head_dim * b, 2 * s.n_kv_heads * s.head_dim * b
    mla = (s.kv_lora_rank + s.rope_dim) * b
    materialised, absorbed = inside.PARTS["MLA"]
    assert runs["MHA"]["nbytes"] == 16 * mha and runs[absorbed]["nbytes"] == 16 * mla  # measured = formula
    assert f"Per token MLA caches {fmt_bytes(mla)}" in lines[0]
    assert f"{mha / mla:.2f}x less than MHA's {fmt_bytes(mha)}" in lines[0]
    assert f"{gqa / mla:.2f}x less than GQA's {fmt_bytes(gqa)} with {s.n_kv_heads} KV heads" in lines[0]
    r = runs[absorbed]["prefill"] / runs[materialised]["prefill"]
    assert f"On the 16-token prompt the absorbed path costs {r:.2f}x the FLOPs" in lines[1]
    assert f"{runs[absorbed]['decode'] / runs[materialised]['decode']:.2f}x" in lines[1]


def test_inside_mla_follows_the_view():
    s = InsideState(seq_len=16)
    a = tk.inside_mla(s, inside_runs(s))
    s2 = InsideState(seq_len=16, n_kv_heads=4)
    assert tk.inside_mla(s2, inside_runs(s2)) != a


# ----------------------------------------------------------------------------- Latent rank


def energy_frame(head_matrices: dict[str, torch.Tensor]) -> pd.DataFrame:
    rows = []
    for name, sv in head_matrices.items():
        rows += [{"matrix": name, "rank": i + 1, "energy": float(e)} for i, e in enumerate(lowrank.energy(sv))]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def mini():
    from core.lab.minilm import load_minilm

    return load_minilm()


def latent_lines(mini, layer: int) -> tuple[list[str], lowrank.Crossing, pd.DataFrame]:
    from core.lab.minilm import tokenize
    from core.lab.passages import load_passages

    ids = tokenize(load_passages()[0].text, 512)
    w, a = lowrank.spectra(mini, layer), lowrank.activation_spectra(mini, layer, ids)
    en = energy_frame({"[W_K; W_V] (weights)": w.joint, "[K | V] on the text (activations)": a.joint})
    cross = lowrank.error_crossing(lowrank.shipped_sweeps()[f"{layer}|0"], tk.ERROR_SHARE)
    mha = lowrank.mha_cache_bytes_per_token(mini, "bf16")
    return tk.latent_rank(layer, "all heads jointly", cross, mha, en), cross, en


def test_latent_rank_10_percent_rank_and_its_cache(mini):
    lines, cross, _ = latent_lines(mini, 0)
    well_formed(lines)
    sweep = lowrank.shipped_sweeps()["0|0"]
    first = int(sweep[sweep.out_error < 0.10]["rank"].min())
    assert cross.rank == first
    b = lowrank.cache_bytes_per_token(first, "bf16")
    assert b == 2 * first
    assert f"first drops below 10% at d_c = {first} (measured: every rank from 1 to 384)" in lines[0]
    assert f"{b:,} B per token per layer in bf16, {b / 1536:.0%} of MHA's 1,536 B" in lines[0]
    w90 = lowrank.rank_for_energy(lowrank.spectra(mini, 0).joint, 0.9)
    assert f"against {w90} for the weights" in lines[1]


def test_latent_rank_follows_the_layer_and_says_when_no_rank_crosses(mini):
    assert latent_lines(mini, 0)[0] != latent_lines(mini, 5)[0]
    _, _, en = latent_lines(mini, 0)
    sweep = pd.DataFrame({"rank": [1, 2, 4], "out_error": [0.9, 0.5, 0.2]})
    none = tk.latent_rank(0, "head 3", lowrank.error_crossing(sweep), 1536, en)
    assert none[0] == "No measured rank brings layer 0's output error below 10% (measured: 1, 2, 4)."
    assert "For head 3," in none[1]


# ----------------------------------------------------------------------------- Compute


def compute(gpu="H200", context=32_768, batch=1):
    s = ComputeState(gpu, context, batch)
    pts = rl.roofline_points(rl.designs(load_preset), GPUS[gpu], context, batch)
    return tk.compute(s, GPUS[gpu], pts), pts


def test_compute_intensities_and_ridge_are_the_roofline_points():
    lines, pts = compute()
    well_formed(lines)
    g = GPUS["H200"]
    assert f"the ridge sits at {g.bf16_tflops / g.bandwidth_tb_s:.0f} FLOP/byte" in lines[0]
    whole = pts[pts.what == "whole decode step"].set_index("design")
    hi = whole["intensity"].idxmax()
    assert f"the whole decode step of {hi} does {whole.loc[hi, 'intensity']:.1f} FLOP/byte" in lines[0]
    core = pts[pts.what == "attention core"].set_index("design")["intensity"]
    assert f"{core.idxmax()} does {core.max():.0f} FLOP/byte" in lines[1]
    fast = whole["tokens_per_s"].idxmax()
    assert f"{whole.loc[fast, 'tokens_per_s']:,.0f} tokens/s" in lines[2]


def test_compute_follows_the_view():
    a = compute()[0]
    assert compute(batch=256)[0] != a
    assert compute(gpu="A100 80GB" if "A100 80GB" in GPUS else next(g for g in GPUS if g != "H200"))[0] != a
    assert compute(context=1024)[0] != a


# ----------------------------------------------------------------------------- Sparse


def test_sparse_claims_and_indexer_share_are_the_engines():
    claims = {p: v4_claims(precision=p) for p in ("bf16", "production")}
    parts = flops_vs_context({"V3.2": load_preset("deepseek-v3.2"), "V4-Pro": load_preset("deepseek-v4-pro")}, CONTEXTS)
    lines = tk.sparse(claims, parts)
    well_formed(lines)
    assert (
        f"{claims['bf16'].kv_fraction:.1%} of V3.2's in bf16 ({1 / claims['bf16'].kv_fraction:.1f}x less)" in lines[0]
    )
    assert f"{claims['production'].kv_fraction:.1%} in production dtypes" in lines[0]
    assert f"It needs {claims['bf16'].flops_fraction:.0%} of V3.2's FLOPs" in lines[1]
    at = parts[(parts.model == "V3.2") & (parts.context == 2**20)].set_index("part")["flops"]
    assert f"{at['indexer'] / at.sum():.0%} of its FLOPs per token at 1M tokens" in lines[1]
    fewer = flops_vs_context({"V3.2": load_preset("deepseek-v3.2")}, CONTEXTS[:13])  # up to 4K only
    assert tk.sparse(claims, fewer)[1] != lines[1]


# ----------------------------------------------------------------------------- Hybrid


def test_hybrid_state_share_is_the_accounting():
    spec = load_preset("qwen3-next-80b-a3b")
    lines = tk.hybrid("qwen3-next-80b-a3b", spec, 131_072)
    well_formed(lines)
    kv, state = acc.kv_cache_bytes(spec, 131_072), acc.state_bytes(spec)
    assert state > 0
    assert f"fixed state is {fmt_bytes(state)} of its {fmt_bytes(kv + state)} per request: " in lines[0]
    assert f"{state / (kv + state):.1%}." in lines[0]
    short = state / (acc.kv_cache_bytes(spec, 1024) + state)
    assert f"it is {short:.0%} of the request at 1K tokens" in lines[1]
    assert tk.hybrid("qwen3-next-80b-a3b", spec, 4096) != lines
    other = tk.hybrid("nemotron-h-56b", load_preset("nemotron-h-56b"), 131_072)
    assert other != lines


def test_hybrid_without_state_says_which_layers_grow_not_the_metric_above():
    """llama-4-scout: 36 chunked layers stop growing; the 12 global ones hold 6 GiB of the 7.12 GiB at 128K (the
    page's metric, which the takeaway does not repeat), and 1M tokens cost 49.1 GiB, 6.9x for 8x the tokens."""
    spec = load_preset("llama-4-scout")
    assert acc.state_bytes(spec) == 0
    lines = tk.hybrid("llama-4-scout", spec, 131_072)
    well_formed(lines)
    kv = acc.kv_cache_bytes(spec, 131_072)
    assert not any(fmt_bytes(kv) in line for line in lines)
    per_layer = acc.bytes_by_layer(spec.attention, 131_072)
    growing = sum(b for a, b in zip(spec.attention, per_layer, strict=True) if not a.chunk_size)
    assert lines[0].startswith("llama-4-scout keeps no fixed state, and 36 of its 48 cache layers stop growing")
    assert f"at 128K tokens the 12 that keep growing hold {growing / kv:.0%} of its cache." in lines[0]
    long = acc.kv_cache_bytes(spec, 1 << 20)
    assert lines[1] == f"At 1M tokens it grows {long / kv:.1f}x for 8x the tokens, to {fmt_bytes(long)}."
    at_1m = tk.hybrid("llama-4-scout", spec, 1 << 20)
    well_formed(at_1m)
    assert at_1m[1].startswith(f"From 1K tokens ({fmt_bytes(acc.kv_cache_bytes(spec, 1024))}) to 1M it grows ")


def test_hybrid_without_state_or_capped_layers_grows_in_step():
    spec = load_preset("glm-5.2")
    assert acc.state_bytes(spec) == 0
    lines = tk.hybrid("glm-5.2", spec, 131_072)
    well_formed(lines)
    assert "no layer caps its cache: all 78 of its cache layers keep growing" in lines[0]
    assert (
        lines[1]
        == f"At 1M tokens it grows in step with the tokens, 8x, to {fmt_bytes(acc.kv_cache_bytes(spec, 1 << 20))}."
    )


# ----------------------------------------------------------------------------- Quantized


def test_quantized_smallest_scheme_under_each_error_and_best_at_a_quarter(mini):
    from core.lab.minilm import tokenize
    from core.lab.passages import load_passages

    ids = tokenize(load_passages()[0].text, 512)
    df = quantlab.scheme_errors(mini, 0, ids)
    lines = tk.quantized(0, df)
    well_formed(lines)
    fp16 = float(df.set_index("scheme").loc["fp16", "bytes per token"])
    for line, limit in zip(lines[:2], (0.05, 0.10), strict=True):
        ok = df[df["output error"] < limit]
        best = ok.loc[ok["bytes per token"].idxmin()]
        assert f"under {limit:.0%} is {best['scheme']}: {best['bytes per token']:,.0f} B per token" in line
        assert f"{fp16 / best['bytes per token']:.2f}x smaller than fp16's {fp16:,.0f} B" in line
    cheap = df[df["bytes per token"] <= fp16 / 4]
    best = cheap.loc[cheap["output error"].idxmin()]
    assert f"{best['scheme']} does best: {best['output error']:.1%}" in lines[2]
    assert tk.quantized(3, quantlab.scheme_errors(mini, 3, ids)) != lines


def test_quantized_says_when_no_scheme_is_good_enough():
    df = pd.DataFrame({"scheme": ["fp16", "int4"], "bytes per token": [1536.0, 384.0], "output error": [0.2, 0.5]})
    lines = tk.quantized(1, df)
    assert lines[0] == "No scheme keeps layer 1's output error under 5%."
    assert lines[2] == "At a quarter of fp16's bytes or less, int4 does best: 50.0% at 384 B."


# ----------------------------------------------------------------------------- Needle


@pytest.fixture(scope="module")
def needle_results() -> dict:
    return json.loads((ROOT / "assets" / "needle" / "results.json").read_text())


def test_needle_accuracy_and_which_methods_keep_retrieval(needle_results):
    sm = pd.DataFrame(needle_results["summary"]["tiny-mla"])
    heat = pd.DataFrame(needle_results["heatmaps"]["tiny-mla|top-k (8)"])
    base = pd.DataFrame(needle_results["heatmaps"]["tiny-mla|none"])
    lines = tk.needle("tiny-mla", "top-k (8)", heat, base, sm)
    well_formed(lines)
    assert lines[0] == (
        f"top-k (8) retrieves {heat.accuracy.mean():.0%} of the needles on tiny-mla, against "
        f"{base.accuracy.mean():.0%} with the full cache."
    )
    full = int(sm[sm.method == "none"].cache_bytes.iloc[0])
    for method, rows in sm[sm.method != "none"].groupby("method"):
        ok = rows[rows.accuracy >= 0.9]
        if ok.empty:
            assert method in lines[2]
        else:
            best = ok.loc[ok.cache_bytes.idxmin()]
            assert f"{best['label']} with {fmt_bytes(int(best.cache_bytes))}, {best.cache_bytes / full:.0%}" in lines[1]
    other = pd.DataFrame(needle_results["heatmaps"]["tiny-mla|pooling (8)"])
    assert tk.needle("tiny-mla", "pooling (8)", other, base, sm)[0] != lines[0]
    assert tk.needle("tiny-mha", "top-k (8)", heat, base, pd.DataFrame(needle_results["summary"]["tiny-mha"])) != lines
