"""DeepSeek V4 compressed attention (CSA, HCA, sliding-only): cache, reads, FLOPs and weights.

Shapes from DeepSeek's V4 `inference/model.py` (Attention, Compressor, Indexer, Block), checked by
multiplying them out against the stored-element count of the V4-Pro checkpoint and the byte total of
the V4-Flash safetensors index (both exact). Symbols: d hidden_size, H heads, hd head_dim,
qr q_lora_rank, G o_groups, R o_lora_rank, r compress ratio, coff = 2 for CSA (overlapping windows),
1 for HCA; ih/ihd indexer heads/head dim.
"""

from __future__ import annotations

from dataclasses import replace
from math import ceil

from core.accounting.base import (
    CacheRows,
    Design,
    LatexTerm,
    Params,
    check_mode,
    latex_b,
    latex_int,
    latex_scales,
    register,
    sum_min,
    tp_split,
)
from core.model.dtypes import StorageFormat
from core.model.specs import CompressedSpec


def _compressor(d: int, width: int, ratio: int) -> Params:
    """Pools `ratio` (CSA: 2 x ratio, overlapping) tokens into one entry of `width` with per-channel
    softmax gates: wkv and wgate [coff*width, d], ape [ratio, coff*width], RMSNorm [width]."""
    coff = 2 if ratio == 4 else 1
    return Params(2 * coff * width * d, ratio * coff * width + width)


def _v4_attention_params(a: CompressedSpec, d: int) -> Params:
    H, hd = a.n_heads, a.head_dim
    qr = a.q_lora_rank
    p = Params(d * qr + qr * H * hd, qr) if qr else Params(d * H * hd)  # wq_a, q_norm, wq_b
    p += Params(d * hd, hd)  # wkv: the single shared K=V head, kv_norm
    if a.o_lora_rank:  # grouped low-rank output: wo_a [G*R, H*hd/G], wo_b [d, G*R]
        p += Params(a.o_lora_rank * H * hd + a.o_groups * a.o_lora_rank * d)
    else:
        p += Params(H * hd * d)
    p += Params(0, H)  # attn_sink: one logit per head
    if a.compress_ratio:
        p += _compressor(d, hd, a.compress_ratio)
    if a.indexed:  # V4's indexer has no wk: its keys come from its own 4:1 compressor
        q_in = qr or d
        p += Params(q_in * a.index_n_heads * a.index_head_dim + d * a.index_n_heads)  # wq_b, weights_proj
        p += _compressor(d, a.index_head_dim, a.compress_ratio)
    return p


def v4_entry_bytes(attn: CompressedSpec) -> int:
    """V4 production entry (compressed entry and window token alike): non-rope channels fp8 e4m3
    with one ue8m0 scale byte per 64 values plus 1 pad byte, rope channels bf16:
    448 + 128 + 7 + 1 = 584 B (vLLM deepseek_v4_attention.py, FlashMLA sparse docs)."""
    nope = attn.head_dim - attn.qk_rope_head_dim
    return nope + 2 * attn.qk_rope_head_dim + ceil(nope / 64) + 1


def v4_index_bytes(attn: CompressedSpec) -> int:
    """V4 production indexer key: MXFP4, e2m1 packed two per byte with one ue8m0 scale per 32 values:
    64 + 4 = 68 B for index_head_dim 128 (vLLM deepseek_compressor.py; vLLM allocates 132 B)."""
    return ceil(attn.index_head_dim / 2) + ceil(attn.index_head_dim / 32)


def _sum_min_floor(n: int, m: int, k: int | None) -> int:
    """sum_{p=1}^{n} min(floor(p/m), k) (k None: no cap)."""
    if n <= 0 or m <= 0:
        return 0
    q, r = divmod(n + 1, m)  # over p = 0..n: q full blocks with values 0..q-1, then r values equal to q
    if k is None or q - 1 <= k:
        s = m * (q - 1) * q // 2
    else:
        s = m * (k * (k + 1) // 2 + (q - 1 - k) * k)
    return s + r * (q if k is None else min(q, k))


def _values(symbol: str, values: set[int]) -> str:
    """The legend entry of one symbol: d = 512, or d in {256, 512} when the layers differ."""
    if len(values) == 1:
        return f"{symbol} = {next(iter(values))}"
    return rf"{symbol} \in \{{{', '.join(map(str, sorted(values)))}\}}"


@register(CompressedSpec)
class CompressedDesign(Design):
    """Every layer keeps min(N, w) raw tokens; CSA/HCA layers add floor(N/m) entries (CSA: and their
    indexer keys). "fp8_ds_mla" stands for the production layout (fp8 entries, fp4 indexer keys)."""

    layouts = ("latent", "fp8_ds_mla")

    def cache_rows(self, attn: CompressedSpec, context: int, fmt: StorageFormat, layout: str) -> list[CacheRows]:
        n = context
        prod = layout == "fp8_ds_mla"
        entry_b = v4_entry_bytes(attn) if prod else fmt.vector_bytes(attn.head_dim)
        out = []
        if attn.compress_ratio:
            entries = n // attn.compress_ratio
            out.append(CacheRows("entries", entries, attn.head_dim, entry_b))
            if attn.indexed:
                d = attn.index_head_dim
                out.append(CacheRows("indexer keys", entries, d, v4_index_bytes(attn) if prod else fmt.vector_bytes(d)))
        out.append(CacheRows("window", min(n, attn.sliding_window), attn.head_dim, entry_b))
        return out

    def latex_terms(self, attn: CompressedSpec, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        """floor(N/m) entries (CSA: each with its indexer key) and min(N, w) window tokens."""
        prod = layout == "fp8_ds_mla"
        entry_b = v4_entry_bytes(attn) if prod else fmt.vector_bytes(attn.head_dim)
        entry = r"\text{entry}" if prod else r"d\,b"
        out = []
        if attn.compress_ratio:
            count = rf"\lfloor N/{latex_int(attn.compress_ratio)} \rfloor"
            if attn.indexed:
                index_b = v4_index_bytes(attn) if prod else fmt.vector_bytes(attn.index_head_dim)
                symbols = r"(\text{entry} + \text{indexer key})" if prod else r"(d + d^I)\,b"
                out.append(LatexTerm(symbols, entry_b + index_b, count))
            else:
                out.append(LatexTerm(entry, entry_b, count))
        out.append(LatexTerm(entry, entry_b, rf"\min(N, {latex_int(attn.sliding_window)})"))
        return out

    def latex_model(self, layers: tuple[CompressedSpec, ...], fmt: StorageFormat, layout: str) -> str | None:
        """A sum over the layer kinds, with the ratios and window from the config: CSA floor(N/m) (d + d^I) b,
        HCA floor(N/m) d b, every layer min(N, w) d b (the latent layout: every entry in the cache dtype)."""
        if layout != "latent":
            return None
        terms: dict[tuple[str, str], list[str]] = {}  # (count, symbols) -> the kind of each layer keeping it
        for a in layers:
            for t in self.latex_terms(a, fmt, layout):
                terms.setdefault((t.count, t.symbols), []).append(a.kind)
        sums = []
        for (count, symbols), kinds in terms.items():
            where = "all" if len(kinds) == len(layers) else ", ".join(dict.fromkeys(kinds))
            sums.append(rf"\sum_{{\text{{{where}}}}} {count}\,{symbols}")
        legend = [_values("d", {a.head_dim for a in layers})]
        if any(a.indexed for a in layers):
            legend.append(_values("d^I", {a.index_head_dim for a in layers if a.indexed}))
        legend.append(f"b = {latex_b(fmt)}{latex_scales(fmt)}")
        return " + ".join(sums) + r",\quad " + r",\ ".join(legend)

    def vllm_kind(self, attn: CompressedSpec) -> None:
        """vLLM gives compressed layers their own cache specs (entries, compressor state, indexer keys), which
        the planner does not model block by block."""
        return None

    def read_rows(self, attn: CompressedSpec, context: int, rows: CacheRows) -> int:
        """CSA reads every indexer key but only the top-k entries."""
        if attn.indexed and rows.tensor == "entries":
            return min(rows.rows, attn.index_topk)
        return rows.rows

    def attended(self, attn: CompressedSpec, context: int) -> int:
        entries = context // attn.compress_ratio if attn.compress_ratio else 0
        if attn.indexed:
            entries = min(entries, attn.index_topk)
        return entries + min(context, attn.sliding_window)

    def indexed_rows(self, attn: CompressedSpec, context: int) -> int:
        return context // attn.compress_ratio if attn.indexed else 0

    def index_flops_per_row(self, attn: CompressedSpec) -> int:
        return 2 * attn.index_n_heads * attn.index_head_dim if attn.indexed else 0

    def pair_flops(self, attn: CompressedSpec, mode: str) -> int:
        """One shared K=V head: 2 n_h (head_dim + head_dim)."""
        check_mode(mode)
        return 2 * attn.n_heads * 2 * attn.head_dim

    def prefill_core_flops(self, attn: CompressedSpec, n_tokens: int, mode: str, causal: bool) -> int:
        """causal: sum over queries of their window and entries; dense (what masked kernels execute):
        T x T window pairs plus T x E entries (CSA: T x min(E, k) and T x E indexer rows), E = floor(T/m)."""
        t, pf, ix = n_tokens, self.pair_flops(attn, mode), self.index_flops_per_row(attn)
        if not causal:
            e = t // attn.compress_ratio if attn.compress_ratio else 0
            if attn.indexed:
                return t * (t + min(e, attn.index_topk)) * pf + t * e * ix
            return t * (t + e) * pf
        w = sum_min(1, t, attn.sliding_window)
        if not attn.compress_ratio:
            return w * pf
        cap = attn.index_topk if attn.indexed else None
        entries = _sum_min_floor(t, attn.compress_ratio, cap)
        scored = _sum_min_floor(t, attn.compress_ratio, None) if attn.indexed else 0
        return (w + entries) * pf + scored * ix

    def params(self, attn: CompressedSpec, hidden: int) -> Params:
        return _v4_attention_params(attn, hidden)

    def tp_shard(self, attn: CompressedSpec, tp: int) -> CompressedSpec:
        """Query heads and output groups split over the ranks; the one shared K=V entry, the window and
        the indexer keys are cached whole on every rank (as MLA's latent)."""
        heads = tp_split("the attention heads", attn.n_heads, tp)
        return replace(attn, n_heads=heads, o_groups=tp_split("the output groups (o_groups)", attn.o_groups, tp))

    def describe(self, attn: CompressedSpec, layers: str, multi: bool) -> str:
        a = attn
        if a.compress_ratio == 0:
            s = (
                f"Sliding-only ({layers}): keeps the last {a.sliding_window} tokens, "
                f"one {a.head_dim}-wide K=V entry each"
            )
        elif a.indexed:
            s = (
                f"CSA ({layers}): pools every {a.compress_ratio} tokens (overlapping windows of "
                f"{2 * a.compress_ratio}) into one {a.head_dim}-wide K=V entry with a {a.index_head_dim}-wide "
                f"indexer key; each query attends to the top {a.index_topk:,} entries"
            )
        else:
            s = (
                f"HCA ({layers}): pools every {a.compress_ratio} tokens into one {a.head_dim}-wide K=V entry; "
                "each query attends to all entries"
            )
        if a.compress_ratio:
            s += f", plus the last {a.sliding_window} raw tokens"
        return s + "."
