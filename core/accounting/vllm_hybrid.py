"""vLLM's block pool for hybrid models, release by release: full-attention layers beside Gated DeltaNet
(Qwen3-Next, Qwen3.5/3.6) or Mamba-2 layers (Nemotron-H, Granite-4.0-H, Falcon-H1).

vLLM keeps a recurrent layer's state in pages of the same pool as the attention blocks, and makes the
pages one size (read from the wheels of each release listed in RELEASES):
- **Block size.** One attention block must hold at least one state page, so the attention block size is
  raised to `a x cdiv(state page, a x attention bytes per token)`, a = 16 (the kernels' alignment; from
  0.20 max(16, --block-size)). With prefix caching in "all" mode it is a multiple of lcm(the Mamba chunk
  size, a) instead; vLLM logs `Setting attention block size to N tokens ...`. (0.10-0.11.0:
  `HybridAttentionMambaModelConfig` in vllm/model_executor/models/config.py; from 0.20
  `Platform._align_hybrid_block_size` in vllm/platforms/interface.py.)
- **Padding.** The state page is padded to the attention page: `Padding mamba page size by X% ...`.
- **Groups.** Layers of each kind are dealt into KV-cache groups of `group_size` layers (the fewest layers
  of any kind; from 0.18 the most when that is under 1.5 x the fewest), padded with empty layers when
  the counts do not divide; every group draws from one pool, whose block is a page of each of
  `group_size` layers: num_blocks = available // page // group_size (vllm/v1/core/kv_cache_utils.py).
- **Blocks per request** (`max_memory_usage_bytes`): an attention group cdiv(max_model_len, block); a
  state group one page (up to 0.11.0 and in "none" mode, plus one per speculative token from 0.15), two
  in "align" mode (plus the speculative ones), every block of the request in "all" mode (0.11.2-0.14:
  cdiv(max_model_len, mamba_block_size), mamba_block_size being max_model_len without prefix caching).
- **State shapes and dtypes** (`MambaStateShapeCalculator`, `MambaStateDtypeCalculator`): the convolution
  state keeps conv_kernel - 1 + speculative tokens rows, in the model's dtype; the SSM state is in
  --mamba-ssm-cache-dtype, else (Qwen3.5, from 0.17) the config's `mamba_ssm_dtype`, else (Nemotron-H,
  from 0.13) the config's `mamba_ssm_cache_dtype` or float16, else the model's dtype. Gated DeltaNet
  ignores --mamba-ssm-cache-dtype before 0.17. MTP drafts add the draft's attention layers to the model's.
- **Logged size.** "GPU KV cache size" is num_blocks // groups x block size up to 0.20.0 and
  int(concurrency x max_model_len) from 0.20.1 (vLLM PR #40694).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import ceil, lcm

from core.accounting import totals as acc
from core.accounting.base import design_of
from core.model.specs import GQASpec, LinearAttentionSpec, Mamba2Spec, ModelSpec, NoMixer

MODES = ("none", "all", "align")
# vLLM's MTP drafters when the config names no count: qwen3_next_mtp.py reads num_nextn_predict_layers and
# qwen3_5_mtp.py mtp_num_hidden_layers, each defaulting to 1
MTP_DEFAULT_LAYERS = {"qwen3_next": 1, "qwen3_5": 1, "qwen3_5_moe": 1, "qwen3_5_text": 1, "qwen3_5_moe_text": 1}
SSM_DTYPES = {"auto": None, "float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
STATE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
# model types whose Mamba layers support prefix caching in "all" mode (SupportsMambaPrefixCaching)
ALL_MODE_MODELS = frozenset({"nemotron_h", "granitemoehybrid", "falcon_h1", "bamba", "jamba", "zamba2"})


@dataclass(frozen=True)
class Release:
    """The rules of one vLLM release line that size a hybrid pool (each checked in that release's code)."""

    versions: tuple[str, ...]  # the releases these rules were read from
    legacy: bool = False  # <= 0.11.0: block 16 x cdiv(...), prefix caching forced off for hybrids
    all_only: bool = False  # 0.11.2-0.14: prefix caching only for ALL_MODE_MODELS, states paged per block
    modes: bool = False  # >= 0.15: --mamba-cache-mode none|all|align
    gdn_ssm_dtype: bool = False  # >= 0.17: Gated DeltaNet's SSM state follows the SSM dtype
    nemotron_fp16: bool = False  # >= 0.13: Nemotron-H's SSM state from its config, else float16
    group_15: bool = False  # >= 0.18: group size the most layers when under 1.5 x the fewest
    kernel_from_block: bool = False  # >= 0.20: alignment max(16, --block-size)
    tokens_from_concurrency: bool = False  # >= 0.20.1
    spec_align: bool = False  # 0.20-0.21: prefix caching with speculative decoding: "align" mode
    all_counts_spec: bool = False  # >= 0.25: "all" mode adds the speculative blocks
    prefix_default: bool = False  # >= 0.26: prefix caching on by default for hybrid models
    align_default: bool = False  # >= 0.29: prefix caching means "align" mode for every hybrid
    mamba2_checkpoint: bool = False  # >= 0.32: Mamba-2 layers keep a prefill checkpoint block in align mode
    gdn_checkpoint: bool = False  # >= 0.33: so do Gated DeltaNet layers whose prefill runs on FlashInfer
    round_gib: bool = True  # >= 0.14: GiB printed as str(round(x, 2)) ("5.3"), before as %.2f ("5.30")
    seqs_check: bool = False  # >= 0.24: with full CUDA graphs, max_num_seqs <= the pool's blocks or no start
    no_all_mode: bool = False  # >= 0.32: --mamba-cache-mode takes align or none only

    @property
    def version(self) -> str:
        return self.versions[-1]

    def gib(self, n: int) -> str:
        """`n` bytes as this release prints GiB."""
        x = n / 2**30
        return str(round(x, 2)) if self.round_gib else f"{x:.2f}"


def _r(versions: str, **kw) -> Release:
    return Release(tuple(versions.split()), **kw)


_A = dict(modes=True, gdn_ssm_dtype=True, nemotron_fp16=True, group_15=True, kernel_from_block=True)
RELEASES: tuple[Release, ...] = (
    _r("0.10.0 0.10.1 0.10.1.1 0.10.2 0.11.0", legacy=True, round_gib=False),
    _r("0.11.2 0.12.0", all_only=True, round_gib=False),
    _r("0.13.0", all_only=True, nemotron_fp16=True, round_gib=False),
    _r("0.14.0 0.14.1", all_only=True, nemotron_fp16=True),
    _r("0.15.0 0.15.1 0.16.0", modes=True, nemotron_fp16=True),
    _r("0.17.0 0.17.1", modes=True, nemotron_fp16=True, gdn_ssm_dtype=True),
    _r("0.18.0 0.18.1 0.19.0 0.19.1", modes=True, nemotron_fp16=True, gdn_ssm_dtype=True, group_15=True),
    _r("0.20.0", **_A, spec_align=True),
    _r("0.20.1 0.20.2 0.21.0", **_A, spec_align=True, tokens_from_concurrency=True),
    _r("0.22.0 0.22.1 0.23.0", **_A, tokens_from_concurrency=True),
    _r("0.24.0", **_A, tokens_from_concurrency=True, seqs_check=True),
    _r("0.25.0 0.25.1", **_A, tokens_from_concurrency=True, all_counts_spec=True, seqs_check=True),
    _r(
        "0.26.0 0.27.0 0.27.1 0.28.0",
        **_A,
        tokens_from_concurrency=True,
        all_counts_spec=True,
        prefix_default=True,
        seqs_check=True,
    ),
    _r(
        "0.29.0 0.30.0 0.31.0",
        **_A,
        tokens_from_concurrency=True,
        all_counts_spec=True,
        prefix_default=True,
        align_default=True,
        seqs_check=True,
    ),
    _r(
        "0.32.0",
        **_A,
        tokens_from_concurrency=True,
        prefix_default=True,
        align_default=True,
        seqs_check=True,
        no_all_mode=True,
        mamba2_checkpoint=True,
    ),
    _r(
        "0.33.0 0.34.0",
        **_A,
        tokens_from_concurrency=True,
        prefix_default=True,
        align_default=True,
        seqs_check=True,
        no_all_mode=True,
        mamba2_checkpoint=True,
        gdn_checkpoint=True,
    ),
)
_BY_VERSION = {v: r for r in RELEASES for v in r.versions}
VERSIONS = tuple(_BY_VERSION)


def release(version: str) -> Release:
    """The rules of `version` ("0.24.0", or "0.24" when every patch of 0.24 shares them). ValueError for a
    release whose code was not read, or a minor line whose patches differ."""
    v = str(version).strip().lstrip("v")
    if not re.fullmatch(r"\d+\.\d+(\.\d+){0,2}", v):
        raise ValueError(f"vLLM version must look like 0.24 or 0.24.0, got {str(version)[:40]!r}.")
    if v in _BY_VERSION:
        return _BY_VERSION[v]
    line = [r for r in RELEASES if any(x == v or x.startswith(v + ".") for x in r.versions)]
    if len(line) == 1:
        return line[0]
    if len(line) > 1:
        patches = ", ".join(x for r in line for x in r.versions if x.startswith(v + "."))
        raise ValueError(f"vLLM {v}'s patch releases size hybrid pools differently ({patches}): give the patch.")
    raise ValueError(f"vLLM {v} is not a release whose code this planner follows; choose one of {', '.join(VERSIONS)}.")


class Unmodelled(ValueError):
    """vLLM's pool depends on something the settings do not say: the plan is an estimate."""


@dataclass(frozen=True)
class HybridSettings:
    """vLLM's flags that shape a hybrid pool (vLLM's own names)."""

    version: str = "0.33.0"
    enable_prefix_caching: bool | None = None  # None: the release's default for hybrid models
    mamba_cache_mode: str | None = None  # none | all | align; None: what the release picks
    mamba_block_size: int | None = None
    mamba_ssm_cache_dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    num_speculative_tokens: int = 0  # MTP drafts reusing the model's own layers
    # where Gated DeltaNet's prefill runs (from 0.33 FlashInfer's exports align-mode checkpoints):
    # "flashinfer" (Hopper; Blackwell with CUDA 13), "triton" (other GPUs), None: unknown
    gdn_prefill: str | None = None
    enforce_eager: bool = False  # --enforce-eager: no CUDA graphs (and no max_num_seqs check against the pool)

    def __post_init__(self) -> None:
        if self.mamba_cache_mode is not None and self.mamba_cache_mode not in MODES:
            raise ValueError(f"--mamba-cache-mode must be one of {', '.join(MODES)}, got {self.mamba_cache_mode!r}.")
        if self.mamba_ssm_cache_dtype not in SSM_DTYPES:
            raise ValueError(
                f"--mamba-ssm-cache-dtype must be one of {', '.join(SSM_DTYPES)}, got {self.mamba_ssm_cache_dtype!r}."
            )
        for name in ("mamba_block_size", "num_speculative_tokens"):
            v = getattr(self, name)
            lo = 1 if name == "mamba_block_size" else 0
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= 1 << 20):
                raise ValueError(f"--{name.replace('_', '-')} must be a whole number from {lo} to {1 << 20:,}.")
        release(self.version)


@dataclass(frozen=True)
class HybridPool:
    """How vLLM pages one hybrid model on one TP rank."""

    release: Release
    mode: str  # the Mamba cache mode in effect ("none" without prefix caching)
    prefix_caching: bool
    block_size: int  # the attention block size after alignment
    block_raised: bool  # vLLM logs the "Setting attention block size" line
    attention_token_bytes: int  # one token of one attention layer
    state_bytes: int  # one state page before padding
    ssm_dtype: str
    conv_dtype: str
    n_attention: int  # attention layers, MTP drafts' included
    n_state: int
    spec_tokens: int
    mamba_block_size: int | None  # tokens per state page in "all" mode (None otherwise)
    checkpoint: bool = False  # align mode keeps a prefill checkpoint block (Mamba-2 from 0.32, GDN from 0.33)

    @property
    def page_bytes(self) -> int:
        return self.block_size * self.attention_token_bytes

    @property
    def padding_percent(self) -> float:
        return 100 * (self.page_bytes - self.state_bytes) / self.state_bytes

    def state_blocks(self, max_model_len: int) -> int:
        """Blocks one request's state takes in one state group (vLLM's max_memory_usage_bytes / page)."""
        r, s = self.release, self.spec_tokens
        if r.legacy:
            return 1
        if r.all_only:
            return ceil(max_model_len / self.mamba_block_size) if self.mode == "all" else 1
        if self.mode == "all":
            return ceil(max_model_len / self.mamba_block_size) + (s if r.all_counts_spec else 0)
        if self.mode == "align":
            return 2 + s + (1 if self.checkpoint else 0)
        return 1 + s

    def lines(self) -> list[str]:
        """vLLM's lines about the block size and the padding, as it prints them."""
        out = []
        if self.block_raised:
            out.append(
                f"Setting attention block size to {self.block_size} tokens to ensure that attention page size "
                "is >= mamba page size."
            )
        if self.page_bytes != self.state_bytes:
            out.append(
                f"Padding mamba page size by {self.padding_percent:.2f}% to ensure that mamba page size and "
                "attention page size are exactly equal."
            )
        return out


def is_state_layer(a) -> bool:
    return isinstance(a, Mamba2Spec) or (isinstance(a, LinearAttentionSpec) and a.variant == "GDN")


def unsupported(spec: ModelSpec) -> str | None:
    """None when this module pages `spec` exactly; else why not."""
    kinds = {type(a) for a in spec.attention if not isinstance(a, NoMixer)}
    states = [a for a in spec.attention if is_state_layer(a)]
    if not states:
        return "no Mamba-2 or Gated DeltaNet layers"
    other = sorted({a.kind for a in spec.attention if not (is_state_layer(a) or isinstance(a, (GQASpec, NoMixer)))})
    if other:
        return f"vLLM's pages for {', '.join(other)} layers beside recurrent state are not modelled"
    attn = [a for a in spec.attention if isinstance(a, GQASpec)]
    if not attn:
        return "no attention layer to align the state pages to"
    shapes = {(a.n_kv_heads, a.head_dim, a.v_head_dim, a.sliding_window, a.chunk_size, a.k_eq_v) for a in attn}
    if len(shapes) > 1 or attn[0].sliding_window or attn[0].chunk_size:
        return "its attention layers differ (sliding windows, chunks or head shapes) beside recurrent state"
    if len(set(map(repr, states))) > 1 or len(kinds) > 3:
        return "its recurrent layers differ in shape"
    return None


def _state_shapes(a, tp: int, spec_tokens: int) -> tuple[int, int]:
    """(convolution elements, SSM elements) of one layer's state on one of `tp` ranks."""
    if isinstance(a, LinearAttentionSpec):
        if a.conv_dim % tp or a.n_value_heads % tp:
            raise ValueError(f"TP {tp} does not divide the Gated DeltaNet heads ({a.n_value_heads} value heads).")
        conv = a.conv_dim // tp * (a.conv_kernel - 1 + spec_tokens)
        return conv, a.n_value_heads // tp * a.key_head_dim * a.value_head_dim
    groups = a.n_groups + (0 if a.n_groups % tp == 0 else tp - a.n_groups)  # extra_groups_for_head_shards
    conv_dim = a.d_inner + 2 * groups * a.state_size
    if conv_dim % tp or a.n_heads % tp:
        raise ValueError(f"TP {tp} does not divide the Mamba-2 heads ({a.n_heads}).")
    return conv_dim // tp * (a.conv_kernel - 1 + spec_tokens), a.n_heads // tp * a.head_dim * a.state_size


def _ssm_dtype(spec: ModelSpec, a, r: Release, s: HybridSettings, model_dtype: str) -> str:
    flag = SSM_DTYPES[s.mamba_ssm_cache_dtype]
    if isinstance(a, LinearAttentionSpec):
        if not r.gdn_ssm_dtype:
            return model_dtype
        return flag or a.ssm_dtype  # the config's mamba_ssm_dtype (Qwen3.5), else the model's dtype
    if flag:
        return flag
    if spec.model_type == "nemotron_h" and r.nemotron_fp16:
        return a.ssm_dtype if a.ssm_dtype_stated else "fp16"
    return model_dtype


def hybrid_pool(
    spec: ModelSpec, tp: int, kv_dtype: str, model_dtype: str, block_size: int, s: HybridSettings, chunk: int | None
) -> HybridPool:
    """vLLM's paging of `spec` (unsharded) on one of `tp` ranks. `kv_dtype` the cache's (resolved, not
    "auto"), `model_dtype` the checkpoint's compute dtype (bf16 / fp16), `block_size` --block-size (the
    attention backend's, 16 by default), `chunk` the Mamba chunk size (all mode). ValueError for settings
    vLLM refuses, or a model `unsupported` names."""
    why = unsupported(spec)
    if why:
        raise ValueError(why)
    r = release(s.version)
    states = [a for a in spec.attention if is_state_layer(a)]
    attn = [a for a in spec.attention if isinstance(a, GQASpec)]
    spec_tokens = s.num_speculative_tokens
    mtp_layers = spec.n_mtp_layers or MTP_DEFAULT_LAYERS.get(spec.model_type, 0)
    if spec_tokens and not mtp_layers:
        raise ValueError(
            "MTP draft tokens need the model's MTP layers (num_nextn_predict_layers or mtp_num_hidden_layers), "
            "and this config has none."
        )
    if s.mamba_cache_mode is not None and not r.modes:
        raise ValueError(f"vLLM {s.version} has no --mamba-cache-mode (it came in 0.15).")
    if s.mamba_cache_mode == "all" and r.no_all_mode:
        raise ValueError(f"vLLM {s.version} has no --mamba-cache-mode all (it takes align or none).")
    pc = s.enable_prefix_caching if s.enable_prefix_caching is not None else r.prefix_default
    all_ok = spec.model_type in ALL_MODE_MODELS
    mode = "none"
    if r.legacy:
        pc = False  # "Hybrid or mamba-based model detected: disabling prefix caching"
    elif r.all_only:
        pc = pc and all_ok
        mode = "all" if pc else "none"
    elif pc:
        mode = s.mamba_cache_mode or "none"
        if mode == "none":
            mode = "align" if (not all_ok or (r.spec_align and spec_tokens) or r.align_default) else "all"
        if mode == "all" and not all_ok:
            mode = "align"
    gdn = isinstance(states[0], LinearAttentionSpec)
    checkpoint = mode == "align" and (
        (r.gdn_checkpoint and s.gdn_prefill == "flashinfer") if gdn else r.mamba2_checkpoint
    )
    if r.gdn_checkpoint and mode == "align" and gdn and s.gdn_prefill not in ("flashinfer", "triton"):
        raise Unmodelled(
            f"vLLM {s.version} keeps a prefill checkpoint block per Gated DeltaNet group in align mode when the "
            "GDN prefill runs on FlashInfer (Hopper; Blackwell with CUDA 13), which this GPU does not settle"
        )
    token = acc.bytes_by_layer([design_of(attn[0]).tp_shard(attn[0], tp)], 1, kv_dtype, "latent")[0]
    conv, ssm = _state_shapes(states[0], tp, spec_tokens)
    ssm_dtype = _ssm_dtype(spec, states[0], r, s, model_dtype)
    state = conv * STATE_BYTES[model_dtype] + ssm * STATE_BYTES[ssm_dtype]
    align = max(16, block_size) if r.kernel_from_block else 16
    if checkpoint and gdn:
        align = lcm(align, 64)  # FLASHINFER_GDN_CHECKPOINT_ALIGNMENT
    mamba_block = None
    if mode == "all":
        base = s.mamba_block_size or chunk or 2048  # vLLM's get_mamba_chunk_size defaults to 2048
        step = lcm(base, align)
        need = step * ceil(ceil(state / token) / step)
        mamba_block = need
    else:
        need = align * ceil(state / (align * token))
    raised = r.legacy or block_size < need
    block = need if raised else block_size
    n_attn = len(attn) + (mtp_layers if spec_tokens else 0)
    return HybridPool(
        r,
        mode,
        pc,
        block,
        raised,
        token,
        state,
        ssm_dtype,
        model_dtype,
        n_attn,
        len(states),
        spec_tokens,
        mamba_block,
        checkpoint,
    )


def padding_lines(counts: list[int], size: int) -> list[str]:
    """vLLM's warning for each kind of layer whose count `size` does not divide (the groups it pads)."""
    return [
        f"Add {size - n % size} padding layers, may waste at most {(size - n % size) / n * 100:.2f}% KV cache memory"
        for n in counts
        if n % size
    ]


def group_size(r: Release, counts: list[int]) -> int:
    lo, hi = min(counts), max(counts)
    return hi if r.group_15 and hi < 1.5 * lo else lo


def gdn_prefill_for(gpu_name: str) -> str | None:
    """Where vLLM runs Gated DeltaNet's prefill on `gpu_name` ("auto"): FlashInfer on Hopper, Triton on
    Ampere, Ada and AMD GPUs; None (unknown) on Blackwell (FlashInfer only with CUDA 13) and unnamed GPUs."""
    n = gpu_name.upper()
    if re.search(r"\bG?H(100|200|800|20)\b", n):
        return "flashinfer"
    if re.search(r"\b(A100|A10G?|A40|L40S?|L4|RTX 4090|RTX 3090|MI\d{3}X?)\b", n):
        return "triton"
    return None
