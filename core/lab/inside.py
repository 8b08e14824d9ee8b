"""Inside MLA: MHA, GQA and MLA built from the same slider values, run on the same input, measured.

Everything here is computed from the real layers of core.layers: cached tensors and their nbytes,
FLOPs counted by torch's FlopCounterMode next to the accounting formulas, materialised vs absorbed MLA from
the same weights, and why RoPE is decoupled (an experiment, not a picture).

# B batch, T tokens, S cached tokens, H heads, G kv heads, D head dim, C latent rank d_c,
# R rope dim d_h^R, E model width
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from core.accounting import totals as acc
from core.lab import minilm
from core.lab.passages import load_passages
from core.layers.attention import GQAttention, MLAttention, cache_nbytes, rope
from core.model.specs import DenseMLP, GQASpec, MLASpec, ModelSpec

DTYPE_NAMES = {torch.float32: "fp32", torch.float64: "fp64", torch.bfloat16: "bf16", torch.float16: "fp16"}
# Refuse configurations whose largest intermediate (heads x T x T scores) would exceed 8M numbers: 64 MiB
# in fp64, a few of which live at once. With the parameter and FLOP limits this keeps one run's peak to a
# few hundred MB, so the heaviest links in a row stay well inside a 1.5 GB server (measured in
# tests/test_inside_memory.py).
MAX_ELEMENTS = 8 << 20
MAX_PARAMS = 48_000_000  # attention weights of the three layers together (~384 MB in float64)
MAX_FLOPS = 30_000_000_000  # one page run: prefill + decode of the four designs


@dataclass(frozen=True)
class InsideConfig:
    d_model: int = 256  # E: model width
    n_heads: int = 8  # H: query heads
    n_kv_heads: int = 2  # G: kv heads of the GQA layer
    head_dim: int = 32  # D: per-head width (MLA: qk_nope_head_dim and v_head_dim)
    kv_lora_rank: int = 64  # C: MLA latent width d_c
    rope_dim: int = 16  # R: MLA decoupled rope width d_h^R (even)
    q_lora_rank: int | None = None  # MLA query latent, None for full rank
    seq_len: int = 64  # T: tokens
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "n_kv_heads", "head_dim", "kv_lora_rank", "seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1.")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"query heads ({self.n_heads}) must be a multiple of kv heads ({self.n_kv_heads}).")
        if self.rope_dim % 2 or self.rope_dim < 0:
            raise ValueError(f"the rope dimension ({self.rope_dim}) must be even (RoPE rotates pairs).")
        biggest = max(self.n_heads * self.seq_len * self.seq_len, self.seq_len * self.n_heads * self.kv_lora_rank)
        if biggest > MAX_ELEMENTS:
            raise ValueError(
                f"this configuration needs tensors of {biggest:,} numbers; the limit here is {MAX_ELEMENTS:,}. "
                "Use fewer heads or a shorter sequence."
            )
        specs = self.specs()
        params = sum(acc.attention_params(sp, self.d_model).total for sp in specs.values())
        runs = [
            (specs["MHA"], "absorbed"),
            (specs["GQA"], "absorbed"),
            (specs["MLA"], "materialised"),
            (specs["MLA"], "absorbed"),
        ]
        flops = sum(
            acc.prefill_core_flops(sp, self.seq_len, mode, causal=False)
            + 2 * self.seq_len * acc.attention_params(sp, self.d_model).matmul
            for sp, mode in runs
        )
        if params > MAX_PARAMS or flops > MAX_FLOPS:
            raise ValueError(
                f"this configuration has {params / 1e6:,.1f} M attention weights and needs {flops / 1e9:,.1f} GFLOP to "
                f"run; the limits here are {MAX_PARAMS / 1e6:.0f} M and {MAX_FLOPS / 1e9:.0f} GFLOP so that a slider "
                "move stays quick on a laptop. Use a narrower model, fewer heads or a shorter sequence."
            )

    def specs(self) -> dict[str, GQASpec | MLASpec]:
        return {
            "MHA": GQASpec(self.n_heads, self.n_heads, self.head_dim),
            "GQA": GQASpec(self.n_heads, self.n_kv_heads, self.head_dim),
            "MLA": MLASpec(
                self.n_heads, self.kv_lora_rank, self.head_dim, self.rope_dim, self.head_dim, self.q_lora_rank
            ),
        }


def one_layer(spec, d_model: int) -> ModelSpec:
    return ModelSpec("layer", "layer", d_model, 8, (spec,), (DenseMLP(8),))


@dataclass(frozen=True)
class CachedTensor:
    name: str
    shape: tuple[int, ...]
    nbytes: int  # measured: tensor.nbytes


@dataclass(frozen=True)
class DesignRun:
    design: str  # "MHA", "GQA", "MLA materialised", "MLA absorbed"
    cached: tuple[CachedTensor, ...]
    cache_nbytes: int  # measured
    cache_formula: int  # core.accounting.kv_cache_bytes
    prefill_flops: int  # measured by FlopCounterMode, T tokens from an empty cache
    prefill_formula: int  # attention block, dense count (what the layer executes)
    decode_flops: int  # measured: one more token after the prefill
    decode_formula: int
    probs: Tensor  # (H, T', T') attention probabilities of sequence 0, averaged over probs_block-sized blocks
    out: Tensor  # (B, T, E)
    probs_block: int = 1  # positions per heatmap cell: 1 up to 128 tokens, then T' = ceil(T / probs_block) <= 128


def _flops(fn) -> tuple[int, object]:
    with FlopCounterMode(display=False) as fc:
        res = fn()
    return fc.get_total_flops(), res


def _cache_tensors(cache) -> tuple[CachedTensor, ...]:
    names = {"KVCache": ("K", "V"), "LatentCache": ("c_KV (latent)", "k_R (rope key)", "indexer key")}[
        type(cache).__name__
    ]
    return tuple(CachedTensor(n, tuple(t.shape), t.nbytes) for n, t in zip(names, cache.tensors(), strict=False))


PARTS = {"MHA": ("MHA",), "GQA": ("GQA",), "MLA": ("MLA materialised", "MLA absorbed")}  # designs per layer


def part_config(cfg: InsideConfig, part: str) -> InsideConfig:
    """`cfg` with the fields `part`'s layer does not read set to fixed values, so that a cache keyed on it
    reruns a layer only when something it reads changes (a latent-rank move reruns MLA, not MHA or GQA).
    The input (width, length, seed) and the layer's own spec are unchanged."""
    if part == "MLA":
        return replace(cfg, n_kv_heads=1)
    fixed = replace(cfg, kv_lora_rank=1, rope_dim=0, q_lora_rank=None)
    return replace(fixed, n_kv_heads=1) if part == "MHA" else fixed


def run_designs(
    cfg: InsideConfig, x: Tensor, dtype=torch.float64, device="cpu", parts=tuple(PARTS)
) -> dict[str, DesignRun]:
    """Prefill x (B, T+1, E) minus its last token, then decode that token, for MHA, GQA and MLA (both
    modes, same weights), or only the layers in `parts`; measure caches and FLOPs and put the formulas
    beside them."""
    x = x.to(device=device, dtype=dtype)
    prefix, last = x[:, :-1], x[:, -1:]
    T = prefix.shape[1]
    dname = DTYPE_NAMES[dtype]
    out: dict[str, DesignRun] = {}
    specs = cfg.specs()
    build = {"MHA": GQAttention, "GQA": GQAttention, "MLA": MLAttention}
    layers = {k: build[k](specs[k], cfg.d_model, seed=cfg.seed, device=device, dtype=dtype) for k in parts}
    runs = [("MHA", "MHA", {}), ("GQA", "GQA", {}), ("MLA materialised", "MLA", {"mode": "materialised"})]
    runs.append(("MLA absorbed", "MLA", {"mode": "absorbed"}))
    runs = [r for r in runs if r[1] in parts]
    with torch.no_grad():
        for label, key, kw in runs:
            layer, spec = layers[key], specs[key]
            mode = kw.get("mode", "absorbed")
            layout = "materialised" if mode == "materialised" else "latent"
            pf, tr = _flops(lambda layer=layer, kw=kw: layer.trace(prefix, None, **kw))
            df, _ = _flops(lambda layer=layer, tr=tr, kw=kw: layer(last, tr.cache, **kw))
            proj = 2 * acc.attention_params(spec, cfg.d_model).matmul
            out[label] = DesignRun(
                design=label,
                cached=_cache_tensors(tr.cache),
                cache_nbytes=cache_nbytes(tr.cache),
                cache_formula=acc.kv_cache_bytes(one_layer(spec, cfg.d_model), T, x.shape[0], dname, layout),
                prefill_flops=pf,
                prefill_formula=x.shape[0] * (acc.prefill_core_flops(spec, T, mode, causal=False) + T * proj),
                decode_flops=df,
                decode_formula=x.shape[0] * (acc.decode_core_flops(spec, T + 1, mode) + proj),
                probs=(small := block_average(tr.probs[0]))[0].float().cpu(),
                out=tr.out.cpu(),
                probs_block=small[1],
            )
            del tr, pf, df
    return out


def block_average(probs: Tensor, max_side: int = 128) -> tuple[Tensor, int]:
    """(H, T, S) attention maps averaged over f x f blocks so that at most max_side x max_side cells remain
    (what a heatmap can show), and f. What a page keeps of a run is then at most H x max_side^2 numbers,
    whatever T is."""
    h, t, s = probs.shape
    f = -(-max(t, s) // max_side)
    if f == 1:
        return probs, 1
    tt, ss = -(-t // f) * f, -(-s // f) * f
    if (tt, ss) != (t, s):  # pad with zeros to whole blocks (a copy only when T is not a multiple of f)
        padded = probs.new_zeros((h, tt, ss))
        padded[:, :t, :s] = probs
        probs = padded
    return probs.reshape(h, tt // f, f, ss // f, f).mean(dim=(2, 4)), f


@dataclass(frozen=True)
class Agreement:
    max_abs_diff: float
    cosine: float


def agreement(a: Tensor, b: Tensor) -> Agreement:
    a64, b64 = a.double().flatten(), b.double().flatten()
    cos = float(torch.nn.functional.cosine_similarity(a64, b64, dim=0))
    return Agreement(float((a64 - b64).abs().max()), cos)


@dataclass(frozen=True)
class RopeExperiment:
    """Why RoPE is decoupled. With RoPE on the key rebuilt from the latent, k_t = R_t W^UK c_t, a score
    q_s . k_t = (R_s q_s)^T R_t W^UK c_t has a position matrix between the query and W^UK, so W^UK cannot be
    folded into the query once; folding it anyway (dropping R_t) is what `absorbed_error` measures."""

    decoupled_error: float  # relative output error of absorbed vs materialised, decoupled RoPE (should be ~1e-16)
    coupled_error: float  # the same when RoPE is applied to the key rebuilt from the latent
    rope_key_bytes_per_token: int  # what the decoupled rope key costs per token per layer
    latent_bytes_per_token: int


def rope_experiment(cfg: InsideConfig, x: Tensor, dtype=torch.float64) -> RopeExperiment:
    """Run MLA twice from the same weights: with DeepSeek's decoupled RoPE (materialised and absorbed agree), and
    with RoPE applied to the up-projected key (absorbing W^UK into the query then gives the wrong
    scores). x is (B, T, E)."""
    spec = cfg.specs()["MLA"]
    layer = MLAttention(spec, cfg.d_model, seed=cfg.seed, device="cpu", dtype=dtype)
    x = x.to(dtype)
    with torch.no_grad():
        materialised, _ = layer(x, mode="materialised")
        absorbed, _ = layer(x, mode="absorbed")
        coupled_materialised, coupled_absorbed = _coupled(layer, x)
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    b = torch.finfo(dtype).bits // 8
    return RopeExperiment(
        rel(absorbed, materialised),
        rel(coupled_absorbed, coupled_materialised),
        spec.qk_rope_head_dim * b,
        spec.kv_lora_rank * b,
    )


def _coupled(layer: MLAttention, x: Tensor) -> tuple[Tensor, Tensor]:
    """MLA with RoPE applied to the whole no-rope key after up-projection (and to the query), no decoupled
    part: exact (materialised) and with W^UK folded into the query as if no rotation sat in between."""
    s = layer.spec
    B, T, _ = x.shape
    H, Dn, V, C = s.n_heads, s.qk_nope_head_dim, s.v_head_dim, s.kv_lora_rank
    pos = torch.arange(T)
    q, _ = layer.query(x)
    q_nope = rope(q[..., :Dn].transpose(1, 2), pos)  # (B, H, T, Dn): RoPE on the query
    c_kv, _ = layer.latent(x, pos)  # (B, T, C)
    w = layer.wkv_b.weight.view(H, Dn + V, C)
    w_uk, w_uv = w[:, :Dn], w[:, Dn:]
    k = rope(torch.einsum("btc,hdc->bhtd", c_kv, w_uk), pos)  # (B, H, T, Dn): RoPE on the rebuilt key
    v = torch.einsum("btc,hvc->bhtv", c_kv, w_uv)  # (B, H, T, V)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    scale = 1 / math.sqrt(Dn)

    def finish(scores: Tensor) -> Tensor:
        probs = scores.masked_fill(~mask, float("-inf")).softmax(-1)  # (B, H, T, T)
        o = torch.einsum("bhts,bhsv->bthv", probs, v)
        return layer.wo(o.reshape(B, T, H * V))

    exact = finish(torch.einsum("bhtd,bhsd->bhts", q_nope, k) * scale)
    q_lat = torch.einsum("bhtd,hdc->bhtc", q_nope, w_uk)  # W^UK folded in: R_s kept, R_t lost
    folded = finish(torch.einsum("bhtc,bsc->bhts", q_lat, c_kv) * scale)
    return exact, folded


def random_input(cfg: InsideConfig, batch: int = 1, extra: int = 1) -> Tensor:
    """Seeded random tokens (B, T + extra, E) with unit-variance features."""
    g = torch.Generator().manual_seed(cfg.seed + 1000)
    return torch.randn(batch, cfg.seq_len + extra, cfg.d_model, generator=g, dtype=torch.float64)


# ----------------------------------------------------------------------------- data-flow diagrams (DOT)

_CACHED = 'style="filled,bold" fillcolor="#bfdbfe" color="#1d4ed8"'
_RECOMPUTED = 'style="filled,dashed" fillcolor="#fef3c7" color="#b45309"'
_PLAIN = 'style="filled" fillcolor="#f3f4f6" color="#6b7280"'


def _node(name: str, label: str, shape: tuple, kind: str = "plain") -> str:
    attrs = {"cached": _CACHED, "recomputed": _RECOMPUTED}.get(kind, _PLAIN)
    dims = " x ".join(str(d) for d in shape)
    tag = {"cached": "\\ncached", "recomputed": "\\nrebuilt every step"}.get(kind, "")
    return f'{name} [label="{label}\\n({dims}){tag}" shape=box {attrs}];'


def dataflow_dot(design: str, cfg: InsideConfig, batch: int = 1) -> str:
    """Graphviz DOT of one design's data flow with the live tensor shapes (B, T, ...), S = T at prefill.
    Blue: cached; amber: rebuilt from the cache at every step; grey: transient."""
    B, T, E, H, D = batch, cfg.seq_len, cfg.d_model, cfg.n_heads, cfg.head_dim
    C, R = cfg.kv_lora_rank, cfg.rope_dim
    lines = ["digraph G {", "rankdir=LR; node [fontname=Helvetica fontsize=11]; edge [fontname=Helvetica fontsize=10];"]
    lines.append(_node("x", "x", (B, T, E)))
    if design in ("MHA", "GQA"):
        G = H if design == "MHA" else cfg.n_kv_heads
        lines += [
            _node("q", "q = RoPE(x W_Q)", (B, H, T, D)),
            _node("k", "k = RoPE(x W_K)", (B, G, T, D), "cached"),
            _node("v", "v = x W_V", (B, G, T, D), "cached"),
            _node("s", "scores q k^T", (B, H, T, T)),
            _node("o", "softmax . v", (B, H, T, D)),
            _node("out", "out = o W_O", (B, T, E)),
            "x -> q; x -> k; x -> v; q -> s; k -> s; s -> o; v -> o; o -> out;",
        ]
        if G < H:
            lines.append(f'k -> s [label="shared by {H // G} heads"];')
    elif design == "MLA materialised":
        lines += [
            _node("q", "q = [x W_Q ; RoPE]", (B, H, T, D + R)),
            _node("c", "c_KV = norm(x W_DKV)", (B, T, C)),
            _node("kr", "k_R = RoPE(x W_KR)", (B, T, R)),
            _node("k", "k = [c_KV W_UK ; k_R]", (B, H, T, D + R), "cached"),
            _node("v", "v = c_KV W_UV", (B, H, T, D), "cached"),
            _node("s", "scores q k^T", (B, H, T, T)),
            _node("o", "softmax . v", (B, H, T, D)),
            _node("out", "out = o W_O", (B, T, E)),
            "x -> q; x -> c; x -> kr; c -> k; kr -> k; c -> v; q -> s; k -> s; s -> o; v -> o; o -> out;",
        ]
    else:
        lines += [
            _node("q", "q_C = (x W_Q)_nope W_UK  (absorbed)", (B, T, H, C)),
            _node("qr", "q_R = RoPE(q)", (B, T, H, R)),
            _node("c", "c_KV = norm(x W_DKV)", (B, T, C), "cached"),
            _node("kr", "k_R = RoPE(x W_KR)", (B, T, R), "cached"),
            _node("s", "scores q_C c^T + q_R k_R^T", (B, H, T, T)),
            _node("ol", "softmax . c_KV", (B, T, H, C)),
            _node("o", "o = o_C W_UV", (B, T, H, D)),
            _node("out", "out = o W_O", (B, T, E)),
            "x -> q; x -> qr; x -> c; x -> kr; q -> s; qr -> s; c -> s; kr -> s; s -> ol; c -> ol; ol -> o; o -> out;",
        ]
    lines.append("}")
    return "\n".join(lines)


def text_input(n_tokens: int, d_model: int, seed: int = 0) -> Tensor:
    """Real text as layer input (1, n_tokens, E): the shipped public-domain passages run through the
    pretrained all-MiniLM-L6-v2 encoder (core.minilm), final hidden states of consecutive passages
    joined until n_tokens, then mapped from 384 to d_model features by a fixed seeded random projection
    and standardised (so the layers see real token-to-token structure at any width)."""
    mini = minilm.load_minilm()
    chunks, have = [], 0
    with torch.no_grad():
        while have < n_tokens:
            for p in load_passages():
                h = minilm.hidden_states(mini, minilm.tokenize(p.text, 512))[-1][0]  # (T_p, 384)
                chunks.append(h)
                have += h.shape[0]
                if have >= n_tokens:
                    break
    h = torch.cat(chunks)[:n_tokens].double()  # (T, 384)
    g = torch.Generator().manual_seed(seed + 7)
    proj = torch.randn(h.shape[1], d_model, generator=g, dtype=torch.float64) / math.sqrt(h.shape[1])
    x = h @ proj  # (T, E)
    return ((x - x.mean(0)) / (x.std(0) + 1e-6))[None]  # (1, T, E)
