"""DeepSeek V4 specifics: the weights of one compressed attention block and of the hyper-connections.

Shapes from DeepSeek's V4 `inference/model.py` (Attention, Compressor, Indexer, Block), checked by
multiplying them out against the stored-element count of the V4-Pro checkpoint and the byte total of
the V4-Flash safetensors index (both exact). Symbols: d hidden_size, H heads, hd head_dim,
qr q_lora_rank, G o_groups, R o_lora_rank, r compress ratio, coff = 2 for CSA (overlapping windows),
1 for HCA; ih/ihd indexer heads/head dim.
"""

from __future__ import annotations

from core.accounting import Params
from core.specs import CompressedSpec


def _compressor(d: int, width: int, ratio: int) -> Params:
    """Pools `ratio` (CSA: 2 x ratio, overlapping) tokens into one entry of `width` with per-channel
    softmax gates: wkv and wgate [coff*width, d], ape [ratio, coff*width], RMSNorm [width]."""
    coff = 2 if ratio == 4 else 1
    return Params(2 * coff * width * d, ratio * coff * width + width)


def v4_attention_params(a: CompressedSpec, d: int) -> Params:
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


def hyper_connection_params(d: int, n_layers: int, hc_mult: int) -> int:
    """mHC: per block (attention and FFN) fn [(2+hc)*hc, hc*d], base [(2+hc)*hc], scale [3];
    the head adds fn [hc, hc*d], base [hc], scale [1]."""
    mix = (2 + hc_mult) * hc_mult
    per_block = mix * hc_mult * d + mix + 3
    return 2 * per_block * n_layers + hc_mult * hc_mult * d + hc_mult + 1
