"""The engine's answers to the workshop's questions: each one computed by the same accounting, layers and
shipped runs the pages use (never a typed-in number), with one sentence on why that quotes the numbers.

A question in assets/workshop/questions.json names its answer function here by key; `ANSWERS` is the only
registry, and a test checks that every question's key exists and every answer lies inside the question's
own input range (so the truth can always be typed in).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from core.accounting import planner as pl
from core.accounting import roofline as rf
from core.accounting import totals as acc
from core.accounting.claims import v4_claims
from core.lab import inside, lowrank, minilm, needle
from core.lab import quantlab as ql
from core.lab import realquality as rq
from core.lab.passages import load_passages
from core.model.gpus import GPUS
from core.model.presets import load_preset
from core.model.specs import LinearAttentionSpec
from core.model.units import fmt_bytes

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = 131_072  # "128K tokens" in every question that says so
FOUND = 0.5  # a method "finds" the needle when at least half the prompts are answered right


@dataclass(frozen=True)
class Answer:
    value: float | None  # a number question's answer, in the question's unit
    choice: str | None  # a choice question's answer: one of its choices, exactly
    shown: str  # the answer as a presenter would say it ("4.66x", "10 caches")
    why: str  # one sentence with the numbers behind it


def _number(value: float, shown: str, why: str) -> Answer:
    return Answer(float(value), None, shown, why)


def _choice(choice: str, why: str) -> Answer:
    return Answer(None, choice, choice, why)


# ----------------------------------------------------------------------------- Overview


def llama_caches_on_h200() -> Answer:
    spec, gpu = load_preset("llama-3.1-70b"), GPUS["H200"]
    kv = acc.kv_cache_bytes(spec, CONTEXT, 1, "bf16")
    n, a = gpu.memory_bytes // kv, spec.attention[0]
    return _number(
        n,
        f"{n} caches",
        f"One 128K-token Llama-3.1-70B cache is {fmt_bytes(kv)} in bf16 ({spec.n_layers} layers x 2 x "
        f"{a.n_kv_heads} kv heads x {a.head_dim} x 2 B per token); {gpu.memory_gb:g} GB holds "
        f"{gpu.memory_bytes / kv:.2f} of them, before a single weight.",
    )


def v3_vs_llama_bytes() -> Answer:
    llama, v3 = load_preset("llama-3.1-70b"), load_preset("deepseek-v3")
    a, b = acc.kv_bytes_per_token(llama, "bf16"), acc.kv_bytes_per_token(v3, "bf16")
    g, m = llama.attention[0], v3.attention[0]
    return _number(
        a / b,
        f"{a / b:.2f}x",
        f"Llama-3.1-70B caches {a:,} B per token (keys and values of {g.n_kv_heads} kv heads in {llama.n_layers} "
        f"layers), DeepSeek-V3 {b:,} B (one {m.kv_lora_rank}-wide latent and a {m.qk_rope_head_dim}-wide rope key in "
        f"{v3.n_layers} layers): {a / b:.2f}x fewer bytes.",
    )


def v4_kv_share() -> Answer:
    c = v4_claims(precision="bf16")
    pct = 100 * c.kv_fraction
    return _number(
        pct,
        f"{pct:.1f}%",
        f"At 1M tokens V3.2 caches {fmt_bytes(c.v32_kv_bytes)} and V4-Pro {fmt_bytes(c.v4_kv_bytes)} in bf16 "
        f"({pct:.1f}%): V4 pools 4 or 128 tokens into one entry. DeepSeek's 10% also counts V4's fp8/fp4 storage.",
    )


# ----------------------------------------------------------------------------- Planner


def _v3_plan(dp_attention: bool) -> pl.Plan:
    gpu = GPUS["H200"]
    spec = load_preset("deepseek-v3")
    hw = pl.Hardware(gpu.name, gpu.memory_bytes, gpu.bandwidth_tb_s * 1e12, 8)
    par = pl.Parallelism.for_gpus(8, 1 if dp_attention else 8, 1, dp_attention)
    return pl.plan(spec, hw, CONTEXT, 1, "auto", "native", "latent", par)


def v3_tp8_requests() -> Answer:
    p = _v3_plan(False)
    return _number(
        p.max_concurrency,
        f"{p.max_concurrency:.2f} requests",
        f"Under TP8 each GPU keeps the whole latent of every request (it cannot be split by head), so 8 GPUs hold "
        f"{p.max_concurrency:.2f} requests of 128K, not the {p.pooled_concurrency:.2f} that pooling their memory "
        "suggests.",
    )


def v3_dpa_requests() -> Answer:
    p, tp8 = _v3_plan(True), _v3_plan(False)
    return _number(
        p.max_concurrency,
        f"{p.max_concurrency:.2f} requests",
        f"With DP-attention each GPU caches only its own requests' latents: {p.max_concurrency:.2f} requests of "
        f"128K against {tp8.max_concurrency:.2f} under TP8, for more weights per GPU.",
    )


# ----------------------------------------------------------------------------- Inside MLA


@cache
def _inside_runs():
    """The MLA layer at the Inside MLA page's defaults: {"materialised": run, "absorbed": run}, config."""
    cfg = inside.InsideConfig()
    runs = inside.run_designs(cfg, inside.random_input(cfg), parts=("MLA",))
    return {("absorbed" if k.endswith("absorbed") else "materialised"): r for k, r in runs.items()}, cfg


def mla_caches_less() -> Answer:
    runs, cfg = _inside_runs()
    mat, ab = runs["materialised"].cache_nbytes, runs["absorbed"].cache_nbytes
    winner = "the same" if ab == mat else "absorbed" if ab < mat else "materialised"
    return _choice(
        winner,
        f"At the page's defaults ({cfg.seq_len} tokens, {cfg.n_heads} heads, d_c = {cfg.kv_lora_rank}) the absorbed "
        f"path caches {fmt_bytes(ab)} (latent + rope key) and the materialised one {fmt_bytes(mat)} (per-head K "
        f"and V): {mat / ab:.1f}x.",
    )


def mla_prefill_cheaper() -> Answer:
    runs, cfg = _inside_runs()
    mat, ab = runs["materialised"].prefill_flops, runs["absorbed"].prefill_flops
    winner = "the same" if ab == mat else "materialised" if mat < ab else "absorbed"
    return _choice(
        winner,
        f"Measured by FlopCounterMode on a {cfg.seq_len}-token prompt: materialised {mat:,} FLOPs, absorbed {ab:,} "
        f"({ab / mat:.2f}x). When every query meets every key, attending in the {cfg.kv_lora_rank}-wide latent "
        f"costs more per pair than {cfg.n_heads} heads of {cfg.head_dim}.",
    )


# ----------------------------------------------------------------------------- Latent rank


def _sweep(layer: int = 0, passage: int = 0):
    return lowrank.shipped_sweeps()[f"{layer}|{passage}"]


def rank_below_10pct() -> Answer:
    df = _sweep()
    ok = df[df["out_error"] < 0.10].sort_values("rank")
    if ok.empty:
        raise ValueError("no measured rank of layer 0 brings the output error below 10%.")
    row = ok.iloc[0]
    r = int(row["rank"])
    prev = df[df["rank"] < r].sort_values("rank")
    before = f", {prev.iloc[-1]['out_error']:.1%} at {int(prev.iloc[-1]['rank'])}" if len(prev) else ""
    return _number(
        r,
        f"d_c = {r}",
        f"MiniLM's layer 0 converted by joint SVD, measured on the first text: output error {row['out_error']:.1%} "
        f"at rank {r}{before}. A latent of {r} caches {row['cache_share']:.0%} of MHA's bytes: a model trained "
        "without a latent does not squeeze far without fine-tuning.",
    )


# ----------------------------------------------------------------------------- Compute


def v3_core_intensity() -> Answer:
    gpu = GPUS["H200"]
    v3 = load_preset("deepseek-v3")
    d = rf.RooflineDesign("MLA absorbed (DeepSeek-V3)", v3, "absorbed", "latent")
    s = rf.decode_step(d, 32_768, 1)
    ridge = gpu.bf16_tflops / gpu.bandwidth_tb_s
    n_h = v3.attention[0].n_heads
    gqa = rf.decode_step(rf.RooflineDesign("GQA", load_preset("llama-3.1-70b")), 32_768, 1)
    return _number(
        s.core_intensity,
        f"{s.core_intensity:.0f} FLOP/B",
        f"Every head reads the same latent: {s.core_flops:,} FLOPs over {s.cache_bytes:,} cached bytes at 32K tokens "
        f"= {s.core_intensity:.0f} FLOPs per byte (about 2 n_h = {2 * n_h}, less the rope key's share), against "
        f"GQA's {gqa.core_intensity:.0f}; "
        f"the H200's ridge is {ridge:.0f}.",
    )


# ----------------------------------------------------------------------------- Sparse


def v32_attended_share() -> Answer:
    spec = load_preset("deepseek-v3.2")
    attn = spec.attention[0]
    k = acc.attended(attn, CONTEXT)
    pct = 100 * k / CONTEXT
    return _number(
        pct,
        f"{pct:.2f}%",
        f"V3.2's indexer scores all {CONTEXT:,} cached tokens and each query attends to the top {k:,}: {pct:.2f}% "
        "of the cache is read by the attention core, but the whole cache is still kept.",
    )


# ----------------------------------------------------------------------------- Hybrid


def qwen3_next_state_share() -> Answer:
    spec = load_preset("qwen3-next-80b-a3b")
    kv, state = acc.kv_cache_bytes(spec, CONTEXT, 1, "bf16"), acc.state_bytes(spec, 1)
    pct = 100 * state / (kv + state)
    stateful = sum(isinstance(a, LinearAttentionSpec) for a in spec.attention)
    return _number(
        pct,
        f"{pct:.1f}%",
        f"At 128K tokens one Qwen3-Next request holds {fmt_bytes(kv)} of KV cache ({spec.n_layers - stateful} "
        f"attention layers) and {fmt_bytes(state)} of fixed Gated DeltaNet state ({stateful} layers): the state is "
        f"{pct:.1f}%, and its share falls as the context grows.",
    )


# ----------------------------------------------------------------------------- Quantized


def int4_or_turboquant() -> Answer:
    mini = minilm.load_minilm()
    ids = minilm.tokenize(load_passages()[0].text, 512)
    df = ql.scheme_errors(mini, 0, ids, ("int4-token", "tq-4bit")).set_index("scheme")
    a, b = df.loc["int4-token"], df.loc["tq-4bit"]
    ea, eb = a["output error"], b["output error"]
    winner = "the same" if ea == eb else "int4 with per-token scales" if ea < eb else "TurboQuant 4-bit"
    return _choice(
        winner,
        f"On MiniLM layer 0's real keys and values: int4 with per-token scales ({a['bits per element']:.2f} bits "
        f"per number) loses {a['output error']:.1%} of the layer output, TurboQuant 4-bit "
        f"({b['bits per element']:.2f} bits) {b['output error']:.1%}.",
    )


# ----------------------------------------------------------------------------- Needle


def window_or_int4() -> Answer:
    res = json.loads((ROOT / "assets" / "needle" / "results.json").read_text())["heatmaps"]

    def at_start(label: str) -> float:
        rows = res[f"tiny-mla|{label}"]
        row = next(r for r in rows if r["length"] == 256 and r["depth"] == 0.0)
        return float(row["accuracy"])

    w = at_start(needle.Method("sliding window", 64).label)
    q = at_start(needle.Method("quantization", "int4-token").label)
    found = {"4-bit quantization": q >= FOUND, "sliding window of 64": w >= FOUND}
    winner = "both" if all(found.values()) else "neither" if not any(found.values()) else max(found, key=found.get)
    return _choice(
        winner,
        f"The tiny MLA model, 256-token prompts, needle at the start: {q:.0%} retrieved with the cache quantized "
        f"to 4 bits, {w:.0%} with a 64-token window (a window keeps only the last 64 tokens, so the needle is gone "
        f"before the question arrives). 'Finds' means at least {FOUND:.0%} of the prompts.",
    )


# ----------------------------------------------------------------------------- Real model

REAL_FAMILIES = {"quantization": "quantization", "eviction": "eviction", "low rank": "low rank (MLA, no training)"}


@cache
def _real_quarter():
    """The best method of each family with at most a quarter of the bf16 cache, from the shipped sweep."""
    df = rq.frame(rq.shipped())
    ref = df[df["family"] == "none"].set_index("method")
    quarter = ref.loc["bf16", "bytes_per_token"] / 4
    small = df[(df["family"] != "none") & (df["bytes_per_token"] <= quarter)]
    best = small.loc[small.groupby("family")["perplexity"].idxmin()].sort_values("perplexity")
    return best, ref.loc["fp32", "perplexity"], quarter


def real_family_at_quarter() -> Answer:
    best, base, quarter = _real_quarter()
    top = best.iloc[0]
    said = "; ".join(f"{r['method']} {r['perplexity']:.2f}" for _, r in best.iterrows())
    return _choice(
        REAL_FAMILIES[top["family"]],
        f"SmolLM2-135M on held-out Hamlet, perplexity {base:.2f} uncompressed; the best of each family at most "
        f"{quarter:,.0f} B per token (a quarter of bf16): {said}.",
    )


def real_quarter_cost() -> Answer:
    best, base, quarter = _real_quarter()
    top = best.iloc[0]
    rise = 100 * (top["perplexity"] / base - 1)
    return _number(
        rise,
        f"{rise:+.1f}%",
        f"The best method at a quarter of the bf16 cache ({quarter:,.0f} B per token) is {top['method']}: "
        f"perplexity {top['perplexity']:.2f} against {base:.2f} uncompressed, on 1,024 held-out tokens.",
    )


ANSWERS: dict[str, Callable[[], Answer]] = {
    f.__name__: f
    for f in (
        llama_caches_on_h200,
        v3_vs_llama_bytes,
        v4_kv_share,
        v3_tp8_requests,
        v3_dpa_requests,
        mla_caches_less,
        mla_prefill_cheaper,
        rank_below_10pct,
        v3_core_intensity,
        v32_attended_share,
        qwen3_next_state_share,
        int4_or_turboquant,
        window_or_int4,
        real_family_at_quarter,
        real_quarter_cost,
    )
}
