"""Mamba-2 mixer (selective state space, SSD), as in Nemotron-H's Mamba layers.

Follows Hugging Face transformers `models/nemotron_h/modeling_nemotron_h.py` (NemotronHMamba2Mixer.torch_forward,
the same mixer as `models/mamba2/modeling_mamba2.py`); the model is Mamba-2 (arXiv 2405.21060). Parameter names
and shapes match that module, so its state dict loads here unchanged.

# B batch, T new tokens, S source tokens (T of them), E model width, H heads, P head dim, N state size,
# G groups (heads sharing one B and C), C conv channels H P + 2 G N, W conv kernel

Per token t and head h (x_t, B_t, C_t come out of the causal conv; h's group supplies B_t and C_t):

    dt_t = softplus(dt_raw_t + dt_bias),  A = -exp(A_log) < 0
    S <- exp(dt_t A) S + (dt_t x_t) B_t^T     S is P x N: a scalar decay per head, then a rank-1 write
    y_t = S C_t + D x_t

Unrolled, y_t = sum_{s<=t} (C_t . B_s) exp(sum_{r=s+1..t} dt_r A) dt_s x_s + D x_t: causal attention with
scores C.B and a decay mask instead of a softmax (the SSD "quadratic" form, `chunked_forward`). The recurrent
form keeps a fixed-size state, so no cache grows with the context.

The gated RMSNorm is grouped as in the reference (Zamba2RMSNormGated, group size H P / G, gate before norm).
Without it (`gated_norm` False: Falcon-H1 with mamba_rms_norm off) the output is y * SiLU(z), as HF
FalconH1Mixer computes it.
The reference's torch path also clamps dt at time_step_min (1e-3); the CUDA kernels it mirrors do not by
default, and softplus rarely goes that low, so this layer does not clamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.layers.attention import _init
from core.layers.gated_deltanet import GatedRMSNorm, causal_conv
from core.model.specs import Mamba2Spec


@dataclass(frozen=True)
class SSMState:
    """Recurrent state of one Mamba-2 layer: ssm (B, H, P, N) and conv (B, C, W-1)."""

    ssm: Tensor
    conv: Tensor  # the last W-1 inputs of the causal conv (zeros before the first token)
    seen: int  # tokens processed so far

    def tensors(self) -> tuple[Tensor, ...]:
        return (self.ssm, self.conv)


class SSMTrace(NamedTuple):
    out: Tensor  # (B, T, E)
    state: SSMState
    dt: Tensor  # (B, T, H) step sizes after softplus
    decay: Tensor  # (B, T, H) exp(dt A): what fraction of the state each token keeps


class Mamba2(nn.Module):
    """Nemotron-H Mamba-2 mixer; forward(x, state) -> (out, state) one token at a time, and chunked_forward(x)
    for the same outputs through the quadratic SSD form (an independent check)."""

    # spec fields this layer runs (build_layer refuses others). ssm_dtype and conv_dtype are a deployment's
    # storage formats, which the accounting prices; the layer holds its state in the dtype it is built with.
    # ssm_dtype_stated and chunk_size only tell an engine's planner what the config said (the SSM dtype's
    # source; the prefill scan's chunk, which changes no output).
    RUNS = frozenset(
        {
            "n_heads",
            "head_dim",
            "state_size",
            "n_groups",
            "conv_kernel",
            "ssm_dtype",
            "conv_dtype",
            "conv_bias",
            "proj_bias",
            "gated_norm",
            "ssm_dtype_stated",
            "chunk_size",
        }
    )

    def __init__(self, spec: Mamba2Spec, d_model: int, *, seed: int = 0, device=None, dtype=torch.float32):
        super().__init__()
        self.spec, self.d_model = spec, d_model
        s = spec
        # One projection, split as [z d_inner, xBC C, dt H]; biases as the config's use_bias (in_proj and
        # out_proj) and use_conv_bias say (Nemotron-H: false and true; layer_norm_epsilon 1e-5).
        self.in_proj = nn.Linear(d_model, s.d_inner + s.conv_dim + s.n_heads, bias=s.proj_bias)
        self.conv1d = nn.Conv1d(s.conv_dim, s.conv_dim, s.conv_kernel, groups=s.conv_dim, bias=s.conv_bias)
        self.dt_bias = nn.Parameter(torch.ones(s.n_heads))
        self.A_log = nn.Parameter(torch.zeros(s.n_heads))
        self.D = nn.Parameter(torch.ones(s.n_heads))
        self.norm = (
            GatedRMSNorm(s.d_inner, s.d_inner // s.n_groups, eps=1e-5, norm_before_gate=False) if s.gated_norm else None
        )
        self.out_proj = nn.Linear(s.d_inner, d_model, bias=s.proj_bias)
        _init(self, seed, device, dtype)

    def empty_state(self, batch: int) -> SSMState:
        """The state before any token: zeros (what the reference starts from)."""
        s, p = self.spec, self.out_proj.weight
        ssm = torch.zeros(batch, s.n_heads, s.head_dim, s.state_size, dtype=p.dtype, device=p.device)
        conv = torch.zeros(batch, s.conv_dim, s.conv_kernel - 1, dtype=p.dtype, device=p.device)
        return SSMState(ssm, conv, 0)

    def _split(self, xBC: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Post-conv channels (B, T, C) -> x (B, T, H, P), and B, C (B, T, H, N) repeated from their groups."""
        s = self.spec
        Bt, T, _ = xBC.shape
        GN = s.n_groups * s.state_size
        x, b, c = xBC.split([s.d_inner, GN, GN], dim=-1)
        r = s.n_heads // s.n_groups  # head h reads group h // r, as the reference's repeat_interleave does
        b = b.view(Bt, T, s.n_groups, s.state_size).repeat_interleave(r, dim=2)  # (B, T, H, N)
        c = c.view(Bt, T, s.n_groups, s.state_size).repeat_interleave(r, dim=2)  # (B, T, H, N)
        return x.view(Bt, T, s.n_heads, s.head_dim), b, c

    def gate(self, y: Tensor, z: Tensor) -> Tensor:
        """y (B, T, H P) gated by z: the gated RMSNorm, or y * SiLU(z) without one (elementwise)."""
        return self.norm(y, z) if self.norm is not None else y * F.silu(z)

    def forward(self, x: Tensor, state: SSMState | None = None) -> tuple[Tensor, SSMState]:
        out, state, *_ = self.trace(x, state)
        return out, state

    def trace(self, x: Tensor, state: SSMState | None = None) -> SSMTrace:
        """forward, plus the step sizes dt and per-token decays exp(dt A) (for plots and tests)."""
        s = self.spec
        B, T, _ = x.shape
        state = self.empty_state(B) if state is None else state
        z, xBC, dt = self.in_proj(x).split([s.d_inner, s.conv_dim, s.n_heads], dim=-1)
        xBC, conv = causal_conv(xBC.transpose(1, 2), state.conv, self.conv1d.weight, self.conv1d.bias)  # (B, C, T)
        xs, b, c = self._split(F.silu(xBC).transpose(1, 2))  # (B, T, H, P), (B, T, H, N), (B, T, H, N)
        dt = F.softplus(dt + self.dt_bias)  # (B, T, H)
        decay = torch.exp(dt * -self.A_log.exp())  # (B, T, H)
        S, ys = state.ssm, []
        for t in range(T):  # the recurrent form: prefill is T decode steps
            u = (dt[:, t, :, None] * xs[:, t])[..., :, None]  # (B, H, P, 1)
            S = S * decay[:, t, :, None, None] + u @ b[:, t, :, None, :]  # (B, H, P, N): rank-1 write, a matmul
            ys.append((S @ c[:, t, :, :, None]).squeeze(-1))  # (B, H, P): S C
        y = torch.stack(ys, dim=1) + self.D[:, None] * xs  # (B, T, H, P): D skip
        out = self.out_proj(self.gate(y.reshape(B, T, s.d_inner), z))  # (B, T, E)
        return SSMTrace(out, SSMState(S, conv, state.seen + T), dt, decay)

    def chunked_forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The same outputs from an empty state, through the SSD quadratic form over one chunk spanning the
        whole sequence (the reference's torch_forward prefill with chunk_size >= T): (out (B, T, E), the final
        ssm state (B, H, P, N)). Shares only the projections with `forward`; no recurrence."""
        s = self.spec
        B, T, _ = x.shape
        z, xBC, dt = self.in_proj(x).split([s.d_inner, s.conv_dim, s.n_heads], dim=-1)
        W = s.conv_kernel  # zero left padding, the reference's nn.Conv1d(padding=W-1) cut to T outputs
        xBC = F.conv1d(xBC.transpose(1, 2), self.conv1d.weight, self.conv1d.bias, padding=W - 1, groups=s.conv_dim)
        xs, b, c = self._split(F.silu(xBC[..., :T]).transpose(1, 2))
        dt = F.softplus(dt + self.dt_bias)  # (B, T, H)
        dtA = (dt * -self.A_log.exp()).transpose(1, 2)  # (B, H, T)
        L = segsum(dtA).exp()  # (B, H, T, S): exp(sum_{r=s+1..t} dt_r A), 0 above the diagonal
        scores = torch.einsum("bthn,bshn->bhts", c, b)  # (B, H, T, S): C_t . B_s
        M = scores * L * dt.transpose(1, 2)[:, :, None, :]  # (B, H, T, S)
        y = torch.einsum("bhts,bshp->bthp", M, xs) + self.D[:, None] * xs  # (B, T, H, P)
        out = self.out_proj(self.gate(y.reshape(B, T, s.d_inner), z))  # (B, T, E)
        last = L[:, :, -1] * dt.transpose(1, 2)  # (B, H, S): weight of token s in the final state
        return out, torch.einsum("bhs,bshp,bshn->bhpn", last, xs, b)  # state: sum_s w_s x_s B_s^T


def segsum(a: Tensor) -> Tensor:
    """a (..., T) -> (..., T, T) with [t, s] = sum_{r=s+1..t} a_r for s <= t and -inf above the diagonal.
    Built by masked cumulative sums, not cumsum differences, so no cancellation (the reference's segment_sum)."""
    T = a.shape[-1]
    tri = torch.ones(T, T, dtype=torch.bool, device=a.device)
    x = a[..., :, None].expand(*a.shape, T)  # (..., r, s) = a_r
    x = x.masked_fill(~torch.tril(tri, diagonal=-1), 0).cumsum(dim=-2)  # (..., t, s) = sum_{s<r<=t} a_r
    return x.masked_fill(~torch.tril(tri), float("-inf"))


LAYERS = {Mamba2Spec: Mamba2}
