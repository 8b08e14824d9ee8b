"""Lightning attention (MiniMax-Text-01 / MiniMax-M1), in its recurrent form.

Follows Hugging Face transformers `models/minimax/modeling_minimax.py` (MiniMaxLightningAttention, whose decode
branch is this recurrence; vLLM `minimax_text_01.py` MiniMaxText01LinearAttention computes the same); the method
is Lightning Attention-2 (arXiv 2401.04658), the model arXiv 2501.08313. Parameter names and shapes match HF's
module, so its state dict loads here unchanged (its decay buffers aside).

# B batch, T new tokens, E model width, H heads, K head dim (keys, queries and values alike)

Per token t and head h (q, k, v: SiLU of qkv_proj, rows per head [q K, k K, v K]; no 1/sqrt(K) scaling):

    S <- exp(-lambda_h) S + k_t^T v_t      S is K x K: a fixed decay per head, then a rank-1 write
    o_t = q_t S

then out = out_proj(sigmoid(output_gate(x)) * RMSNorm(o)), the norm over all H K channels (MiniMaxRMSNorm,
eps 1e-6; vLLM uses 1e-5). Unrolled, o_t = sum_{s<=t} exp(-lambda_h (t - s)) (q_t . k_s) v_s: causal linear
attention with a distance decay instead of a softmax (the block form HF runs at prefill). The state is S per
head, nothing else: no convolution, no cache that grows with the context.

The decay rates are HF's get_slope_rate: lambda_h = 2^(-8 (h + 1) / H) x (1 - l / (L - 1 + 1e-5) + 1e-5) for
layer l of L (keyword arguments here; layer 0 by default). vLLM's _build_slope_tensor gives the same rates when
H is a power of two and ALiBi's interpolated ones otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.layers.attention import RMSNorm, _init
from core.model.specs import LightningSpec

NORM_EPS = 1e-6  # MiniMaxRMSNorm's default


def slope_rate(n_heads: int, layer_idx: int = 0, n_layers: int = 1) -> Tensor:
    """(H,) per-head decay rates lambda_h, as HF MiniMaxLightningAttention.get_slope_rate (float64)."""
    base = 1 / (2 ** (8 / n_heads))
    factor = 1 - layer_idx / (n_layers - 1 + 1e-5) + 1e-5
    return base ** torch.arange(1, n_heads + 1, dtype=torch.float64) * factor


@dataclass(frozen=True)
class LightningState:
    """Recurrent state of one lightning-attention layer: kv (B, H, K, K)."""

    kv: Tensor
    seen: int  # tokens processed so far

    def tensors(self) -> tuple[Tensor, ...]:
        return (self.kv,)


class LightningAttention(nn.Module):
    """MiniMax lightning attention; forward(x, state) -> (out, state), one token at a time."""

    # spec fields this layer runs (build_layer refuses others). state_dtype is a deployment's storage format,
    # which the accounting prices; the layer holds its state in the dtype it is built with.
    RUNS = frozenset({"n_heads", "head_dim", "state_dtype"})

    def __init__(
        self,
        spec: LightningSpec,
        d_model: int,
        *,
        seed: int = 0,
        device=None,
        dtype=torch.float32,
        layer_idx: int = 0,
        n_layers: int = 1,
    ):
        super().__init__()
        self.spec, self.d_model = spec, d_model
        HK = spec.n_heads * spec.head_dim
        self.qkv_proj = nn.Linear(d_model, 3 * HK, bias=False)
        self.output_gate = nn.Linear(d_model, HK, bias=False)
        self.norm = RMSNorm(HK, NORM_EPS)
        self.out_proj = nn.Linear(HK, d_model, bias=False)
        self.register_buffer("slope_rate", slope_rate(spec.n_heads, layer_idx, n_layers))  # a buffer: no weight
        _init(self, seed, device, dtype)

    def empty_state(self, batch: int) -> LightningState:
        """The state before any token: zeros (what the reference starts from)."""
        s, p = self.spec, self.out_proj.weight
        return LightningState(torch.zeros(batch, s.n_heads, s.head_dim, s.head_dim, dtype=p.dtype, device=p.device), 0)

    def forward(self, x: Tensor, state: LightningState | None = None) -> tuple[Tensor, LightningState]:
        s = self.spec
        B, T, _ = x.shape
        H, K = s.n_heads, s.head_dim
        state = self.empty_state(B) if state is None else state
        q, k, v = F.silu(self.qkv_proj(x)).view(B, T, H, 3 * K).split(K, dim=-1)  # (B, T, H, K) each
        ratio = torch.exp(-self.slope_rate)[:, None, None]  # (H, 1, 1)
        S, outs = state.kv, []
        for t in range(T):  # the recurrent form: prefill is T decode steps
            S = ratio * S + k[:, t, :, :, None] @ v[:, t, :, None, :]  # (B, H, K, K): decay, rank-1 write k^T v
            outs.append((q[:, t, :, None, :] @ S).squeeze(-2))  # (B, H, K): q S
        o = self.norm(torch.stack(outs, dim=1).reshape(B, T, H * K))  # (B, T, H K)
        out = self.out_proj(torch.sigmoid(self.output_gate(x)) * o)  # (B, T, E)
        return out, LightningState(S, state.seen + T)


LAYERS = {LightningSpec: LightningAttention}
