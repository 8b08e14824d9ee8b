"""Mamba-1 mixer (selective scan), as in Jamba's Mamba layers.

Follows Hugging Face transformers `models/jamba/modeling_jamba.py` (JambaMambaMixer.slow_forward); the model is
Mamba (arXiv 2312.00752), Jamba is arXiv 2403.19887. Parameter names and shapes match that module, so its state
dict loads here unchanged.

# B batch, T new tokens, E model width, D channels d_inner, N state size, R dt rank, W conv kernel

Per token t (x_t comes out of the causal depthwise conv and SiLU; dt, B_t, C_t are projected from it):

    dt_t = softplus(dt_proj(dt_raw_t))       (D,): a step size per channel, through a rank-R bottleneck
    h <- exp(dt_t A) h + (dt_t x_t) B_t^T    h is D x N; A = -exp(A_log) is D x N, so unlike Mamba-2 (one decay
                                             per head) every channel and state entry decays at its own rate
    y_t = h C_t + D x_t,   out_t = out_proj(y_t SiLU(z_t))

Jamba RMS-normalises dt_raw, B and C right after x_proj (`dt_norms`; JambaRMSNorm, eps rms_norm_eps 1e-6).
The state is h plus the last W-1 conv inputs (vLLM keeps W-1; HF's cache keeps W): a fixed size whatever the
context. The rank-1 write and the readout are matmuls, so FlopCounterMode counts them (HF writes the update as
elementwise products, the same numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.layers.attention import RMSNorm, _init
from core.layers.gated_deltanet import causal_conv
from core.model.specs import Mamba1Spec

NORM_EPS = 1e-6  # Jamba's rms_norm_eps


@dataclass(frozen=True)
class Mamba1State:
    """Recurrent state of one Mamba-1 layer: ssm (B, D, N) and conv (B, D, W-1)."""

    ssm: Tensor
    conv: Tensor  # the last W-1 inputs of the causal conv (zeros before the first token)
    seen: int  # tokens processed so far

    def tensors(self) -> tuple[Tensor, ...]:
        return (self.ssm, self.conv)


class Mamba1(nn.Module):
    """Jamba Mamba-1 mixer; forward(x, state) -> (out, state), one token at a time."""

    # spec fields this layer runs (build_layer refuses others). ssm_dtype and conv_dtype are a deployment's
    # storage formats, which the accounting prices; the layer holds its state in the dtype it is built with.
    RUNS = frozenset(
        {
            "d_inner",
            "state_size",
            "conv_kernel",
            "dt_rank",
            "ssm_dtype",
            "conv_dtype",
            "conv_bias",
            "proj_bias",
            "dt_norms",
        }
    )

    def __init__(self, spec: Mamba1Spec, d_model: int, *, seed: int = 0, device=None, dtype=torch.float32):
        super().__init__()
        self.spec, self.d_model = spec, d_model
        s = spec
        D, N, R = s.d_inner, s.state_size, s.dt_rank
        # in_proj and out_proj biases as the config's mamba_proj_bias says, the conv's as mamba_conv_bias;
        # x_proj never has one and dt_proj always has one (JambaMambaMixer).
        self.in_proj = nn.Linear(d_model, 2 * D, bias=s.proj_bias)
        self.conv1d = nn.Conv1d(D, D, s.conv_kernel, groups=D, bias=s.conv_bias)
        self.x_proj = nn.Linear(D, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, D, bias=True)
        self.A_log = nn.Parameter(torch.zeros(D, N))
        self.D = nn.Parameter(torch.ones(D))
        self.out_proj = nn.Linear(D, d_model, bias=s.proj_bias)
        if s.dt_norms:
            self.dt_layernorm = RMSNorm(R, NORM_EPS)
            self.b_layernorm = RMSNorm(N, NORM_EPS)
            self.c_layernorm = RMSNorm(N, NORM_EPS)
        _init(self, seed, device, dtype)

    def empty_state(self, batch: int) -> Mamba1State:
        """The state before any token: zeros (what the reference starts from)."""
        s, p = self.spec, self.out_proj.weight
        ssm = torch.zeros(batch, s.d_inner, s.state_size, dtype=p.dtype, device=p.device)
        conv = torch.zeros(batch, s.d_inner, s.conv_kernel - 1, dtype=p.dtype, device=p.device)
        return Mamba1State(ssm, conv, 0)

    def forward(self, x: Tensor, state: Mamba1State | None = None) -> tuple[Tensor, Mamba1State]:
        s = self.spec
        B, T, _ = x.shape
        state = self.empty_state(B) if state is None else state
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, D) each
        xs, conv = causal_conv(xs.transpose(1, 2), state.conv, self.conv1d.weight, self.conv1d.bias)  # (B, D, T)
        xs = F.silu(xs).transpose(1, 2)  # (B, T, D)
        dt, b, c = self.x_proj(xs).split([s.dt_rank, s.state_size, s.state_size], dim=-1)  # (B, T, R), (B, T, N) x2
        if s.dt_norms:
            dt, b, c = self.dt_layernorm(dt), self.b_layernorm(b), self.c_layernorm(c)
        dt = F.softplus(self.dt_proj(dt))  # (B, T, D)
        decay = torch.exp(dt[..., None] * -self.A_log.exp())  # (B, T, D, N), elementwise
        h, ys = state.ssm, []
        for t in range(T):  # the recurrent form: prefill is T decode steps
            u = (dt[:, t] * xs[:, t])[..., None]  # (B, D, 1)
            h = h * decay[:, t] + u @ b[:, t, None, :]  # (B, D, N): decay, then a rank-1 write (a matmul)
            ys.append((h @ c[:, t, :, None]).squeeze(-1))  # (B, D): h C
        y = torch.stack(ys, dim=1) + self.D * xs  # (B, T, D): D skip
        out = self.out_proj(y * F.silu(z))  # (B, T, E)
        return out, Mamba1State(h, conv, state.seen + T)


LAYERS = {Mamba1Spec: Mamba1}
