"""Gated DeltaNet linear attention, as in Qwen3-Next's linear-attention layers.

Follows Hugging Face transformers `models/qwen3_next/modeling_qwen3_next.py` (Qwen3NextGatedDeltaNet and
its reference `torch_recurrent_gated_delta_rule`); the rule is from Gated Delta Networks (arXiv 2412.06464).
Parameter names and shapes match that module, so its state dict loads here unchanged.

# B batch, T new tokens, E model width, Hk key heads, Hv value heads, r = Hv / Hk value heads per key head,
# K key head dim d_k, V value head dim d_v, C conv channels 2 Hk K + Hv V, W conv kernel

Per token t and value head (q, k L2-normalised, q scaled by 1/sqrt(K); S is K x V):

    S <- exp(g_t) S                         decay, g_t = -exp(A_log) softplus(a_t + dt_bias) <= 0
    S <- S + k_t (beta_t (v_t - S^T k_t))^T  delta rule: overwrite what k_t recalls by v_t, beta_t = sigmoid(b_t)
    o_t = S^T q_t

The state is S per value head plus the last W-1 conv inputs: a fixed size whatever the context, so unlike
attention there is no KV cache that grows with the sequence. Layers are stateless (see core/layers/attention.py):
the state is an explicit `DeltaState` passed in and returned. Every product is a matmul, so FlopCounterMode sees
it (an einsum without a summed index, like the rank-1 write, would lower to an uncounted elementwise multiply).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.layers.attention import _init
from core.model.specs import LinearAttentionSpec


@dataclass(frozen=True)
class DeltaState:
    """Recurrent state of one Gated DeltaNet layer: recurrent (B, Hv, K, V) and conv (B, C, W-1)."""

    recurrent: Tensor
    conv: Tensor  # the last W-1 inputs of the causal conv (zeros before the first token)
    seen: int  # tokens processed so far

    def tensors(self) -> tuple[Tensor, ...]:
        return (self.recurrent, self.conv)


class DeltaTrace(NamedTuple):
    out: Tensor  # (B, T, E)
    state: DeltaState
    q: Tensor  # (B, T, Hv, K) normalised and scaled queries, repeated per value head
    k: Tensor  # (B, T, Hv, K) normalised keys, repeated per value head
    v: Tensor  # (B, T, Hv, V)
    g: Tensor  # (B, T, Hv) log decay, <= 0
    beta: Tensor  # (B, T, Hv) write strength in (0, 1)


def l2norm(x: Tensor, eps: float = 1e-6) -> Tensor:
    """x / sqrt(|x|^2 + eps) on the last dim, as the reference (and the FLA kernels) compute it."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


def causal_conv(x: Tensor, conv_state: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
    """Depthwise causal conv of x (B, C, T) continuing from conv_state (B, C, W-1): returns (B, C, T) and the
    new conv state. Zeros as the state equal the reference's left padding of W-1, so a prefill and the same
    tokens split across calls give the same outputs (torch_causal_conv1d_update in the reference)."""
    full = torch.cat([conv_state, x], dim=-1)  # (B, C, W-1 + T)
    y = F.conv1d(full, weight, bias, groups=x.shape[1])  # (B, C, T): a convolution, counted by FlopCounterMode
    return y, full[..., full.shape[-1] - conv_state.shape[-1] :]


class GatedRMSNorm(nn.Module):
    """RMSNorm over groups of `group_size` channels, gated by SiLU(z).

    norm_before_gate=True is Qwen3NextRMSNormGated (normalise, scale, then gate); False is Mamba-2's
    Zamba2RMSNormGated as used by Nemotron-H (gate first, then normalise each group and scale)."""

    def __init__(self, dim: int, group_size: int, eps: float = 1e-6, norm_before_gate: bool = True):
        super().__init__()
        self.group_size, self.eps, self.norm_before_gate = group_size, eps, norm_before_gate
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        if not self.norm_before_gate:
            x = x * F.silu(z)
        xg = x.unflatten(-1, (-1, self.group_size))  # (..., groups, group_size)
        x = (xg * torch.rsqrt(xg.pow(2).mean(-1, keepdim=True) + self.eps)).flatten(-2) * self.weight
        return x * F.silu(z) if self.norm_before_gate else x


def gated_delta_step(S: Tensor, q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """One token for all heads: S (B, H, K, V), q and k (B, H, K), v (B, H, V), g and beta (B, H).
    Returns the new S and the output (B, H, V), in the reference's order (decay, read, write, read)."""
    S = S * g.exp()[..., None, None]  # (B, H, K, V): decay, elementwise
    kv_mem = (k[..., None, :] @ S).squeeze(-2)  # (B, H, V): S^T k, what k recalls now
    delta = (v - kv_mem) * beta[..., None]  # (B, H, V)
    S = S + k[..., :, None] @ delta[..., None, :]  # (B, H, K, V): rank-1 write k delta^T, a matmul so it counts
    return S, (q[..., None, :] @ S).squeeze(-2)  # (B, H, V): S^T q


class GatedDeltaNet(nn.Module):
    """Qwen3-Next Gated DeltaNet layer; forward(x, state) -> (out, state), one token at a time."""

    # spec fields this layer runs (build_layer refuses others, such as variant "KDA"). ssm_dtype and
    # conv_dtype are a deployment's storage formats, which the accounting prices; the layer holds its state
    # in the dtype it is built with.
    RUNS = frozenset(
        {"n_key_heads", "n_value_heads", "key_head_dim", "value_head_dim", "conv_kernel", "ssm_dtype", "conv_dtype"}
    )

    def __init__(self, spec: LinearAttentionSpec, d_model: int, *, seed: int = 0, device=None, dtype=torch.float32):
        super().__init__()
        if spec.variant != "GDN":
            raise NotImplementedError(
                f"variant {spec.variant!r} has no reference layer: this one runs Gated DeltaNet (variant 'GDN')."
            )
        self.spec, self.d_model = spec, d_model
        s = spec
        # Projection rows are grouped per key head: [q K, k K, v rV, z rV] and [b r, a r], as the reference's
        # fix_query_key_value_ordering expects, so its checkpoints load unchanged.
        self.in_proj_qkvz = nn.Linear(d_model, 2 * s.key_dim + 2 * s.value_dim, bias=False)
        self.in_proj_ba = nn.Linear(d_model, 2 * s.n_value_heads, bias=False)
        self.conv1d = nn.Conv1d(s.conv_dim, s.conv_dim, s.conv_kernel, groups=s.conv_dim, bias=False)
        self.dt_bias = nn.Parameter(torch.ones(s.n_value_heads))
        self.A_log = nn.Parameter(torch.zeros(s.n_value_heads))
        self.norm = GatedRMSNorm(s.value_head_dim, s.value_head_dim, norm_before_gate=True)
        self.out_proj = nn.Linear(s.value_dim, d_model, bias=False)
        _init(self, seed, device, dtype)

    def empty_state(self, batch: int) -> DeltaState:
        """The state before any token: zeros (what the reference starts from)."""
        s, p = self.spec, self.out_proj.weight
        S = torch.zeros(batch, s.n_value_heads, s.key_head_dim, s.value_head_dim, dtype=p.dtype, device=p.device)
        conv = torch.zeros(batch, s.conv_dim, s.conv_kernel - 1, dtype=p.dtype, device=p.device)
        return DeltaState(S, conv, 0)

    def forward(self, x: Tensor, state: DeltaState | None = None) -> tuple[Tensor, DeltaState]:
        out, state, *_ = self.trace(x, state)
        return out, state

    def trace(self, x: Tensor, state: DeltaState | None = None) -> DeltaTrace:
        """forward, plus the per-token q, k, v, log decay g and write strength beta (for plots and tests)."""
        s = self.spec
        B, T, _ = x.shape
        Hk, Hv, K, V = s.n_key_heads, s.n_value_heads, s.key_head_dim, s.value_head_dim
        r = Hv // Hk
        state = self.empty_state(B) if state is None else state
        q, k, v, z = self.in_proj_qkvz(x).view(B, T, Hk, 2 * K + 2 * r * V).split([K, K, r * V, r * V], dim=-1)
        b, a = self.in_proj_ba(x).view(B, T, Hk, 2 * r).split([r, r], dim=-1)  # (B, T, Hk, r) each
        mixed = torch.cat([q.reshape(B, T, -1), k.reshape(B, T, -1), v.reshape(B, T, -1)], dim=-1)  # (B, T, C)
        mixed, conv = causal_conv(mixed.transpose(1, 2), state.conv, self.conv1d.weight, None)  # (B, C, T)
        q, k, v = F.silu(mixed).transpose(1, 2).split([s.key_dim, s.key_dim, s.value_dim], dim=-1)
        # Value head h reads key head h // r (repeat_interleave, as the reference does).
        q = l2norm(q.view(B, T, Hk, K)).repeat_interleave(r, dim=2) / math.sqrt(K)  # (B, T, Hv, K)
        k = l2norm(k.view(B, T, Hk, K)).repeat_interleave(r, dim=2)  # (B, T, Hv, K)
        v = v.reshape(B, T, Hv, V)  # (B, T, Hv, V)
        beta = b.reshape(B, T, Hv).sigmoid()  # (B, T, Hv)
        g = -self.A_log.exp() * F.softplus(a.reshape(B, T, Hv) + self.dt_bias)  # (B, T, Hv)
        S, outs = state.recurrent, []
        for t in range(T):  # the recurrent form: prefill is T decode steps
            S, o = gated_delta_step(S, q[:, t], k[:, t], v[:, t], g[:, t], beta[:, t])
            outs.append(o)
        o = self.norm(torch.stack(outs, dim=1), z.reshape(B, T, Hv, V))  # (B, T, Hv, V)
        out = self.out_proj(o.reshape(B, T, Hv * V))  # (B, T, E)
        return DeltaTrace(out, DeltaState(S, conv, state.seen + T), q, k, v, g, beta)


LAYERS = {LinearAttentionSpec: GatedDeltaNet}
