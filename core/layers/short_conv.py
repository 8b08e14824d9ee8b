"""Gated short convolution, as in LFM2's convolution layers.

Follows Hugging Face transformers `models/lfm2/modeling_lfm2.py` (Lfm2ShortConv.slow_forward; vLLM `short_conv.py`
ShortConv computes the same). Parameter names and shapes match that module, so its state dict loads here
unchanged.

# B batch, T new tokens, E model width, C channels (LFM2: the hidden size, so C = E), W conv kernel (conv_L_cache)

Per token t, channel by channel (no activation anywhere in the block):

    b_t, c_t, x_t = in_proj(u_t)                  three C-wide gates and values, in that order
    y_t = c_t * sum_{j<W} w_j (b x)_{t-j}         a causal depthwise conv of the gated input, gated again
    out_t = out_proj(y_t)

Each token sees only the W-1 before it, so the state is the last W-1 values of b x: a fixed size whatever the
context, and no state products (the conv's taps are weights, counted with the projections).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.layers.attention import _init
from core.layers.gated_deltanet import causal_conv
from core.model.specs import ShortConvSpec


@dataclass(frozen=True)
class ConvState:
    """State of one short-convolution layer: conv (B, C, W-1)."""

    conv: Tensor  # the last W-1 values of b x (zeros before the first token)
    seen: int  # tokens processed so far

    def tensors(self) -> tuple[Tensor, ...]:
        return (self.conv,)


class ShortConv(nn.Module):
    """LFM2 gated short convolution; forward(x, state) -> (out, state)."""

    # spec fields this layer runs (build_layer refuses others). conv_dtype is a deployment's storage format,
    # which the accounting prices; the layer holds its state in the dtype it is built with.
    RUNS = frozenset({"channels", "conv_kernel", "conv_dtype", "conv_bias"})

    def __init__(self, spec: ShortConvSpec, d_model: int, *, seed: int = 0, device=None, dtype=torch.float32):
        super().__init__()
        self.spec, self.d_model = spec, d_model
        C, bias = spec.channels, spec.conv_bias  # LFM2's conv_bias puts a bias on all three
        self.in_proj = nn.Linear(d_model, 3 * C, bias=bias)
        self.conv = nn.Conv1d(C, C, spec.conv_kernel, groups=C, bias=bias)
        self.out_proj = nn.Linear(C, d_model, bias=bias)
        _init(self, seed, device, dtype)

    def empty_state(self, batch: int) -> ConvState:
        """The state before any token: zeros (the reference's left padding)."""
        s, p = self.spec, self.out_proj.weight
        return ConvState(torch.zeros(batch, s.channels, s.conv_kernel - 1, dtype=p.dtype, device=p.device), 0)

    def forward(self, x: Tensor, state: ConvState | None = None) -> tuple[Tensor, ConvState]:
        B, T, _ = x.shape
        state = self.empty_state(B) if state is None else state
        b, c, xs = self.in_proj(x).transpose(1, 2).chunk(3, dim=1)  # (B, C, T) each
        y, conv = causal_conv(b * xs, state.conv, self.conv.weight, self.conv.bias)  # (B, C, T)
        out = self.out_proj((c * y).transpose(1, 2))  # (B, T, E)
        return out, ConvState(conv, state.seen + T)


LAYERS = {ShortConvSpec: ShortConv}
