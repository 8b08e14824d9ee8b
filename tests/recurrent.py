"""Shared checks for the recurrent layers (Gated DeltaNet, Mamba-2): inputs, the accounting's numbers,
and the "pieces with the state carried equal one call" check, so the two test files differ only in what
is specific to each layer."""

import torch

from core.accounting import totals as acc
from core.accounting.base import design_of

F64 = torch.float64
E = 24  # model width of every test layer


def tokens(B: int, T: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(B, T, E, generator=torch.Generator().manual_seed(seed), dtype=F64)


def state_elements(spec) -> tuple[int, ...]:
    """Elements of each state tensor per sequence, from the accounting (rows x width)."""
    return tuple(r.rows * r.width for r in design_of(spec).state_rows(spec))


def step_flops(spec) -> int:
    """One decode step of one sequence as the accounting counts it: core + 2 x matmul weights."""
    return acc.decode_core_flops(spec, 6) + 2 * acc.attention_params(spec, E).matmul


def assert_state_is_accounted(layer, spec, T: int) -> None:
    """After T tokens of a batch of 2 in float64, each state tensor holds 2 x its accounted elements."""
    _, state = layer(tokens(2, T))
    assert [t.nbytes for t in state.tensors()] == [2 * n * 8 for n in state_elements(spec)]
    assert state.seen == T


def assert_pieces_equal_one_call(layer, pieces: tuple[int, ...]) -> None:
    """The sequence in pieces with the state passed on equals one call: outputs and final state, 1e-12."""
    x = tokens(2, sum(pieces))
    whole, final = layer(x)
    outs, state, start = [], None, 0
    for n in pieces:
        out, state = layer(x[:, start : start + n], state)
        outs.append(out)
        start += n
    torch.testing.assert_close(torch.cat(outs, 1), whole, atol=1e-12, rtol=0)
    for a, b in zip(state.tensors(), final.tensors(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert state.seen == final.seen == sum(pieces)
