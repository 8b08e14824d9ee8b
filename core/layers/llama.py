"""A Llama decoder (the architecture of SmolLM2) built from the project's own GQA attention layer.

# B batch, T new tokens, S cached tokens, E model width, F MLP width, H query heads, L layers, V vocab

Each block is pre-norm: x + attn(rms(x)), then x + down(silu(gate(rms(x))) * up(rms(x))). The attention
is `core.layers.attention.GQAttention` (rotate-half RoPE, see its docstring), so a decoder's cache is a
list of the same `KVCache` objects every other page measures with `nbytes`. Like the layers, the decoder
holds no cache: it takes one per layer and returns the new ones.

`forward` can swap in other attention modules per layer (`attn=`: anything with `trace(x, cache)`, such as
the MLA layers converted from this model's weights in `core.layers.mha2mla`) and can record, per layer,
what the cache-compression methods read from a prefill (`record=True`): the attention inputs and the
attention each cached token received.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from core.layers.attention import GQAttention, RMSNorm
from core.model.specs import GQASpec

OBSERVED = 32  # queries at the end of a prefill whose attention SnapKV-style selection reads (arXiv 2404.14469)


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    d_model: int  # E
    n_layers: int  # L
    n_heads: int  # H
    n_kv_heads: int
    head_dim: int
    ffn_dim: int  # F
    rope_theta: float
    rms_eps: float
    tie_embeddings: bool = True

    @property
    def attention(self) -> GQASpec:
        return GQASpec(self.n_heads, self.n_kv_heads, self.head_dim)


class LayerRecord(NamedTuple):
    """What a prefill leaves for cache compression to read, for one layer."""

    x: Tensor  # (B, T, E): the attention's input (after the norm): what an MLA latent is computed from
    received: Tensor  # (B, H, S): attention each cached token received, summed over all queries (H2O)
    observed: Tensor  # (B, H, S): the same over the last OBSERVED queries only (SnapKV)


class DecoderOut(NamedTuple):
    logits: Tensor  # (B, T, V)
    caches: list  # one cache per layer
    records: list[LayerRecord] | None


class Block(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.attn = GQAttention(cfg.attention, cfg.d_model, rope_theta=cfg.rope_theta, device="meta")
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.gate = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.down = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)

    def mlp(self, x: Tensor) -> Tensor:
        h = self.ffn_norm(x)
        return self.down(nn.functional.silu(self.gate(h)) * self.up(h))  # (B, T, E)


class LlamaDecoder(nn.Module):
    """Built on the meta device: its weights are loaded next (`load_state_dict(..., assign=True)`)."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def logits(self, h: Tensor) -> Tensor:
        h = self.norm(h)
        w = self.embed.weight if self.lm_head is None else self.lm_head.weight
        return h @ w.T  # (B, T, V)

    @torch.no_grad()
    def forward(
        self,
        ids: Tensor,
        caches: Sequence | None = None,
        *,
        attn: Sequence[nn.Module] | None = None,
        record: bool = False,
        last: int | None = None,
    ) -> DecoderOut:
        """Run ids (B, T) after the cached tokens; returns logits (of the `last` positions only, if given: a
        prefill needs one, and the vocabulary projection is a fifth of the model's work), each layer's new
        cache and, with `record`, each layer's `LayerRecord`."""
        h = self.embed(ids)  # (B, T, E)
        new, records = [], [] if record else None
        for i, block in enumerate(self.blocks):
            x = block.attn_norm(h)
            layer = block.attn if attn is None else attn[i]
            out, cache, probs = layer.trace(x, None if caches is None else caches[i])
            if record:
                records.append(LayerRecord(x, probs.sum(2), probs[:, :, -OBSERVED:].sum(2)))
            h = h + out
            h = h + block.mlp(h)
            new.append(cache)
        return DecoderOut(self.logits(h if last is None else h[:, -last:]), new, records)


def kv_caches_nbytes(caches: Sequence) -> int:
    """Bytes the caches of all layers hold: the sum of their tensors' nbytes."""
    return sum(t.nbytes for c in caches for t in c.tensors())
