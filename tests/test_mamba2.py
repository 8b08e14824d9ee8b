"""The Mamba-2 mixer (core/layers/mamba2.py) against its accounting and against its own quadratic (SSD) form.

Proves, in float64 on CPU with small specs (one group, and several heads per group):
(a) the state is fixed-size: its tensors' nbytes equal the accounting's state elements x element size after 1, 7 or 64
    tokens, so unlike attention no KV cache grows with the context;
(b) one call over a sequence equals the same sequence in pieces (prefill, then decode steps) with the state
    carried, to 1e-12, outputs and final state;
(c) the recurrent forward equals chunked_forward, the attention-like form
    y_t = sum_{s<=t} (C_t . B_s) exp(sum_{r=s+1..t} dt_r A) dt_s x_s + D x_t, to 1e-10, outputs and final
    state (state duality, arXiv 2405.21060); the grouped gated RMSNorm equals a transcription of
    Zamba2RMSNormGated (gate, then normalise each group);
(d) FlopCounterMode counts the accounting's decode-step FLOPs (core + 2 x matmul weights) for T = 1,
    per sequence in the batch, and
    the layer has the accounting's parameter count;
(e) it runs on CUDA in float32 when a device is there.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from recurrent import F64, E, assert_pieces_equal_one_call, assert_state_is_accounted, step_flops, tokens
from torch.utils.flop_counter import FlopCounterMode

from core.accounting import totals as acc
from core.layers.mamba2 import Mamba2, SSMState
from core.model.specs import Mamba2Spec

SPECS = [
    Mamba2Spec(n_heads=1, head_dim=4, state_size=3),
    Mamba2Spec(n_heads=6, head_dim=4, state_size=5, n_groups=2),
    Mamba2Spec(n_heads=4, head_dim=3, state_size=8, n_groups=4, conv_kernel=2),
]


def make(spec: Mamba2Spec, seed: int = 0) -> Mamba2:
    return Mamba2(spec, E, seed=seed, device="cpu", dtype=F64)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("T", [1, 7, 64])
def test_state_bytes_are_constant(spec, T):
    assert_state_is_accounted(make(spec), spec, T)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("pieces", [(5, 4), (6, 1, 2), (1, 1, 7)])
def test_pieces_equal_one_call(spec, pieces):
    assert_pieces_equal_one_call(make(spec), pieces)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("T", [1, 5, 33])
def test_recurrent_equals_quadratic_form(spec, T):
    layer, x = make(spec, seed=3), tokens(2, T, seed=4)
    with torch.no_grad():  # slower decay than the default init, so early tokens still matter at the end
        layer.A_log.copy_(torch.linspace(-3, 0, spec.n_heads, dtype=F64))
    out, state = layer(x)
    q_out, q_state = layer.chunked_forward(x)
    torch.testing.assert_close(out, q_out, atol=1e-10, rtol=0)
    torch.testing.assert_close(state.ssm, q_state, atol=1e-10, rtol=0)


def test_gated_norm_is_grouped_gate_first():
    """Zamba2RMSNormGated (used by NemotronHMamba2Mixer): y = x silu(z), RMS-normalised per group of H P / G."""
    spec = SPECS[1]
    norm = make(spec).norm
    x, z = tokens(2, 3)[..., : spec.d_inner].clone(), tokens(2, 3, seed=7)[..., : spec.d_inner]
    h = (x * F.silu(z)).view(2, 3, spec.n_groups, -1)
    ref = (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5)).view(2, 3, -1) * norm.weight
    torch.testing.assert_close(norm(x, z), ref, atol=1e-14, rtol=0)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("batch", [1, 3])
def test_decode_flops_and_params(spec, batch):
    layer = make(spec)
    _, state = layer(tokens(batch, 5))
    with FlopCounterMode(display=False) as counter:
        layer(tokens(batch, 1, seed=2), state)
    assert counter.get_total_flops() == batch * step_flops(spec)
    assert sum(p.numel() for p in layer.parameters()) == acc.attention_params(spec, E).total


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda_in_float32():
    spec = SPECS[1]
    cpu = Mamba2(spec, E, seed=2, device="cpu", dtype=torch.float32)
    gpu = Mamba2(spec, E, seed=2, device="cuda", dtype=torch.float32)
    x = tokens(2, 6).float()
    out_c, st_c = cpu(x)
    out_g, st_g = gpu(x.cuda())
    assert isinstance(st_g, SSMState) and st_g.ssm.device.type == "cuda" and st_g.ssm.dtype == torch.float32
    torch.testing.assert_close(out_g.cpu(), out_c, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(st_g.ssm.cpu(), st_c.ssm, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gpu.chunked_forward(x.cuda())[0].cpu(), out_c, atol=1e-4, rtol=1e-4)
