"""Quantized caches measured on real keys and values: what each scheme of core.quant costs in bytes
and loses in keys, values, scores, probabilities and layer output.

Data: all-MiniLM-L6-v2's real keys and values on the shipped text (core.minilm), quantized per head
(each cached vector is one head's key or value, D = 32 wide, as engines cache them), and the latents of
the same layer converted to MLA (core.lowrank.to_mla), quantized as one vector per token.

# T tokens, H heads, D head dim, E model width, C latent rank
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from torch import Tensor

from core.lab import lowrank, minilm
from core.layers import quant as qz

DEFAULT_SCHEMES = (
    "fp16", "fp8-e4m3", "fp8-e5m2", "int8-token", "int4-token", "int4-channel", "int2-group32",
    "kivi-2bit", "kivi-4bit", "tq-4bit", "tq-3.5bit", "tq-3bit", "tq-2.5bit", "tq-2bit", "tq-1bit",
    "tq-2bit+qjl", "tq-3bit+qjl",
)  # fmt: skip
LATENT_RANKS = (8, 16, 32, 64, 128, 192, 256, 384)  # the Quantized page's MLA ranks
LAYERS = 6  # all-MiniLM-L6-v2
LATENTS_FILE = Path(__file__).resolve().parents[2] / "assets" / "quantized" / "latents.json"


def shipped_latents() -> dict[str, list[dict]]:
    """`latent_errors` for every layer, passage and rank the page offers ("layer|passage|rank"), made by
    scripts/quant_latents.py; {} when the file is absent."""
    return json.loads(LATENTS_FILE.read_text()) if LATENTS_FILE.is_file() else {}


def _tv(p: Tensor, ref: Tensor) -> float:
    """Mean total-variation distance of attention rows (query distributions)."""
    return float(0.5 * (p - ref).abs().sum(-1).mean())


def _rel(x: Tensor, ref: Tensor) -> float:
    return float((x - ref).norm() / ref.norm())


def layer_kv(mini: minilm.MiniLM, layer: int, ids: Tensor) -> minilm.AttentionIO:
    """Real queries, keys, values and outputs of `layer` on token ids (T,), float64."""
    x = lowrank.layer_inputs(mini, layer, ids)[0]
    return minilm.attention_io(mini, layer, x)


def _roundtrip(preset: qz.Preset, t: Tensor, role: str) -> Tensor:
    """Quantize (H, T, D) per head and dequantize (TurboQuant+QJL: the unbiased-scores reconstruction)."""
    return preset.quantize(t, role).dequantize().to(t.dtype)


def scheme_errors(mini: minilm.MiniLM, layer: int, ids: Tensor, schemes=DEFAULT_SCHEMES) -> pd.DataFrame:
    """One row per scheme: bits per cached element (keys and values, everything included, for this many
    tokens), bytes per token per layer, and the relative errors of K, V, scores (Frobenius), the mean TV
    of the attention rows, and the relative error of the layer's attention output."""
    ref = layer_kv(mini, layer, ids)
    q, k, v = ref.q[0], ref.k[0], ref.v[0]  # (H, T, D) each
    H, T, D = k.shape
    rows = []
    for name in schemes:
        p = qz.preset(name)
        k_hat, v_hat = _roundtrip(p, k, "key"), _roundtrip(p, v, "value")
        scores, probs, out = minilm.attend(mini, layer, q[None], k_hat[None], v_hat[None])
        bits = 8 * p.packed_bytes((H, T, D)) / (2 * H * T * D)
        rows.append(
            {
                "scheme": name,
                "description": p.description,
                "bits per element": bits,
                "bytes per token": 2 * H * D * bits / 8,
                "key error": _rel(k_hat, k),
                "value error": _rel(v_hat, v),
                "score error": _rel(scores, ref.scores),
                "probability TV": _tv(probs, ref.probs),
                "output error": _rel(out, ref.out),
            }
        )
    return pd.DataFrame(rows)


def latent_errors(mini: minilm.MiniLM, layer: int, ids: Tensor, rank: int, schemes=DEFAULT_SCHEMES) -> pd.DataFrame:
    """The layer converted to MLA at `rank`, its latent c_KV (T, C) quantized by each scheme: the error of
    the layer output against the unquantized converted layer (what quantizing the latent adds) and
    against the original layer (latent rank + quantization), and bytes per token (C numbers)."""
    conv = lowrank.to_mla(mini, layer, rank)
    x = lowrank.layer_inputs(mini, layer, ids)[0]
    ref = minilm.attention_io(mini, layer, x)
    c = conv.latent(x)[0]  # (T, C)

    def run(c_kv: Tensor) -> Tensor:
        k, v = conv.keys_values(c_kv[None])
        return minilm.attend(mini, layer, ref.q, minilm.split_heads(mini, k), minilm.split_heads(mini, v))[2]

    full = run(c)
    rows = []
    for name in schemes:
        p = qz.preset(name)
        out = run(p.quantize(c, "key").dequantize().to(c.dtype))
        bits = 8 * p.key.packed_bytes(tuple(c.shape)) / c.numel()
        rows.append(
            {
                "scheme": name,
                "bits per element": bits,
                "bytes per token": rank * bits / 8,
                "error vs MLA layer": _rel(out, full),
                "error vs original layer": _rel(out, ref.out),
            }
        )
    return pd.DataFrame(rows)


def inner_product_bias(mini: minilm.MiniLM, layer: int, ids: Tensor, bits=(1, 2, 3), head: int = 0) -> pd.DataFrame:
    """On real queries and keys of one head: the estimated scores of MSE-only TurboQuant (k^_mse) and of
    the QJL-corrected estimator, against the true q . k. `ratio` = sum(estimate * truth) / sum(truth^2):
    1 is unbiased, below 1 is shrunk (what an MSE quantizer does to inner products)."""
    ref = layer_kv(mini, layer, ids)
    q, k = ref.q[0, head], ref.k[0, head]  # (T, D)
    truth = q @ k.T  # (T, T)
    rows = []
    for b in bits:
        quantized = qz.TurboQuant(b, qjl=True).quantize(k)
        for label, use in (("MSE only", False), ("MSE + QJL", True)):
            est = qz.inner_product_estimate(q, quantized, qjl=use).double()
            rows.append(
                {
                    "bits": b,
                    "estimator": label,
                    "ratio": float((est * truth).sum() / (truth * truth).sum()),
                    "mean error": float((est - truth).mean()),
                    "relative error": _rel(est, truth),
                }
            )
    return pd.DataFrame(rows)


def rotation_effect(mini: minilm.MiniLM, layer: int, ids: Tensor, seed: int = 0) -> pd.DataFrame:
    """Per-channel RMS of the real keys (all heads, E channels) before and after a random orthogonal
    rotation (core.quant.random_rotation): rotation spreads outlier channels' energy over all channels,
    so one scale per vector fits every coordinate."""
    ref = layer_kv(mini, layer, ids)
    k = ref.k[0].transpose(0, 1).reshape(-1, mini.hidden_size)  # (T, E)
    r = qz.random_rotation(mini.hidden_size, seed).to(k.dtype)
    rows = []
    for label, m in (("before rotation", k), ("after rotation", k @ r.T)):
        rms = m.pow(2).mean(0).sqrt()  # (E,)
        for i, val in enumerate(rms.tolist()):
            rows.append({"channel": i, "when": label, "rms": val})
    return pd.DataFrame(rows)


def outlier_ratio(df: pd.DataFrame) -> dict[str, float]:
    """max / median channel RMS, before and after rotation."""
    return {w: float(g.rms.max() / g.rms.median()) for w, g in df.groupby("when")}


def kv_bytes_per_token_fp16(mini: minilm.MiniLM) -> int:
    return 2 * mini.hidden_size * 2


def labelled(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with its "scheme" column in the names a visitor reads (core.layers.quant.LABELS): the planner's cache
    dtype names where the preset stores what that dtype counts ("tq3.5", "fp8"), the same style elsewhere."""
    return df.assign(scheme=df["scheme"].map(qz.label))


def shared_with_planner(schemes=DEFAULT_SCHEMES) -> dict[str, str]:
    """The schemes shown here that are one of the planner's cache dtypes, label -> the dtype's name: the
    same bytes per stored vector (tests/test_quant.py checks each against core.model.dtypes)."""
    return {qz.label(s): d for d, s in qz.DTYPE_SCHEMES.items() if s in schemes}
