"""Takeaways: two or three sentences per page that a presenter would say out loud, with the current view's
numbers.

One function per page. Each takes the page's view (its state dataclass or the values its widgets hold)
and the results the page already computed, and returns plain sentences. Every number in them comes from
the engine (core.accounting, core.lab) on that view, never typed in, so a sentence changes when the view
does. Sentences name only presets, designs and schemes the engine knows, never text from a link or an
upload, so a page may render them as markdown.

A page whose controls live in an `st.fragment` must not read those controls here: the fragment reruns
alone and the takeaways at the end of the page would keep the old numbers. So the Quantized takeaways
speak of the output error (not the metric picked in its section), the Latent rank ones of the 10% rank
(not the rank picked), and the Hybrid ones are shown inside the section that holds their model and context.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from core.accounting import planner as pl
from core.accounting import totals as acc
from core.accounting.claims import PUBLISHED_FLOPS_FRACTION, PUBLISHED_KV_FRACTION, V4Claim
from core.lab import inside
from core.lab import lowrank as lr
from core.model.dtypes import weights_label
from core.model.gpus import GPU
from core.model.specs import ModelSpec
from core.model.units import fmt_bytes
from core.view.theme import token_label
from core.view.urlstate import ComputeState, InsideState, OverviewState, PlannerState

ERROR_SHARE = 0.10  # the error a presenter calls "still usable" on the Latent rank page
RETRIEVAL = 0.90  # the accuracy a needle method must keep to count as retrieving


def _times(a: float, b: float) -> str:
    """a / b as "4.66x"."""
    return f"{a / b:.2f}x"


# ----------------------------------------------------------------------------- Overview


def overview(s: OverviewState, specs: Mapping[str, ModelSpec], gpu: GPU) -> list[str]:
    """The largest and the smallest cache of the selected models at the context, and how many sequences
    of it one GPU holds (cache and fixed state only, as the page's 'fit' column)."""
    if not specs:
        raise ValueError("the Overview's takeaways need at least one model.")
    per_seq = {m: acc.kv_cache_bytes(sp, s.context, 1, s.kv_dtype) + acc.state_bytes(sp) for m, sp in specs.items()}
    big, small = max(per_seq, key=per_seq.get), min(per_seq, key=per_seq.get)
    at = f"At {token_label(s.context)} tokens in {s.kv_dtype}"
    if big == small:
        out = [f"{at}, one sequence of {big} caches {fmt_bytes(per_seq[big])}."]
    else:
        out = [
            f"{at}, {small} caches {_times(per_seq[big], per_seq[small])} fewer bytes per sequence than {big}: "
            f"{fmt_bytes(per_seq[small])} against {fmt_bytes(per_seq[big])}."
        ]

    def fit(m: str) -> str:
        n = gpu.memory_bytes // max(per_seq[m], 1)
        return f"{n:,} sequence{'s' if n != 1 else ''} of {m}" if n else f"not one sequence of {m}"

    fits = fit(small) if big == small else f"{fit(small)} but {fit(big)}"
    out.append(f"One {gpu.name} ({gpu.memory_gb:g} GB) holds the cache of {fits} at this context, before any weights.")
    if s.batch > 1:
        used = per_seq[big] * s.batch / gpu.memory_bytes
        out.append(f"The {s.batch:,} sequences asked for would need {used:.0%} of one {gpu.name} for {big}'s cache.")
    return out


# ----------------------------------------------------------------------------- Memory planner


def planner(s: PlannerState, plans: Mapping[str, pl.Plan], specs: Mapping[str, ModelSpec]) -> list[str]:
    """Concurrency of each planned model, what limits the least one, and the cache copies TP keeps."""
    if not plans:
        raise ValueError("the planner's takeaways need at least one plan.")
    most = max(plans, key=lambda m: plans[m].max_concurrency)
    least = min(plans, key=lambda m: plans[m].max_concurrency)
    each = ", ".join(f"{m} {p.max_concurrency:,.2f}" for m, p in plans.items())
    out = [f"Requests of {s.context:,} tokens that fit at once: {each}."]
    if most != least and plans[least].max_concurrency > 0:
        out[0] = out[0][:-1] + f"; {most} serves {_times(plans[most].max_concurrency, plans[least].max_concurrency)} "
        out[0] += f"as many as {least}."
    p = plans[least]
    if binds := _limit_binds(s, plans):  # a limit before the cache matters more than what limits the cache
        out += binds
    elif p.kv_budget_bytes_per_gpu < 0:
        out.append(f"{least}'s weights and reserved memory do not fit in one GPU's usable memory: no cache at all.")
    else:
        share = p.weights_bytes_per_gpu / p.usable_bytes
        out.append(
            f"What limits {least}: its weights ({weights_label(s.weight_dtype, specs[least].native_weights)}) take "
            f"{share:.0%} of each GPU's usable memory under "
            f"{p.parallel.describe()}, leaving {fmt_bytes(p.kv_budget_bytes_per_gpu)} per GPU for the cache."
        )
    copied = {m: q for m, q in plans.items() if q.replication > 1.01}
    if copied:
        m, q = max(copied.items(), key=lambda kv: kv[1].replication)
        out.append(
            f"Under TP{q.parallel.tp}, {m} keeps {q.replication:.3g} copies of each request's cache "
            f"({pl.copies_reason(specs[m], q.parallel.tp)}): pooled memory would promise "
            f"{q.pooled_concurrency:,.2f} requests, not {q.max_concurrency:,.2f}."
        )
    else:
        out.append("No model here keeps more than one copy of a request's cache under this layout.")
    return out


def _limit_binds(s: PlannerState, plans: Mapping[str, pl.Plan]) -> list[str]:
    """One sentence on the first limit vLLM enforces before the cache does, where one binds: it does not
    start, the requests are longer than its max_model_len, or its scheduler runs fewer than the cache holds."""
    for m, p in plans.items():
        if p.startup_error:
            return [f"vLLM would not start {m} with these settings; the note under its plan says why."]
    for m, p in plans.items():
        if p.max_model_len is not None and s.context > p.max_model_len:
            return [
                f"{m} serves requests of at most {p.max_model_len:,} tokens (its max_model_len), so none of "
                f"{s.context:,} runs, whatever room its cache has."
            ]
    for m, p in plans.items():
        if p.max_num_seqs is not None and p.max_running_requests < int(p.max_concurrency):
            return [
                f"{m}'s cache holds {p.max_concurrency:,.2f} requests, but vLLM's scheduler runs at most "
                f"{p.max_num_seqs:,} per engine: {p.max_running_requests:,} at once."
            ]
    return []


# ----------------------------------------------------------------------------- Inside MLA


def inside_mla(s: InsideState, runs: Mapping[str, Mapping]) -> list[str]:
    """Cache per token of MHA, GQA and absorbed MLA (measured nbytes), and the FLOPs of the absorbed path
    against the materialised one (per-head K/V rebuilt from the latent and cached per head) on the prompt."""
    materialised, absorbed = inside.PARTS["MLA"]
    mha, gqa, mla = (runs[k]["nbytes"] // s.seq_len for k in ("MHA", "GQA", absorbed))
    n, a = runs[materialised], runs[absorbed]
    return [
        f"Per token MLA caches {fmt_bytes(mla)} (its latent and rope key): {_times(mha, mla)} less than MHA's "
        f"{fmt_bytes(mha)} and {_times(gqa, mla)} less than GQA's {fmt_bytes(gqa)} with {s.n_kv_heads} KV heads.",
        f"On the {s.seq_len}-token prompt the absorbed path costs {_times(a['prefill'], n['prefill'])} the FLOPs of "
        f"the materialised one (per-head K/V rebuilt from the latent); decoding one token, "
        f"{_times(a['decode'], n['decode'])}.",
    ]


# ----------------------------------------------------------------------------- Latent rank


def latent_rank(layer: int, who: str, crossing: lr.Crossing, mha_bytes: int, energy: pd.DataFrame) -> list[str]:
    """Where the converted layer's output error first falls below 10% (`crossing`, from the sweep), its
    cache against MHA's (`mha_bytes`, per token per layer, bf16), and how many directions hold 90% of the
    energy of the weights and of the activations (`energy`, the page's cumulative shares)."""
    pct = f"{crossing.threshold:.0%}"
    if crossing.rank is None:
        out = [
            f"No measured rank brings layer {layer}'s output error below {pct} (measured: {crossing.measured_text()})."
        ]
    else:
        b = lr.cache_bytes_per_token(crossing.rank, "bf16")
        out = [
            f"Layer {layer}'s output error first drops below {pct} at d_c = {crossing.rank} "
            f"(measured: {crossing.measured_text()}): a cache of {b:,} B per token per layer in bf16, "
            f"{b / mha_bytes:.0%} of MHA's {mha_bytes:,} B."
        ]
    r90 = {}
    for name in ("[W_K; W_V] (weights)", "[K | V] on the text (activations)"):
        m = energy[(energy["matrix"] == name) & (energy["energy"] >= 0.9)]
        r90[name] = int(m["rank"].min()) if len(m) else None
    w, a = r90["[W_K; W_V] (weights)"], r90["[K | V] on the text (activations)"]
    if w is not None and a is not None:
        out.append(
            f"For {who}, 90% of the energy of the keys and values computed on this text lies in {a} directions, "
            f"against {w} for the weights: energy falls much faster than the output error."
        )
    return out


# ----------------------------------------------------------------------------- Compute & roofline


def compute(s: ComputeState, gpu: GPU, points: pd.DataFrame) -> list[str]:
    """The designs' decode intensity (whole step and attention core, `points` from roofline_points on
    this view) against the GPU's ridge point, and the best tokens/s the roof allows."""
    ridge = gpu.bf16_tflops / gpu.bandwidth_tb_s
    whole = points[points["what"] == "whole decode step"].set_index("design")
    core = points[points["what"] == "attention core"].set_index("design")["intensity"]
    hi, lo = whole["intensity"].idxmax(), whole["intensity"].idxmin()
    bound = "compute-bound" if whole.loc[hi, "intensity"] >= ridge else "still memory-bound"
    fast = whole["tokens_per_s"].idxmax()
    return [
        f"On {s.gpu} the ridge sits at {ridge:.0f} FLOP/byte; at batch {s.batch} and {token_label(s.context)} tokens "
        f"the whole decode step of {hi} does {whole.loc[hi, 'intensity']:.1f} FLOP/byte ({bound}); the lowest, "
        f"{lo}, {whole.loc[lo, 'intensity']:.1f}.",
        f"The attention core alone: {core.idxmax()} does {core.max():.0f} FLOP/byte, {core.idxmin()} "
        f"{core.min():.1f}, at any batch, since each sequence reads its own cache.",
        f"The roof lets {fast} decode at most {whole.loc[fast, 'tokens_per_s']:,.0f} tokens/s "
        f"(a step of at least {whole.loc[fast, 'step_ms']:.2f} ms).",
    ]


# ----------------------------------------------------------------------------- Sparse & compressed


def sparse(claims: Mapping[str, V4Claim], parts: pd.DataFrame) -> list[str]:
    """V4-Pro against V3.2 at 1M tokens (`claims` by precision, from v4_claims) and the share of V3.2's
    per-token FLOPs that its indexer takes (`parts`, from flops_vs_context) at 1M and at 4K tokens."""
    bf, prod = claims["bf16"], claims["production"]
    v32 = parts[parts["model"] == "V3.2"]

    def indexer_share(n: int) -> float:
        at = v32[v32["context"] == n].set_index("part")["flops"]
        return float(at["indexer"] / at.sum())

    long = int(v32["context"].max())
    return [
        f"At {token_label(bf.context)} tokens V4-Pro's KV cache is {bf.kv_fraction:.1%} of V3.2's in bf16 "
        f"({1 / bf.kv_fraction:.1f}x less) and {prod.kv_fraction:.1%} in production dtypes "
        f"({1 / prod.kv_fraction:.1f}x less); published: {PUBLISHED_KV_FRACTION:.0%}.",
        f"It needs {bf.flops_fraction:.0%} of V3.2's FLOPs per decoded token (published: "
        f"{PUBLISHED_FLOPS_FRACTION:.0%}), and V3.2's indexer is why: {indexer_share(long):.0%} of its FLOPs per "
        f"token at {token_label(long)} tokens, {indexer_share(4096):.0%} at 4K.",
    ]


# ----------------------------------------------------------------------------- Hybrid models


def hybrid(model: str, spec: ModelSpec, context: int, short: int = 1024, long: int = 1 << 20) -> list[str]:
    """The share of one request's memory that is fixed state at `context`, and how it moves between a
    `short` and a `long` context (bf16 cache, the state in its own formats)."""
    state = acc.state_bytes(spec)

    def share(n: int) -> float:
        kv = acc.kv_cache_bytes(spec, n)
        return state / (kv + state) if kv + state else 0.0

    kv = acc.kv_cache_bytes(spec, context)
    if not state:
        return _no_state(model, spec, context, short, long)
    return [
        f"At {token_label(context)} tokens {model}'s fixed state is {fmt_bytes(state)} of its "
        f"{fmt_bytes(kv + state)} per request: {share(context):.1%}.",
        f"The state does not grow: it is {share(short):.0%} of the request at {token_label(short)} tokens and "
        f"{share(long):.1%} at {token_label(long)}.",
    ]


def _no_state(model: str, spec: ModelSpec, context: int, short: int, long: int) -> list[str]:
    """A model without fixed state: what its page's KV metric does not say. Which layers stop growing (a layer
    whose cache is the same at `long` and twice `long` tokens keeps a window or a chunk) and what share of the
    cache the others hold at `context`; how the cache grows from `context` to `long` tokens (or from `short`
    to `context` when the view is at `long` or beyond)."""
    at, far, farther = (acc.bytes_by_layer(spec.attention, n) for n in (context, long, 2 * long))
    caching = [i for i, b in enumerate(far) if b]
    growing = [i for i in caching if farther[i] > far[i]]
    ctx = token_label(context)
    if len(growing) < len(caching):
        share = sum(at[i] for i in growing) / sum(at)
        pct = f"{share:.1%}" if 0.99 < share < 1 else f"{share:.0%}"  # 99.8%, not a rounded 100%
        first = (
            f"{model} keeps no fixed state, and {len(caching) - len(growing)} of its {len(caching)} cache layers "
            f"stop growing (they keep a sliding window or a chunk): at {ctx} tokens the {len(growing)} that keep "
            f"growing hold {pct} of its cache."
        )
    else:
        first = (
            f"{model} keeps no fixed state, and no layer caps its cache: all {len(caching)} of its cache layers "
            "keep growing with the context."
        )
    lo, hi = (context, long) if context < long else (short, context)
    kv_lo, kv_hi = acc.kv_cache_bytes(spec, lo), acc.kv_cache_bytes(spec, hi)
    times, tokens = kv_hi / kv_lo, hi / lo
    if abs(times / tokens - 1) < 0.005:
        growth = f"in step with the tokens, {tokens:,.0f}x"
    else:
        growth = f"{times:,.{1 if times < 10 else 0}f}x for {tokens:,.0f}x the tokens"
    if context < long:
        return [first, f"At {token_label(long)} tokens it grows {growth}, to {fmt_bytes(kv_hi)}."]
    return [first, f"From {token_label(short)} tokens ({fmt_bytes(kv_lo)}) to {ctx} it grows {growth}."]


# ----------------------------------------------------------------------------- Quantized caches


def quantized(layer: int, errors: pd.DataFrame, column: str = "output error") -> list[str]:
    """From `errors` (quantlab.scheme_errors on the view's layer and text): the smallest cache that keeps
    `column` under 5% and under 10%, and the best scheme at a quarter of fp16's bytes or less."""
    fp16 = float(errors.set_index("scheme").loc["fp16", "bytes per token"])
    out = []
    for limit in (0.05, 0.10):
        ok = errors[errors[column] < limit]
        if ok.empty:
            out.append(f"No scheme keeps layer {layer}'s {column} under {limit:.0%}.")
            continue
        best = ok.loc[ok["bytes per token"].idxmin()]
        out.append(
            f"The smallest cache that keeps layer {layer}'s {column} under {limit:.0%} is {best['scheme']}: "
            f"{best['bytes per token']:,.0f} B per token, {_times(fp16, best['bytes per token'])} smaller than fp16's "
            f"{fp16:,.0f} B ({best[column]:.1%})."
        )
    cheap = errors[errors["bytes per token"] <= fp16 / 4]
    if not cheap.empty:
        best = cheap.loc[cheap[column].idxmin()]
        out.append(
            f"At a quarter of fp16's bytes or less, {best['scheme']} does best: {best[column]:.1%} at "
            f"{best['bytes per token']:,.0f} B."
        )
    return out


# ----------------------------------------------------------------------------- Needle in a haystack


def needle(model: str, label: str, heat: pd.DataFrame, base: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The shown compression's accuracy against the full cache (`heat`, `base`: the page's heatmaps), and
    which methods keep 90% retrieval and at what smallest cache (`summary`: every method at 256 tokens)."""
    acc_now, acc_full = float(heat["accuracy"].mean()), float(base["accuracy"].mean())
    out = [f"{label} retrieves {acc_now:.0%} of the needles on {model}, against {acc_full:.0%} with the full cache."]
    full = summary[summary["method"] == "none"]
    full_bytes = int(full["cache_bytes"].iloc[0]) if len(full) else None
    keep, lose = [], []
    for method, rows in summary[summary["method"] != "none"].groupby("method", sort=False):
        ok = rows[rows["accuracy"] >= RETRIEVAL]
        if ok.empty:
            lose.append(str(method))
            continue
        best = ok.loc[ok["cache_bytes"].idxmin()]
        share = f", {best['cache_bytes'] / full_bytes:.0%} of the full cache" if full_bytes else ""
        keep.append(f"{best['label']} with {fmt_bytes(int(best['cache_bytes']))}{share}")
    if keep:
        out.append(f"These keep {RETRIEVAL:.0%} retrieval with the least cache: {'; '.join(keep)}.")
    if lose:
        out.append(f"Never at {RETRIEVAL:.0%} at any strength tried: {', '.join(lose)}.")
    return out


def real_model(df: pd.DataFrame, method: str, context: int) -> list[str]:
    """The chosen method against the uncompressed cache, and what each family loses at a 4x smaller cache
    (`df`: core.lab.realquality.frame, one row per method)."""
    ref = df[df["family"] == "none"].set_index("method")
    base, bf16 = ref.loc["fp32"], ref.loc["bf16"]
    row = df[df["method"] == method].iloc[0]
    pk = f"passkey_{context}"
    out = [
        f"{method} stores {row['vs_bf16']:.0%} of the bf16 cache ({row['bytes_per_token']:,.0f} B per token) and moves "
        f"perplexity from {base['perplexity']:.2f} to {row['perplexity']:,.2f} ({row['ppl_increase']:+,.2f}); it "
        f"finds the passkey in {row[pk]:.0%} of the trials at {context:,} tokens (uncompressed: {base[pk]:.0%})."
    ]
    quarter = df[(df["family"] != "none") & (df["bytes_per_token"] <= bf16["bytes_per_token"] / 4)]
    best = [
        quarter[quarter["family"] == f].nsmallest(1, "perplexity") for f in ("quantization", "eviction", "low rank")
    ]
    best = [b.iloc[0] for b in best if len(b)]
    if best:
        said = "; ".join(f"{b['method']} {b['ppl_increase']:+,.2f}" for b in best)
        out.append(f"At a 4x smaller cache than bf16 (at most {bf16['bytes_per_token'] / 4:,.0f} B per token), the "
                   f"best of each family raises perplexity by: {said}.")  # fmt: skip
    return out


def real_family(df: pd.DataFrame, families: tuple[str, ...], metric: str, context: int = 1024) -> list[str]:
    """The families' best and worst method on SmolLM2-135M by the metric (`df`: core.lab.realquality.frame)."""
    ref = df[df["family"] == "none"].set_index("method").loc["fp32"]
    rows = df[df["family"].isin(families)]
    if rows.empty:
        return []
    if metric == "passkey retrieval":
        col = f"passkey_{context}"
        found = rows[rows[col] >= 0.5]
        out = [f"Uncompressed, SmolLM2-135M finds the passkey in {ref[col]:.0%} of the trials at {context:,} tokens."]
        if len(found):
            best = found.loc[found["bytes_per_token"].idxmin()]
            out.append(f"The smallest cache that still finds it in at least half: {best['method']}, "
                       f"{best['bytes_per_token']:,.0f} B per token ({best[col]:.0%}).")  # fmt: skip
        lost = rows[rows[col] < 0.5]
        if len(lost):
            out.append(f"{len(lost)} of {len(rows)} settings find it in fewer than half the trials.")
        return out
    within = rows[rows["perplexity"] <= ref["perplexity"] * 1.01]
    out = []
    if len(within):
        best = within.loc[within["bytes_per_token"].idxmin()]
        out.append(
            f"The smallest cache within 1% of the uncompressed perplexity ({ref['perplexity']:.2f}): {best['method']}, "
            f"{best['bytes_per_token']:,.0f} B per token, {best['vs_bf16']:.0%} of bf16."
        )
    else:
        out.append(f"No setting here stays within 1% of the uncompressed perplexity ({ref['perplexity']:.2f}).")
    worst = rows.loc[rows["perplexity"].idxmax()]
    out.append(
        f"The worst: {worst['method']} at {worst['perplexity']:,.1f} ({worst['bytes_per_token']:,.0f} B per token)."
    )
    return out
