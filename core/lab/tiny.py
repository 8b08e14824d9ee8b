"""Tiny causal language models (MHA, GQA, MLA) and the needle-retrieval task they are trained on.

# B batch, T new tokens, S cached tokens, L layers, E model width, F MLP width, N vocabulary

The model is nanoGPT-shaped with the attention layers of `core.layers`: token embedding, then per block
RMSNorm -> attention -> residual, RMSNorm -> SwiGLU MLP -> residual, then a final RMSNorm and an untied
head. Positions come only from RoPE inside the attention layers, so a model trained on mixed lengths can
be asked about any length up to the longest it saw. Caches are explicit: `forward` takes and returns one
cache per layer (KVCache for MHA/GQA and materialised MLA, LatentCache for absorbed MLA), so a page can read,
quantize, drop or low-rank them between prefill and decode (`evaluate(..., cache_transform=...)`).

The task (a passkey in filler, after Mohtashami & Jaggi, arXiv 2305.16300): a sequence of `length`
tokens is

    BOS  filler ...  KEY d1 .. dk  filler ...  QUERY d1 .. dk

Filler tokens are drawn uniformly from a filler vocabulary that holds no digits; the needle is `k` random
digits placed after the KEY marker at a chosen depth; after QUERY the model must repeat the digits. The
loss is taken on the answer digits only, and accuracy is exact match of all `k` digits, decoded greedily
from the cache (chance is 10^-k).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.layers.attention import GQAttention, MLAttention, RMSNorm, cache_nbytes
from core.model.specs import GQASpec, MLASpec, check_int

# ----------------------------------------------------------------------------------------------- task


@dataclass(frozen=True)
class NeedleTask:
    """Vocabulary layout of the passkey task: 3 markers, 10 digits, then `n_filler` filler words."""

    n_digits: int = 2  # k: digits in the needle (chance of an exact match is 10^-k)
    n_filler: int = 51  # filler words (the vocabulary is 13 + n_filler tokens)

    BOS = 0
    KEY = 1
    QUERY = 2
    DIGIT0 = 3  # digits are tokens 3..12

    def __post_init__(self) -> None:
        check_int("n_digits", self.n_digits, 1, 16)
        check_int("n_filler", self.n_filler, 1, 100_000)

    @property
    def vocab_size(self) -> int:
        return self.DIGIT0 + 10 + self.n_filler

    @property
    def min_length(self) -> int:
        """BOS, KEY + needle, one filler token, QUERY + answer."""
        return 2 * self.n_digits + 4


TASK = NeedleTask()


class Batch(NamedTuple):
    tokens: Tensor  # (B, length) int64: the prompt followed by the answer digits
    answer_pos: Tensor  # (k,) positions of the answer digits (the last k), same for every row
    needle_pos: Tensor  # (B,) position of the first needle digit (the token after KEY)


def make_batch(
    n: int,
    length: int,
    seed: int | torch.Generator = 0,
    depth: float | None = None,
    task: NeedleTask = TASK,
) -> Batch:
    """`n` passkey sequences of exactly `length` tokens (prompt + k answer digits).

    `depth` in [0, 1] puts the needle at that fraction of the filler (0: right after BOS, 1: just before
    QUERY); None draws a depth per row. Randomness comes only from `seed` (an int or a Generator).
    """
    check_int("length", length, task.min_length, 1 << 20)
    if depth is not None and not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be between 0 and 1, got {depth}.")
    g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    k = task.n_digits
    n_fill = length - 2 * k - 3  # BOS, KEY, QUERY and the needle twice
    tokens = task.DIGIT0 + 10 + torch.randint(task.n_filler, (n, length), generator=g)  # (B, length)
    digits = task.DIGIT0 + torch.randint(10, (n, k), generator=g)  # (B, k)
    if depth is None:
        where = torch.randint(n_fill + 1, (n,), generator=g)  # (B,) filler tokens before KEY
    else:
        where = torch.full((n,), round(depth * n_fill), dtype=torch.long)
    key_pos = 1 + where  # (B,)
    rows = torch.arange(n)
    tokens[:, 0] = task.BOS
    tokens[rows, key_pos] = task.KEY
    needle = key_pos[:, None] + 1 + torch.arange(k)  # (B, k)
    tokens[rows[:, None], needle] = digits
    tokens[:, length - k - 1] = task.QUERY
    tokens[:, length - k :] = digits
    return Batch(tokens, torch.arange(length - k, length), key_pos + 1)


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class TinyConfig:
    """A tiny causal LM: `n_layers` blocks of attention (`spec`) and a SwiGLU MLP of width `mlp_dim`."""

    spec: GQASpec | MLASpec  # the attention of every block (MHA/GQA via GQASpec, MLA via MLASpec)
    d_model: int = 128  # E: residual width
    n_layers: int = 2
    mlp_dim: int = 256  # F: SwiGLU hidden width (3 matrices E x F)
    vocab_size: int = TASK.vocab_size
    seed: int = 0  # construction seed: same seed, same initial weights
    task: NeedleTask = field(default_factory=NeedleTask)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, GQASpec | MLASpec):
            raise ValueError(f"spec must be a GQASpec or MLASpec, got {type(self.spec).__name__}.")
        check_int("d_model", self.d_model, 1, 1 << 16)
        check_int("n_layers", self.n_layers, 1, 256)
        check_int("mlp_dim", self.mlp_dim, 1, 1 << 18)
        check_int("vocab_size", self.vocab_size, self.task.vocab_size, 1 << 20)
        check_int("seed", self.seed, 0, 2**62)

    @property
    def design(self) -> str:
        return self.spec.design

    def kv_elements_per_token(self, mode: str = "absorbed") -> int:
        """Cached elements per token per layer: 2 n_kv d_h (GQA), d_c + d_r (MLA absorbed) or
        n_h (d_nope + d_r + d_v) (MLA materialised)."""
        s = self.spec
        if isinstance(s, GQASpec):
            return 2 * s.n_kv_heads * s.head_dim
        if mode == "materialised":
            return s.n_heads * (s.qk_head_dim + s.v_head_dim)
        return s.kv_lora_rank + s.qk_rope_head_dim

    def kv_bytes_per_token(self, dtype_bytes: int = 4, mode: str = "absorbed") -> int:
        """All layers, `dtype_bytes` per element (fp32 = 4, as the model runs)."""
        return self.n_layers * self.kv_elements_per_token(mode) * dtype_bytes

    def to_json(self) -> str:
        d = asdict(self)
        d["spec_type"] = type(self.spec).__name__
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TinyConfig:
        d = json.loads(text)
        spec_cls = {"GQASpec": GQASpec, "MLASpec": MLASpec}[d.pop("spec_type")]
        return cls(spec=spec_cls(**d.pop("spec")), task=NeedleTask(**d.pop("task")), **d)


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(d_model, hidden, bias=False)  # gate
        self.w3 = nn.Linear(d_model, hidden, bias=False)  # up
        self.w2 = nn.Linear(hidden, d_model, bias=False)  # down

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: TinyConfig, layer: int, device, dtype):
        super().__init__()
        seed = cfg.seed * 1000 + layer
        self.attn_norm = RMSNorm(cfg.d_model)
        if isinstance(cfg.spec, MLASpec):
            self.attn = MLAttention(cfg.spec, cfg.d_model, seed=seed, device=device, dtype=dtype)
        else:
            self.attn = GQAttention(cfg.spec, cfg.d_model, seed=seed, device=device, dtype=dtype)
        self.mlp_norm = RMSNorm(cfg.d_model)
        self.mlp = SwiGLU(cfg.d_model, cfg.mlp_dim)

    def forward(self, x: Tensor, cache, mode: str):
        h = self.attn_norm(x)
        if isinstance(self.attn, MLAttention):
            a = self.attn.trace(h, cache, mode)
        else:
            a = self.attn.trace(h, cache)
        x = x + a.out
        return x + self.mlp(self.mlp_norm(x)), a


class TinyTrace(NamedTuple):
    logits: Tensor  # (B, T, N)
    caches: list  # one cache per layer
    probs: list[Tensor]  # per layer (B, H, T, S) attention probabilities


class TinyLM(nn.Module):
    """Token embedding, `n_layers` pre-norm blocks, final RMSNorm, untied head. Stateless: caches are
    passed in and returned, one per layer."""

    def __init__(self, cfg: TinyConfig, *, device=None, dtype=torch.float32):
        super().__init__()
        self.cfg = cfg
        device = torch.device(device or "cpu")
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, i, device, dtype) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._init_rest(device, dtype)

    def _init_rest(self, device, dtype) -> None:
        """Deterministic init of everything outside the attention layers (those seed themselves):
        unit-variance embeddings, 1/sqrt(fan_in) matrices, a down-projection and head scaled down so the
        residual stream and the initial logits stay O(1)."""
        g = torch.Generator().manual_seed(self.cfg.seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if ".attn." in name:
                    continue
                noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
                if name.endswith("norm.weight"):
                    p.copy_(torch.ones_like(noise))
                elif name == "embed.weight":
                    p.copy_(noise)
                elif name.endswith("w2.weight") or name == "head.weight":
                    p.copy_(noise / math.sqrt(p.shape[-1]) / math.sqrt(2 * self.cfg.n_layers))
                else:
                    p.copy_(noise / math.sqrt(p.shape[-1]))
        self.to(device=device, dtype=dtype)

    def trace(self, tokens: Tensor, caches: list | None = None, mode: str = "absorbed") -> TinyTrace:
        """forward, plus every layer's attention probabilities (for heatmaps)."""
        caches = caches if caches is not None else [None] * self.cfg.n_layers
        x = self.embed(tokens)  # (B, T, E)
        new, probs = [], []
        for block, cache in zip(self.blocks, caches, strict=True):
            x, a = block(x, cache, mode)
            new.append(a.cache)
            probs.append(a.probs)
        return TinyTrace(self.head(self.norm(x)), new, probs)  # logits (B, T, N)

    def forward(self, tokens: Tensor, caches: list | None = None, mode: str = "absorbed") -> tuple[Tensor, list]:
        """Logits (B, T, N) for `tokens` (B, T) after the cached tokens, and the extended caches.
        `mode` picks MLA's path (absorbed: latent cache; materialised: per-head K/V); GQA ignores it."""
        t = self.trace(tokens, caches, mode)
        return t.logits, t.caches


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------ save/load


def save(model: TinyLM, path: str | Path, info: dict | None = None) -> None:
    """Weights as safetensors; the config (and optional training `info`) as JSON in the metadata."""
    from safetensors.torch import save_file

    meta = {"config": model.cfg.to_json()}
    if info is not None:
        meta["info"] = json.dumps(info, sort_keys=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)


def read_metadata(path: str | Path) -> tuple[TinyConfig, dict]:
    """The config and the training info stored in a checkpoint, without loading its weights."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise ValueError(f"{path} has no 'config' metadata: not a checkpoint written by core.tiny.save.")
    return TinyConfig.from_json(meta["config"]), json.loads(meta.get("info", "{}"))


def load(path: str | Path, *, device=None, dtype=torch.float32) -> TinyLM:
    from safetensors.torch import load_file

    cfg, _ = read_metadata(path)
    model = TinyLM(cfg, device=device, dtype=dtype)
    model.load_state_dict(load_file(str(path)))
    model.to(dtype=dtype)
    return model.eval()


# ------------------------------------------------------------------------------------------ evaluation

CacheTransform = Callable[[int, object], object]


class EvalResult(NamedTuple):
    accuracy: float  # exact match of all k digits
    digit_accuracy: float  # fraction of digits right (each decoded from the model's own previous digits)
    answer_loss: float  # cross-entropy of the answer digits, teacher-forced through the same cache


@torch.no_grad()
def evaluate_detail(
    model: TinyLM,
    length: int,
    depth: float | None,
    n: int = 200,
    seed: int = 0,
    cache_transform: CacheTransform | None = None,
    mode: str = "absorbed",
    batch_size: int = 100,
) -> EvalResult:
    """Prefill the context (everything before QUERY) with caches, let `cache_transform(layer, cache)`
    rewrite each layer's cache once, then decode QUERY and the k answer digits greedily, each step
    appending to the (transformed) cache. Every answer digit is therefore predicted from the transformed
    cache: QUERY is the first decode step, not part of the prefill. A transform that drops tokens must
    keep `seen`: RoPE positions continue from it. Sequences come from `make_batch(n, length, seed, depth)`,
    so a seed fixes the test set."""
    task = model.cfg.task
    k = task.n_digits
    batch = make_batch(n, length, seed, depth, task)
    device = next(model.parameters()).device
    hits, digit_hits, loss = 0, 0, 0.0
    for rows in batch.tokens.to(device).split(batch_size):
        context, query, answer = rows[:, : length - k - 1], rows[:, -k - 1 : -k], rows[:, -k:]  # (B, P), (B, 1), (B, k)
        _, caches = model(context, mode=mode)  # prefill
        if cache_transform is not None:
            caches = [cache_transform(i, c) for i, c in enumerate(caches)]
        # Caches are immutable (layers concatenate), so both branches below start from the same `caches`.
        tf_logits, _ = model(torch.cat([query, answer[:, :-1]], 1), caches, mode=mode)  # (B, k, N): teacher-forced
        loss += F.cross_entropy(tf_logits.flatten(0, 1).float(), answer.flatten(), reduction="sum").item()
        step, c = model(query, caches, mode=mode)  # greedy: the model's own digits go back in
        guesses = [step[:, -1].argmax(-1)]  # (B,)
        while len(guesses) < k:
            step, c = model(guesses[-1][:, None], c, mode=mode)
            guesses.append(step[:, -1].argmax(-1))
        ok = torch.stack(guesses, 1) == answer  # (B, k)
        hits += int(ok.all(1).sum())
        digit_hits += int(ok.sum())
    return EvalResult(hits / n, digit_hits / (n * k), loss / (n * k))


def evaluate(
    model: TinyLM,
    length: int,
    depth: float | None = None,
    n: int = 200,
    seed: int = 0,
    cache_transform: CacheTransform | None = None,
    mode: str = "absorbed",
) -> float:
    """Exact-match retrieval accuracy (all k digits) at `length` and `depth` (None: random depths)."""
    return evaluate_detail(model, length, depth, n, seed, cache_transform, mode).accuracy


def cache_bytes(caches: list) -> int:
    """Bytes held by a list of per-layer caches (the `nbytes` of their tensors)."""
    return sum(cache_nbytes(c) for c in caches)


@torch.no_grad()
def kv_spectra(model: TinyLM, layer: int = 0, n: int = 16, length: int = 256, seed: int = 0) -> dict[str, Tensor]:
    """Singular values of a GQA/MHA tiny model's joint key/value projection [W_K; W_V] of `layer`, and of
    the keys and values it actually caches on passkey prompts (all kv heads joint, N tokens x 2 G D): the
    latent-rank question of the MiniLM lesson, asked of the models trained here."""
    attn = model.blocks[layer].attn
    if not isinstance(attn, GQAttention):
        raise ValueError("kv_spectra needs an MHA/GQA model; an MLA model caches its latent already.")
    w = torch.cat([attn.wk.weight, attn.wv.weight]).double()  # (2 G D, E)
    caches = model(make_batch(n, length, seed).tokens)[1]
    c = caches[layer]
    kv = torch.cat([c.k, c.v], dim=1).permute(0, 2, 1, 3).reshape(-1, 2 * c.k.shape[1] * c.k.shape[3]).double()
    return {"weights": torch.linalg.svdvals(w), "activations": torch.linalg.svdvals(kv - kv.mean(0))}
