"""Frozen specs of the attention designs and of whole models.

Field names follow the references readers compare with: `n_heads`, `n_kv_heads`, `head_dim` for
MHA/GQA/MQA; DeepSeek's `kv_lora_rank`, `q_lora_rank`, `qk_nope_head_dim`, `qk_rope_head_dim`,
`v_head_dim` for MLA (arXiv 2405.04434); the `index_*` fields of DeepSeek-V3.2's lightning indexer;
`compress_ratio`, `sliding_window` and `head_dim` of DeepSeek V4's compressed layers.

Every spec validates itself in `__post_init__` and raises `ValueError` with a sentence that names the
field, so a bad config never reaches a tensor. Derived sizes are properties, never stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Upper bounds that catch absurd inputs (typos, `1e12`) long before any arithmetic.
MAX_WIDTH = 1 << 20  # hidden sizes, ranks, intermediate sizes
MAX_HEADS = 1 << 16
MAX_LAYERS = 10_000
MAX_VOCAB = 50_000_000
MAX_EXPERTS = 1 << 16


def check_int(name: str, value: object, lo: int = 1, hi: int = MAX_WIDTH) -> None:
    """Raise ValueError naming `name` unless `value` is an int in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo:,} and {hi:,}, got {value:,}.")


@dataclass(frozen=True)
class GQASpec:
    """Multi-head attention with `n_kv_heads` shared key/value heads: MHA, GQA or MQA.

    A layer with `sliding_window` set attends to (and caches) only the last `sliding_window` tokens; one
    with `chunk_size` set (Llama-4's chunked local attention) only the tokens of its own chunk. Values
    may be narrower or wider than keys (`v_head_dim`, MiMo-V2); `k_eq_v` layers (Gemma-4 full attention)
    project one tensor that serves as both key and value; `output_gate` layers (Qwen3-Next) project a
    sigmoid gate for the output alongside the query.
    """

    n_heads: int  # n_h: query heads
    n_kv_heads: int  # n_kv (n_g in the DeepSeek-V2 paper): key/value heads; 1 is MQA
    head_dim: int  # d_h: width of one query/key head
    sliding_window: int | None = None  # w: tokens a sliding-window layer keeps, None for full attention
    qkv_bias: bool = False
    o_bias: bool = False
    v_head_dim: int | None = None  # width of one value head when it differs from head_dim
    chunk_size: int | None = None  # c: chunked local attention, None for none
    k_eq_v: bool = False  # one projection serves as key and value
    output_gate: bool = False  # the query projection also yields an output gate (2x its width)

    def __post_init__(self) -> None:
        check_int("n_heads", self.n_heads, 1, MAX_HEADS)
        check_int("n_kv_heads", self.n_kv_heads, 1, MAX_HEADS)
        check_int("head_dim", self.head_dim, 1, 65_536)
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads}).")
        if self.sliding_window is not None:
            check_int("sliding_window", self.sliding_window, 1, 1 << 30)
        if self.v_head_dim is not None:
            check_int("v_head_dim", self.v_head_dim, 1, 65_536)
        if self.chunk_size is not None:
            check_int("chunk_size", self.chunk_size, 1, 1 << 30)
            if self.sliding_window:
                raise ValueError("a layer is either sliding-window or chunked, not both.")
        if self.k_eq_v and self.v_dim != self.head_dim:
            raise ValueError("a layer whose key is its value needs equal key and value widths.")

    @property
    def v_dim(self) -> int:
        return self.head_dim if self.v_head_dim is None else self.v_head_dim

    @property
    def design(self) -> str:
        if self.n_kv_heads == self.n_heads:
            return "MHA"
        return "MQA" if self.n_kv_heads == 1 else "GQA"

    @property
    def kind(self) -> str:
        """Layer-type label used in breakdowns: the design, plus the window or chunk if there is one."""
        if self.sliding_window:
            return f"{self.design} sliding"
        return f"{self.design} chunked" if self.chunk_size else self.design

    @property
    def group_size(self) -> int:
        return self.n_heads // self.n_kv_heads


@dataclass(frozen=True)
class MLASpec:
    """DeepSeek Multi-head Latent Attention (arXiv 2405.04434, DeepSeek-V3 inference/model.py).

    Keys and values are up-projected from one shared latent c_KV per token; a separate small key
    carries RoPE (decoupled RoPE) and is shared by all heads.
    """

    n_heads: int  # n_h: query heads
    kv_lora_rank: int  # d_c: width of the cached latent c_KV
    qk_nope_head_dim: int  # d_h: per-head query/key width without position information
    qk_rope_head_dim: int  # d_h^R: width of the decoupled RoPE query/key (key shared by heads)
    v_head_dim: int  # width of one value head
    q_lora_rank: int | None = None  # d_c': query latent width, None for a full-rank query projection

    def __post_init__(self) -> None:
        check_int("n_heads", self.n_heads, 1, MAX_HEADS)
        check_int("kv_lora_rank", self.kv_lora_rank)
        check_int("qk_nope_head_dim", self.qk_nope_head_dim, 0, 65_536)
        check_int("qk_rope_head_dim", self.qk_rope_head_dim, 0, 65_536)
        check_int("v_head_dim", self.v_head_dim, 1, 65_536)
        if self.qk_rope_head_dim % 2:
            raise ValueError(f"qk_rope_head_dim ({self.qk_rope_head_dim}) must be even for RoPE.")
        if self.qk_head_dim < 1:
            raise ValueError("qk_nope_head_dim + qk_rope_head_dim must be at least 1.")
        if self.q_lora_rank is not None:
            check_int("q_lora_rank", self.q_lora_rank)

    design = "MLA"
    kind = "MLA"

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim


@dataclass(frozen=True)
class DSASpec(MLASpec):
    """DeepSeek Sparse Attention (DeepSeek-V3.2): MLA plus a lightning indexer that keeps the
    `index_topk` best-scoring tokens per query. Indexer score I(t,s) = sum_j w_tj ReLU(q_tj . k_s),
    with one shared indexer key per token (DeepSeek-V3.2-Exp inference/model.py)."""

    index_n_heads: int = 64  # H^I: indexer query heads
    index_head_dim: int = 128  # d^I: width of the indexer query heads and of the cached indexer key
    index_topk: int = 2048  # k: tokens each query attends to
    # False: the layer attends to the top-k an earlier layer's indexer chose (GLM-5.2's "shared" layers in
    # `indexer_types`): it has no indexer, caches no indexer key and scores nothing
    own_indexer: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("index_n_heads", self.index_n_heads, 1, MAX_HEADS)
        check_int("index_head_dim", self.index_head_dim, 1, 65_536)
        check_int("index_topk", self.index_topk, 1, 1 << 30)

    design = "DSA"

    @property
    def kind(self) -> str:
        return "DSA" if self.own_indexer else "DSA shared index"


@dataclass(frozen=True)
class CompressedSpec:
    """One DeepSeek V4 attention layer: a single shared K=V head of `head_dim` (partial RoPE on the
    last `qk_rope_head_dim` channels) over compressed entries plus a window of raw tokens.

    compress_ratio 4 is CSA (indexer picks `index_topk` entries), 128 is HCA (attend all entries),
    0 is sliding-window only. Every layer keeps the last `sliding_window` raw tokens.
    """

    n_heads: int  # n_h: query heads (all share the one K=V head)
    head_dim: int  # width of the shared K=V entry
    qk_rope_head_dim: int  # channels of head_dim that carry RoPE
    compress_ratio: int  # m: tokens pooled into one entry; 0 for none
    sliding_window: int  # w: raw tokens every layer keeps
    q_lora_rank: int | None = None
    o_groups: int = 1  # output projection groups (grouped low-rank output, V4)
    o_lora_rank: int | None = None
    index_n_heads: int = 0
    index_head_dim: int = 0
    index_topk: int = 0

    def __post_init__(self) -> None:
        check_int("n_heads", self.n_heads, 1, MAX_HEADS)
        check_int("head_dim", self.head_dim, 1, 65_536)
        check_int("qk_rope_head_dim", self.qk_rope_head_dim, 0, self.head_dim)
        check_int("compress_ratio", self.compress_ratio, 0, 1 << 20)
        check_int("sliding_window", self.sliding_window, 1, 1 << 30)
        check_int("o_groups", self.o_groups, 1, MAX_HEADS)
        if self.n_heads % self.o_groups:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of o_groups ({self.o_groups}).")
        if self.q_lora_rank is not None:
            check_int("q_lora_rank", self.q_lora_rank)
        if self.o_lora_rank is not None:
            check_int("o_lora_rank", self.o_lora_rank)
        if self.indexed:
            check_int("index_n_heads", self.index_n_heads, 1, MAX_HEADS)
            check_int("index_head_dim", self.index_head_dim, 1, 65_536)
            check_int("index_topk", self.index_topk, 1, 1 << 30)

    @property
    def indexed(self) -> bool:
        """CSA layers (ratio 4) select entries with an indexer; HCA layers attend to all entries."""
        return self.compress_ratio == 4

    @property
    def kind(self) -> str:
        if self.compress_ratio == 0:
            return "SWA"
        return "CSA" if self.indexed else "HCA"

    @property
    def design(self) -> str:
        return f"V4 {self.kind}"


@dataclass(frozen=True)
class LinearAttentionSpec:
    """Linear attention with a delta-rule recurrent state: Gated DeltaNet (Qwen3-Next, Qwen3.5) or Kimi
    Delta Attention (Kimi-Linear). Per sequence it keeps a fixed-size state, whatever the context: a
    (value heads x key dim x value dim) matrix and the last `conv_kernel - 1` inputs of the short
    causal convolution over the q, k and v channels. The state has its own dtypes, not the KV cache's.
    """

    n_key_heads: int  # linear_num_key_heads
    n_value_heads: int  # linear_num_value_heads (a multiple of n_key_heads)
    key_head_dim: int  # linear_key_head_dim
    value_head_dim: int  # linear_value_head_dim
    conv_kernel: int = 4  # linear_conv_kernel_dim
    variant: str = "GDN"  # "GDN" (Gated DeltaNet) or "KDA" (Kimi Delta Attention)
    ssm_dtype: str = "bf16"  # storage format of the recurrent state
    conv_dtype: str = "bf16"  # storage format of the convolution state

    def __post_init__(self) -> None:
        check_int("linear_num_key_heads", self.n_key_heads, 1, MAX_HEADS)
        check_int("linear_num_value_heads", self.n_value_heads, 1, MAX_HEADS)
        check_int("linear_key_head_dim", self.key_head_dim, 1, 65_536)
        check_int("linear_value_head_dim", self.value_head_dim, 1, 65_536)
        check_int("linear_conv_kernel_dim", self.conv_kernel, 1, 1024)
        if self.n_value_heads % self.n_key_heads:
            raise ValueError(
                f"linear_num_value_heads ({self.n_value_heads}) must be a multiple of linear_num_key_heads "
                f"({self.n_key_heads})."
            )
        if self.variant not in ("GDN", "KDA"):
            raise ValueError(f"unknown linear attention variant {self.variant!r}.")

    @property
    def design(self) -> str:
        return "Gated DeltaNet" if self.variant == "GDN" else "Kimi Delta Attention"

    @property
    def kind(self) -> str:
        return self.variant

    @property
    def key_dim(self) -> int:
        return self.n_key_heads * self.key_head_dim

    @property
    def value_dim(self) -> int:
        return self.n_value_heads * self.value_head_dim

    @property
    def conv_dim(self) -> int:
        """Channels of the short convolution: q and k (key heads x key dim each) and v."""
        return 2 * self.n_key_heads * self.key_head_dim + self.n_value_heads * self.value_head_dim


@dataclass(frozen=True)
class Mamba2Spec:
    """A Mamba-2 mixer (Nemotron-H, Granite-4, Falcon-H1): per sequence a fixed-size SSM state
    (heads x head dim x state size) and the last `conv_kernel - 1` inputs of its causal convolution over
    x, B and C. The state has its own dtypes, not the KV cache's."""

    n_heads: int  # mamba_num_heads
    head_dim: int  # mamba_head_dim
    state_size: int  # ssm_state_size (N)
    n_groups: int = 1  # n_groups: B and C are shared within a group of heads
    conv_kernel: int = 4
    ssm_dtype: str = "bf16"
    conv_dtype: str = "bf16"
    conv_bias: bool = True
    proj_bias: bool = False
    gated_norm: bool = True  # a gated RMS norm of H P before out_proj (Falcon-H1: only with mamba_rms_norm)
    ssm_dtype_stated: bool = True  # False: the config names no SSM state dtype (engines then pick their own)
    chunk_size: int | None = None  # the prefill scan's chunk (chunk_size / mamba_chunk_size); None: not given

    def __post_init__(self) -> None:
        check_int("mamba_num_heads", self.n_heads, 1, MAX_HEADS)
        check_int("mamba_head_dim", self.head_dim, 1, 65_536)
        check_int("ssm_state_size", self.state_size, 1, 65_536)
        check_int("n_groups", self.n_groups, 1, MAX_HEADS)
        check_int("conv_kernel", self.conv_kernel, 1, 1024)
        if self.n_heads % self.n_groups:
            raise ValueError(f"mamba_num_heads ({self.n_heads}) must be a multiple of n_groups ({self.n_groups}).")

    design = "Mamba-2"
    kind = "Mamba-2"

    @property
    def d_inner(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def conv_dim(self) -> int:
        return self.d_inner + 2 * self.n_groups * self.state_size


@dataclass(frozen=True)
class Mamba1Spec:
    """A Mamba-1 mixer (Jamba; HF `modeling_jamba.py` JambaMambaMixer): per sequence a fixed-size SSM state
    (d_inner x state size) and the last `conv_kernel - 1` inputs of its depthwise convolution over the
    d_inner channels. dt is projected through a rank `dt_rank` bottleneck. The state has its own dtypes."""

    d_inner: int  # mamba_expand x hidden_size
    state_size: int  # mamba_d_state (N)
    conv_kernel: int = 4  # mamba_d_conv
    dt_rank: int = 1  # mamba_dt_rank
    ssm_dtype: str = "bf16"
    conv_dtype: str = "bf16"
    conv_bias: bool = True
    proj_bias: bool = False
    dt_norms: bool = False  # Jamba: RMS norms on dt, B and C

    def __post_init__(self) -> None:
        check_int("mamba d_inner", self.d_inner)
        check_int("mamba_d_state", self.state_size, 1, 65_536)
        check_int("mamba_d_conv", self.conv_kernel, 1, 1024)
        check_int("mamba_dt_rank", self.dt_rank)

    design = "Mamba-1"
    kind = "Mamba-1"


@dataclass(frozen=True)
class LightningSpec:
    """Lightning attention (MiniMax-Text-01 / MiniMax-M1; vLLM `minimax_text_01.py`): linear attention with
    a per-head decay. Per sequence and layer it keeps one head_dim x head_dim key-value state per head,
    whatever the context (vLLM keeps it in the model dtype: `linear_attention_state_dtype`); no keys or
    values are cached and there is no convolution."""

    n_heads: int
    head_dim: int
    state_dtype: str = "bf16"

    def __post_init__(self) -> None:
        check_int("num_attention_heads", self.n_heads, 1, MAX_HEADS)
        check_int("head_dim", self.head_dim, 1, 65_536)

    design = "Lightning attention"
    kind = "Lightning"


@dataclass(frozen=True)
class ShortConvSpec:
    """A gated short convolution (LFM2's conv blocks; HF `modeling_lfm2.py` Lfm2ShortConv): per sequence
    it keeps the last `conv_kernel - 1` inputs of a depthwise convolution over `channels` (the hidden
    size), in the model dtype, whatever the context."""

    channels: int  # hidden_size
    conv_kernel: int  # conv_L_cache
    conv_dtype: str = "bf16"
    conv_bias: bool = False

    def __post_init__(self) -> None:
        check_int("hidden_size", self.channels)
        check_int("conv_L_cache", self.conv_kernel, 1, 1024)

    design = "Short convolution"
    kind = "ShortConv"


@dataclass(frozen=True)
class ParallelSpec:
    """A layer with several sequence mixers, each keeping its own cache or state: Falcon-H1 runs attention
    and Mamba-2 side by side on every layer; Zamba2's hybrid layers apply a shared attention block (its
    own KV cache at each depth it is applied) before their Mamba-2 mixer."""

    parts: tuple  # the mixers' specs, e.g. (GQASpec, Mamba2Spec)
    sequential: bool = False  # Zamba2: each mixer reads the previous one's output (Falcon-H1: all read the input)

    def __post_init__(self) -> None:
        if len(self.parts) < 2 or any(isinstance(p, ParallelSpec | NoMixer) for p in self.parts):
            raise ValueError("a layer of parallel mixers needs at least two mixers, none of them nested.")

    @property
    def design(self) -> str:
        return " + ".join(p.design for p in self.parts)

    @property
    def kind(self) -> str:
        return " + ".join(p.kind for p in self.parts)


@dataclass(frozen=True)
class BlockSparseSpec:
    """GQA attention that reads only some blocks of its cache, chosen by an indexer (MiniMax-M3's sparse
    layers; vLLM `models/minimax_m3`, HF `MiniMaxM3VLIndexer`). Every token's keys and values are cached as
    in `attention`, plus one indexer key of `index_head_dim` per token, in `index_dtype` whatever the KV
    cache's dtype (vLLM `resolve_indexer_kv_dtype("bf16")`). A decoded query scores every cached indexer
    key with `index_n_heads` heads, takes the best `topk_blocks` blocks of `block_size` tokens (its own
    last, partial block among them) and attends to their tokens only."""

    attention: GQASpec
    index_n_heads: int  # H^I
    index_head_dim: int  # d^I: the cached indexer key's width
    block_size: int  # tokens per block the indexer ranks
    topk_blocks: int  # blocks each query attends to, its own included
    local_blocks: int = 1  # newest blocks always kept (among the top-k)
    index_dtype: str = "bf16"

    def __post_init__(self) -> None:
        check_int("index_n_heads", self.index_n_heads, 1, MAX_HEADS)
        check_int("index_head_dim", self.index_head_dim, 1, 65_536)
        check_int("index_block_size", self.block_size, 1, 1 << 20)
        check_int("index_topk_blocks", self.topk_blocks, 1, 1 << 20)
        check_int("index_local_blocks", self.local_blocks, 1, self.topk_blocks)
        if self.attention.sliding_window or self.attention.chunk_size:
            raise ValueError("block-sparse attention over a sliding or chunked layer is not supported.")

    @property
    def design(self) -> str:
        return f"{self.attention.design} block-sparse"

    @property
    def kind(self) -> str:
        return f"{self.attention.design} block-sparse"


@dataclass(frozen=True)
class NoMixer:
    """A layer without attention or a sequence mixer (Nemotron-H's MLP-only layers, DeciLM's no-op
    attention): it caches nothing. `linear` layers (DeciLM `replace_with_linear`) hold one hidden x hidden
    matrix instead."""

    linear: bool = False

    design = "none"

    @property
    def kind(self) -> str:
        return "linear (no attention)" if self.linear else "no attention"


AttentionSpec = (
    GQASpec
    | MLASpec
    | DSASpec
    | CompressedSpec
    | LinearAttentionSpec
    | Mamba2Spec
    | Mamba1Spec
    | LightningSpec
    | ShortConvSpec
    | ParallelSpec
    | BlockSparseSpec
    | NoMixer
)


@dataclass(frozen=True)
class DenseMLP:
    """A feed-forward block: gated (SwiGLU/GeGLU: 3 matrices) or plain (GPT-2: 2 matrices)."""

    intermediate_size: int
    gated: bool = True
    bias: bool = False

    def __post_init__(self) -> None:
        check_int("intermediate_size", self.intermediate_size)


@dataclass(frozen=True)
class MoEMLP:
    """A mixture-of-experts block: `n_routed` experts of which `top_k` run per token, plus `n_shared`
    always-on experts of `shared_intermediate_size` each. In a latent MoE (Nemotron 3 Super / Ultra) the
    routed experts read and write a `latent_size`-wide projection of the hidden state (fc1_latent_proj,
    fc2_latent_proj); the shared expert and the router see the hidden state. Experts are gated (gate, up, down) unless
    `gated` is False (Nemotron-H: up, squared ReLU, down); the router has a bias or correction bias per
    expert unless `router_bias` is False (Llama-4)."""

    n_routed: int
    top_k: int
    expert_intermediate_size: int
    n_shared: int = 0
    shared_intermediate_size: int = 0
    bias: bool = False
    gated: bool = True
    router_bias: bool = True
    latent_size: int | None = None  # LatentMoE (Nemotron 3): routed experts work in this width, not hidden

    def __post_init__(self) -> None:
        check_int("n_routed_experts", self.n_routed, 1, MAX_EXPERTS)
        check_int("num_experts_per_tok", self.top_k, 1, self.n_routed)
        check_int("moe_intermediate_size", self.expert_intermediate_size)
        check_int("n_shared_experts", self.n_shared, 0, MAX_EXPERTS)
        if self.n_shared:
            check_int("shared expert intermediate size", self.shared_intermediate_size)
        if self.latent_size is not None:
            check_int("moe_latent_size", self.latent_size)


MLPSpec = DenseMLP | MoEMLP


@dataclass(frozen=True)
class RopeScaling:
    """One RoPE scaling entry of a config (`rope_scaling`, or `rope_parameters`, per layer type in newer
    files), its type normalised as vLLM does: a legacy "type" key, "su" -> "longrope", "mrope" -> "default"."""

    rope_type: str
    factor: float | None = None
    original_max_position_embeddings: int | None = None


@dataclass(frozen=True)
class ContextLimits:
    """What a config says about the longest context, read and not judged: every length key present (in the
    order vLLM lists them), the top-level `original_max_position_embeddings` and the RoPE scaling entries.
    An engine's rule (core.accounting.limits) derives its maximum from these. `problems`: values that could
    not be read (not a whole number, a malformed RoPE entry); any makes the derived maximum unknown."""

    lengths: tuple[tuple[str, int], ...] = ()
    original_max_position_embeddings: int | None = None
    rope: tuple[RopeScaling, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only model: per-layer attention and MLP (so hybrids are natural) plus what
    parameter counting needs. `extra_params` holds parameters the generic count does not see
    (learned position embeddings, V4 hyper-connection mixers), each named."""

    name: str
    model_type: str
    hidden_size: int
    vocab_size: int
    attention: tuple[AttentionSpec, ...]
    mlp: tuple[MLPSpec, ...]
    tie_word_embeddings: bool = False
    params_unknown: tuple[str, ...] = ()  # fields parameter counting needs that the config lacks
    n_mtp_layers: int = 0  # next-token-prediction modules beyond num_hidden_layers (not counted)
    # weight formats the release ships: (embeddings and lm_head, routed experts, everything else)
    native_weights: tuple[str, str, str] = ("bf16", "bf16", "bf16")
    extra_params: tuple[tuple[str, int], ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)  # what the parser decided and why
    context_limits: ContextLimits | None = None  # None: not built from a config, so no engine limit is known

    def __post_init__(self) -> None:
        check_int("hidden_size", self.hidden_size)
        check_int("vocab_size", self.vocab_size, 0 if self.params_unknown else 1, MAX_VOCAB)
        check_int("num_hidden_layers", len(self.attention), 1, MAX_LAYERS)
        if len(self.mlp) != len(self.attention):
            raise ValueError("every layer needs both an attention and an MLP spec.")

    @property
    def n_layers(self) -> int:
        return len(self.attention)

    @property
    def layer_kinds(self) -> dict[str, int]:
        """How many layers of each kind, in order of first appearance: {"GQA": 80}."""
        out: dict[str, int] = {}
        for a in self.attention:
            out[a.kind] = out.get(a.kind, 0) + 1
        return out

    @property
    def design(self) -> str:
        """One word for a uniform model ("MLA"), or the mix ("30 CSA + 31 HCA")."""
        kinds = self.layer_kinds
        if len(kinds) == 1:
            return next(iter(kinds))
        return " + ".join(f"{n} {k}" for k, n in kinds.items())


def unknown_parameters(unknown: tuple[str, ...] | list[str]) -> str:
    """Why a parameter count is unknown: fields the config lacks ("the config has no vocab_size") and
    parts the engine does not count, named in words."""
    missing = [u for u in unknown if " " not in u]
    parts = [f"the config has no {', '.join(missing)}"] if missing else []
    return "; ".join(parts + [f"{u} are not counted" for u in unknown if " " in u])
