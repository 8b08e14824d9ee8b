"""What-if baselines (core/accounting/whatif.py) against real layers and the exact accounting.

Proves:
- `all_global` removes every window and chunk and nothing else: real layers built from the global model
  cache exactly the bytes the accounting gives it, and more than the windowed layers hold; Llama-4-Scout at
  1,048,576 tokens in bf16 needs 48 x 2 x 8 x 128 x 2 B x N = 192 GiB with every layer global against its
  (12 x N + 36 x 8,192) x 4,096 B = 49.125 GiB, 3.91x; a model without windows gets None;
- `state_per_layer` is one layer's fixed state: the nbytes of the state a real Gated DeltaNet and Mamba-2
  layer carry after a run, and by hand for Qwen3-Next (32 x 128 x 128 x 2 B + 3 x 8,192 x 2 B =
  1,097,728 B per GDN layer, 36 layers) and Nemotron-H-56B (Mamba-2, 54 layers);
- `mla_layouts` for DeepSeek-V3's shapes: materialised 81,920 B per token per layer (= an MHA layer of 128
  heads with 192-wide keys and 128-wide values, priced as GQA), latent bf16 1,152, latent fp8 576,
  fp8_ds_mla 656, each equal to the whole-model accounting of one such layer.
"""

import pytest
import torch

from core.accounting import totals as acc
from core.accounting.whatif import all_global, attention_bytes_per_token_per_layer, mla_layouts, state_per_layer
from core.layers.attention import cache_nbytes
from core.layers.build import build_layer
from core.model.presets import load_preset
from core.model.specs import DenseMLP, GQASpec, LinearAttentionSpec, Mamba2Spec, ModelSpec

F64 = torch.float64
GIB = 2**30


def model(*layers) -> ModelSpec:
    return ModelSpec("t", "t", 16, 10, layers, tuple(DenseMLP(16) for _ in layers))


def held(spec: ModelSpec, tokens: int) -> int:
    """nbytes of every layer's cache after a prefill of `tokens`, running the real layers in float64."""
    x = torch.randn(1, tokens, 16, generator=torch.Generator().manual_seed(0), dtype=F64)
    total = 0
    with torch.no_grad():
        for attn in spec.attention:
            _, cache = build_layer(attn, 16, dtype=F64)(x)
            total += cache_nbytes(cache)
    return total


def test_every_layer_global_caches_what_real_full_attention_layers_hold():
    windowed = model(GQASpec(4, 2, 8, sliding_window=4), GQASpec(4, 2, 8, chunk_size=3), GQASpec(4, 1, 8))
    wide = all_global(windowed)
    assert [(a.sliding_window, a.chunk_size) for a in wide.attention] == [(None, None)] * 3
    assert [(a.n_heads, a.n_kv_heads, a.head_dim) for a in wide.attention] == [(4, 2, 8), (4, 2, 8), (4, 1, 8)]
    for n in (1, 5, 11):
        assert held(wide, n) == acc.kv_cache_bytes(wide, n, 1, "fp64")
        assert held(windowed, n) == acc.kv_cache_bytes(windowed, n, 1, "fp64")
    assert held(wide, 11) > held(windowed, 11)
    assert all_global(model(GQASpec(4, 2, 8))) is None


def test_llama_4_scout_with_every_layer_global_at_1m_tokens():
    scout = load_preset("llama-4-scout")
    n = 1_048_576
    wide = all_global(scout)
    assert acc.kv_cache_bytes(wide, n) == 48 * 2 * 8 * 128 * 2 * n == 192 * GIB
    assert acc.kv_cache_bytes(scout, n) == (12 * n + 36 * 8_192) * 2 * 8 * 128 * 2 == int(49.125 * GIB)
    assert round(acc.kv_cache_bytes(wide, n) / acc.kv_cache_bytes(scout, n), 2) == 3.91
    for name in ("gemma-3-27b", "gpt-oss-120b", "gemma-4-26b-a4b", "mimo-v2-flash"):
        spec = load_preset(name)
        assert acc.kv_cache_bytes(all_global(spec), n) > acc.kv_cache_bytes(spec, n), name
    assert all_global(load_preset("llama-3.1-70b")) is None


@pytest.mark.parametrize(
    "spec",
    [
        LinearAttentionSpec(2, 4, 8, 6, conv_kernel=4, ssm_dtype="fp64", conv_dtype="fp64"),
        Mamba2Spec(n_heads=4, head_dim=4, state_size=6, n_groups=2, ssm_dtype="fp64", conv_dtype="fp64"),
    ],
    ids=["GDN", "Mamba-2"],
)
def test_one_layers_state_is_the_nbytes_a_real_layer_carries(spec):
    (one,) = state_per_layer(model(spec, GQASpec(4, 2, 4), spec))
    assert one.n_layers == 2
    x = torch.randn(1, 7, 16, generator=torch.Generator().manual_seed(0), dtype=F64)
    with torch.no_grad():
        _, state = build_layer(spec, 16, dtype=F64)(x)
    assert sum(t.nbytes for t in state.tensors()) == one.bytes


def test_state_per_layer_by_hand_for_qwen3_next_and_nemotron_h():
    (gdn,) = state_per_layer(load_preset("qwen3-next-80b-a3b"))
    assert (gdn.kind, gdn.n_layers) == ("GDN", 36)
    assert gdn.bytes == 32 * 128 * 128 * 2 + 3 * (2 * 16 * 128 + 32 * 128) * 2 == 1_097_728
    assert attention_bytes_per_token_per_layer(load_preset("qwen3-next-80b-a3b")) == 2 * 2 * 256 * 2
    nemotron = load_preset("nemotron-h-56b")
    (mamba,) = state_per_layer(nemotron)
    assert (mamba.kind, mamba.n_layers) == ("Mamba-2", 54)
    assert mamba.n_layers * mamba.bytes == acc.state_bytes(nemotron)
    assert state_per_layer(load_preset("llama-3.1-70b")) == ()


def test_mla_layouts_of_deepseek_v3_per_token_per_layer():
    v3 = load_preset("deepseek-v3")
    mla = v3.attention[0]
    costs = {(c.layout, c.kv_dtype): c.bytes for c in mla_layouts(mla)}
    assert costs == {
        ("materialised", "bf16"): 128 * (192 + 128) * 2,
        ("latent", "bf16"): (512 + 64) * 2,
        ("latent", "fp8"): 512 + 64,
        ("fp8_ds_mla", "bf16"): 512 + 4 * 4 + 2 * 64,
    }
    assert costs[("materialised", "bf16")] == 81_920 and costs[("fp8_ds_mla", "bf16")] == 656
    mha = GQASpec(128, 128, 192, v_head_dim=128)  # MHA of equal heads: keys 192 wide, values 128
    assert acc.kv_bytes_per_token(model(mha)) == costs[("materialised", "bf16")]
    for (layout, dtype), b in costs.items():
        assert acc.kv_bytes_per_token(model(mla), dtype, layout) == b
    with pytest.raises(TypeError, match="MLA"):
        mla_layouts(mha)
