"""Memory planning as vLLM does it: weights, KV cache and headroom per GPU under tensor, pipeline and
data parallelism, and what fits.

Sharding (vLLM's model code; docs/facts.md section 10):
- Tensor parallel (TP): query heads split over the ranks. GQA key/value heads split too, or, when there
  are fewer than TP of them, each rank keeps one (replicated). An MLA latent, a DSA indexer key and a V4
  entry are one vector shared by all heads, so every TP rank caches them whole. Linear-attention and
  Mamba states split with their heads. Weights: projections split, norms, routers and MLA's
  down-projections replicated, embedding and lm_head split by vocabulary.
- Pipeline parallel (PP): layers split into stages as `vllm.distributed.utils.get_pp_indices` splits
  them (floor(L/P) each, the remainder one each to the stages before the last, walking backwards); the
  first stage holds the embedding, the last the lm_head (both when they are tied). Every stage sizes its
  own pool and the smallest pool decides for all (vLLM's `get_kv_cache_configs`).
- Data-parallel attention (`dp_attention`, DeepSeek deployments): the GPUs are DP groups of TP x PP, each
  serving its own requests with the attention and dense weights of its group; routed experts are
  sharded over all of them by expert parallelism (EP = DP x TP). Without it, DP > 1 means whole replicas.

Allocator (vLLM 0.33, `vllm/v1/core/kv_cache_utils.py`, `kv_cache_planning.py`):
- A block holds `block_size` tokens (16 by default; FlashMLA needs 64) of every layer of one KV-cache
  group; num_blocks = floor(KV memory per GPU / bytes per block).
- Layers of one kind (full, sliding window w, chunked c) form groups of `group_size` layers (the fewest
  layers of any kind, or the most when that is under 1.5x the fewest); each group's pages come from the
  one pool, so a request needs, per group, ceil(N / b) blocks (full), ceil(min(w - 1 + T, N) / b) + 1
  (sliding) or ceil(min(c + T, N) / b) (chunked), T = max_num_batched_tokens x the batches in flight.
- Concurrency (vLLM's log) = num_blocks / blocks per request; "GPU KV cache size" = concurrency x N
  tokens. Block 0 is the null block: admission and the longest request count num_blocks - 1.
- One kind of layer (every layer full attention, whatever its page: DSA's indexer key, DeciLM's kv heads)
  is one group whose block holds a page of every layer (vLLM's UniformTypeKVCacheSpecs).
- Hybrids (full attention beside Gated DeltaNet or Mamba-2): vLLM's block size, state-page padding, groups
  and blocks per request release by release (core.accounting.vllm_hybrid, `Allocator.hybrid`).
Models vLLM allocates otherwise (V4's compressed layers, layer kinds of different page sizes, MLA or
sliding windows beside recurrent state) are planned in bytes per GPU instead, and the plan says it is an
estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import ceil

from core.accounting import limits
from core.accounting import totals as acc
from core.accounting import vllm_hybrid as vh
from core.accounting.base import design_of
from core.model.dtypes import weight_dtype as weight_format
from core.model.specs import (
    CompressedSpec,
    DenseMLP,
    DSASpec,
    GQASpec,
    Mamba2Spec,
    MLASpec,
    ModelSpec,
    MoEMLP,
    NoMixer,
)

BLOCK_TOKENS = 16
MAX_TOKENS = 1 << 40  # the largest context the planner searches
GIB = 1 << 30
DEFAULT_BATCHED_TOKENS = 8192  # vLLM's max_num_batched_tokens for its API server on large GPUs
VLLM_VERSION = "0.33"  # the release whose pool this module follows by default (--vllm-version picks another)
VLLM_RELEASE = "0.33.0"


@dataclass(frozen=True)
class Hardware:
    name: str
    memory_bytes: int  # per GPU
    bandwidth_bytes_s: float  # per GPU
    n_gpus: int = 1
    utilization: float = 0.9  # vLLM's gpu_memory_utilization
    reserved_bytes: int = 0  # per GPU: activations, CUDA graphs, buffers (everything but weights and cache)

    def __post_init__(self) -> None:
        if not 0 < self.utilization <= 1:
            raise ValueError(f"memory utilization must be in (0, 1], got {self.utilization}.")
        if self.n_gpus < 1 or self.memory_bytes < 1:
            raise ValueError("GPU count and memory must be positive.")
        if self.reserved_bytes < 0:
            raise ValueError("reserved memory cannot be negative.")

    @property
    def usable_bytes(self) -> int:
        """Per GPU: memory x utilization."""
        return int(self.memory_bytes * self.utilization)


@dataclass(frozen=True)
class Parallelism:
    tp: int = 1
    pp: int = 1
    dp: int = 1
    dp_attention: bool = False  # experts sharded over DP x TP ranks (expert parallelism)

    def __post_init__(self) -> None:
        for name, v in (("TP", self.tp), ("PP", self.pp), ("DP", self.dp)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 4096:
                raise ValueError(f"{name} size must be a whole number from 1 to 4,096, got {v!r}.")

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def ep(self) -> int:
        """Ranks the routed experts are spread over (1: no expert parallelism)."""
        return self.dp * self.tp if self.dp_attention else 1

    @classmethod
    def for_gpus(cls, gpus: int, tp: int, pp: int = 1, dp_attention: bool = False) -> Parallelism:
        """The layout of `gpus` GPUs: TP x PP per group and DP = gpus / (TP x PP) groups. ValueError when
        TP x PP does not divide the GPUs."""
        if gpus < 1 or tp < 1 or pp < 1 or gpus % (tp * pp):
            raise ValueError(
                f"TP x PP = {tp} x {pp} = {tp * pp} does not divide {gpus} GPU(s): TP x PP x DP must equal the GPUs."
            )
        return cls(tp, pp, gpus // (tp * pp), dp_attention)

    @classmethod
    def auto(cls, spec: ModelSpec, gpus: int, pp: int = 1, dp_attention: bool = False) -> Parallelism:
        """TP chosen for `spec`: the widest that splits every layer and divides the GPUs of a stage (1 with
        data-parallel attention), the GPUs left over as DP groups. ValueError when PP does not divide the
        GPUs."""
        if dp_attention:
            return cls.for_gpus(gpus, 1, pp, True)
        if gpus < 1 or pp < 1 or gpus % pp:
            raise ValueError(f"PP {pp} does not divide {gpus} GPU(s): TP x PP x DP must equal the GPUs.")
        for tp in range(gpus // pp, 0, -1):
            if (gpus // pp) % tp == 0:
                try:
                    shard(spec, 0, spec.n_layers, tp)
                except ValueError:
                    continue
                return cls(tp, pp, gpus // (tp * pp), False)
        raise ValueError("no tensor parallel size splits this model.")  # unreachable: TP1 always does

    def describe(self) -> str:
        parts = [f"TP{self.tp}"] + ([f"PP{self.pp}"] if self.pp > 1 else [])
        if self.dp_attention:
            parts.append(f"DP-attention {self.dp} (EP{self.ep})")
        elif self.dp > 1:
            parts.append(f"DP{self.dp} replicas")
        return " x ".join(parts)


@dataclass(frozen=True)
class Allocator:
    """vLLM's engine settings that size the pool."""

    block_size: int = BLOCK_TOKENS
    max_num_batched_tokens: int = DEFAULT_BATCHED_TOKENS
    async_scheduling: bool = True  # vLLM 0.33's default: one more batch in flight than pipeline stages
    kv_budget_bytes: int | None = None  # "available KV cache memory" per GPU, as vLLM logs it
    max_model_len: int | None = None  # --max-model-len; None: the config's derived length (core.accounting.limits)
    max_num_seqs: int | None = None  # --max-num-seqs; None: vLLM's default for the GPU
    allow_long_max_model_len: bool = False  # VLLM_ALLOW_LONG_MAX_MODEL_LEN=1
    # hybrid models (core.accounting.vllm_hybrid): vLLM's release and its flags for recurrent state
    hybrid: vh.HybridSettings = field(default_factory=lambda: vh.HybridSettings(VLLM_RELEASE))

    @property
    def release(self) -> vh.Release:
        return vh.release(self.hybrid.version)

    def __post_init__(self) -> None:
        for name in ("max_model_len", "max_num_seqs"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_TOKENS):
                raise ValueError(f"{name} must be a whole number from 1 to {MAX_TOKENS:,}, got {v!r}.")
        b, t = self.block_size, self.max_num_batched_tokens
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 4096:
            raise ValueError(f"block size must be a whole number of tokens from 1 to 4,096, got {b!r}.")
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= 1 << 24:
            raise ValueError(f"max_num_batched_tokens must be a whole number from 1 to {1 << 24:,}, got {t!r}.")
        if self.kv_budget_bytes is not None and self.kv_budget_bytes < 0:
            raise ValueError("the KV cache budget per GPU cannot be negative.")

    def in_flight_tokens(self, pp: int) -> int:
        """vLLM's max_in_flight_tokens: batches in flight (PP, plus one with async scheduling) x batched tokens."""
        return (pp + (1 if self.async_scheduling else 0)) * self.max_num_batched_tokens


def paged_request_bytes(
    spec: ModelSpec, tokens: int, kv_dtype: str = "bf16", layout: str = "latent", block: int = BLOCK_TOKENS
) -> int:
    """Cache one request of `tokens` occupies when allocated in blocks of `block` token positions, plus the
    fixed-size state its linear-attention or Mamba layers keep (one per request, whatever its length)."""
    return acc.kv_cache_bytes(spec, ceil(tokens / block) * block, 1, kv_dtype, layout) + acc.state_bytes(spec)


def auto_kv_dtype(spec: ModelSpec) -> str:
    """vLLM's kv_cache_dtype "auto": the model's dtype, with float32 checkpoints downcast to bf16 (fp16
    configs stay fp16)."""
    return "fp16" if spec.native_weights[0] == "fp16" else "bf16"


def pp_split(n_layers: int, pp: int) -> list[tuple[int, int]]:
    """[start, end) of each pipeline stage, as vLLM's get_pp_indices splits the layers."""
    if pp > n_layers:
        raise ValueError(f"PP size {pp} is larger than the {n_layers} layers: a stage would have none.")
    parts = [n_layers // pp] * pp
    for i in range(2, n_layers % pp + 2):
        parts[-i] += 1
    out, start = [], 0
    for n in parts:
        out.append((start, start + n))
        start += n
    return out


def shard(spec: ModelSpec, start: int, end: int, tp: int) -> ModelSpec:
    """Layers [start, end) as one TP rank holds them (its cache, state and attention weights)."""
    return replace(
        spec,
        attention=tuple(design_of(a).tp_shard(a, tp) for a in spec.attention[start:end]),
        mlp=spec.mlp[start:end],
    )


def copies_reason(spec: ModelSpec, tp: int) -> str:
    """Why a TP group stores each request's cache more than once, in the model's own terms."""
    whole = sorted({a.kind for a in spec.attention if isinstance(a, (MLASpec, CompressedSpec))})
    few = sorted({a.n_kv_heads for a in spec.attention if isinstance(a, GQASpec) and a.n_kv_heads < tp})
    reasons = []
    if whole:
        reasons.append(f"the {'/'.join(whole)} cache entry is one vector shared by all heads, whole on every TP rank")
    if few:
        reasons.append(f"{' or '.join(map(str, few))} key/value heads are copied to fill {tp} TP ranks")
    return " and ".join(reasons) or "parts of the cache are not split by TP"


# ----------------------------------------------------------------------------- weights per GPU


@dataclass(frozen=True)
class StageWeights:
    """Weights one GPU of a stage holds (bytes), split as the decode step reads them."""

    embedding: int  # input embedding table (a lookup: not read per step unless tied to the lm_head)
    routed: int  # routed experts held here
    rest: int  # everything else: attention, dense MLPs, shared experts, routers, norms, lm_head

    @property
    def total(self) -> int:
        return self.embedding + self.routed + self.rest


def stage_weights(spec: ModelSpec, start: int, end: int, par: Parallelism, weight_dtype: str) -> StageWeights:
    """Weights on one GPU of the stage holding layers [start, end), from the parameter breakdown: TP splits
    projections (GQA key/value heads replicated when TP exceeds them, MLA's down-projections whole),
    dense MLPs and shared experts; routed experts are split by TP, or dealt out whole over EP = DP x TP
    ranks with data-parallel attention; routers and norms are replicated; embedding and lm_head are split
    by vocabulary over TP and sit on the first and last stage. Raises ParamsUnknown for KV-only configs."""
    acc.param_count(spec)  # ParamsUnknown when the config lacks what counting needs
    names = spec.native_weights if weight_dtype == "native" else (weight_dtype,) * 3
    e_bits, x_bits, r_bits = (weight_format(n).bits_per_element for n in names)
    h, tp = spec.hidden_size, par.tp
    first, last = start == 0, end == spec.n_layers
    rest = 2 * h * (end - start) + (h if last else 0) + sum(n for _, n in spec.extra_params)
    routed = 0.0
    for a, m in zip(spec.attention[start:end], spec.mlp[start:end], strict=True):
        rest += design_of(a).tp_params(a, h, tp).total
        if isinstance(m, DenseMLP):
            rest += ceil(acc.mlp_params(m, h).total / tp)
        elif isinstance(m, MoEMLP):
            expert = acc.expert_params(m, h).total
            rest += h * m.n_routed + (m.n_routed if m.router_bias else 0)
            rest += ceil((3 if m.gated else 2) * h * m.shared_intermediate_size * m.n_shared / tp)
            rest += ceil(2 * h * (m.latent_size or 0) / tp)  # a latent MoE's projections, split like the MLPs
            routed += ceil(m.n_routed / par.ep) * expert if par.dp_attention else ceil(m.n_routed * expert / tp)
    table = ceil(spec.vocab_size * h / tp)
    embed = table if first or (last and spec.tie_word_embeddings) else 0
    head = table if last and not spec.tie_word_embeddings else 0
    return StageWeights(ceil(embed * e_bits / 8), ceil(routed * x_bits / 8), ceil((head * e_bits + rest * r_bits) / 8))


# ----------------------------------------------------------------------------- vLLM's KV-cache groups


def why_estimate(spec: ModelSpec, kv_dtype: str, layout: str) -> str | None:
    """None when vLLM's paged allocator is reproduced exactly for this model; else why it is not."""
    if acc.state_bytes(spec):
        why = vh.unsupported(spec)
        return f"{why}; vLLM pads each recurrent-state page to the attention page" if why else None
    layers = [a for a in spec.attention if not isinstance(a, NoMixer)]
    if not layers:
        return "no layer keeps a KV cache"
    kinds = {a: design_of(a).vllm_kind(a) for a in layers}
    odd = sorted({a.kind for a, kind in kinds.items() if kind is None})
    if odd:
        return f"vLLM allocates {', '.join(odd)} layers with their own cache specs (not modelled block by block)"
    if len(set(kinds.values())) > 1 and len(set(acc.bytes_by_layer(layers, 1, kv_dtype, layout))) > 1:
        return "its layer kinds cache different bytes per token, and vLLM then reshapes pages to one size"
    return None


@dataclass(frozen=True)
class Groups:
    """The model's KV-cache groups as vLLM 0.33 forms them over the whole model (pipeline stages then take
    their slices). One kind of layer (all full attention, whatever each layer's page): one group of every
    layer (`UniformTypeKVCacheSpecs`). Several kinds with one page size (`_get_kv_cache_groups_uniform_page_
    size`): the layers of each kind dealt round-robin into ceil(n / group_size) groups, group_size the fewest
    layers of any kind, or the most when that is under 1.5x the fewest. `token_bytes[i]`: one token of
    layer i on one GPU."""

    members: tuple[tuple[tuple, tuple[int, ...]], ...]  # (kind, layer indices) per group
    group_size: int
    token_bytes: dict
    page_token_bytes: int = 0  # hybrids: every page is the attention page; a block is group_size of them

    @property
    def n_groups(self) -> int:
        return len(self.members)

    def block_bytes(self, block: int, start: int, end: int) -> int:
        """One block on a GPU of the stage holding layers [start, end): a page for every layer of the
        stage's largest slice of a group."""
        if self.page_token_bytes:
            return block * self.page_token_bytes * self.group_size
        return block * max(sum(self.token_bytes[i] for i in layers if start <= i < end) for _, layers in self.members)


def kv_groups(rank_spec: ModelSpec, kv_dtype: str, layout: str) -> Groups:
    buckets: dict[tuple, list[int]] = {}
    token: dict[int, int] = {}  # one token of each layer, in every tensor it caches
    per_layer = acc.bytes_by_layer(rank_spec.attention, 1, kv_dtype, layout)
    for i, a in enumerate(rank_spec.attention):
        if not isinstance(a, NoMixer):
            buckets.setdefault(design_of(a).vllm_kind(a), []).append(i)
            token[i] = per_layer[i]
    if not buckets:
        return Groups((), 0, {})
    if len(buckets) == 1:
        kind, layers = next(iter(buckets.items()))
        return Groups(((kind, tuple(layers)),), len(layers), token)
    lo, hi = min(map(len, buckets.values())), max(map(len, buckets.values()))
    size = hi if hi < 1.5 * lo else lo
    members = []
    for kind, layers in buckets.items():
        n = ceil(len(layers) / size)
        members += [(kind, tuple(layers[j::n])) for j in range(n)]
    return Groups(tuple(members), size, token)


def hybrid_groups(spec: ModelSpec, pool: vh.HybridPool) -> Groups:
    """vLLM's KV-cache groups of a hybrid model on one rank: its attention layers (and the MTP drafts')
    and its state layers, dealt into groups of `group_size` (vllm_hybrid.group_size); every page is the
    attention page. State groups are of kind ("mamba", fixed blocks, tokens per further block or 0)."""
    attn = [i for i, a in enumerate(spec.attention) if isinstance(a, GQASpec)]
    attn += [spec.n_layers + j for j in range(pool.n_attention - len(attn))]  # MTP draft layers
    state = [i for i, a in enumerate(spec.attention) if vh.is_state_layer(a)]
    size = vh.group_size(pool.release, [len(attn), len(state)])
    if pool.mode == "all":
        kind = ("mamba", pool.spec_tokens if pool.release.all_counts_spec else 0, pool.mamba_block_size)
    else:
        kind = ("mamba", pool.state_blocks(1), 0)
    members = []
    for k, layers in ((("full",), attn), (kind, state)):
        n = ceil(len(layers) / size)
        members += [(k, tuple(layers[j::n])) for j in range(n)]
    return Groups(tuple(members), size, {}, pool.attention_token_bytes)


def group_blocks(kind: tuple, tokens: int, block: int, in_flight: int) -> int:
    """Blocks one request of `tokens` may hold at its peak in one group of `kind`: ceil(N / b) (full),
    ceil(min(w - 1 + T, N) / b) + 1 (sliding window w), ceil(min(c + T, N) / b) (chunked c), T in flight;
    a recurrent-state group its fixed blocks, plus ceil(N / m) in vLLM's "all" mode (a state every m)."""
    if kind[0] == "mamba":
        return kind[1] + (ceil(tokens / kind[2]) if kind[2] else 0)
    if kind[0] == "full":
        return ceil(tokens / block)
    if kind[0] == "sliding":
        return ceil(min(kind[1] - 1 + in_flight, tokens) / block) + 1
    return ceil(min(kind[1] + in_flight, tokens) / block)


def blocks_per_request(groups: Groups, tokens: int, block: int, in_flight: int) -> int:
    """Blocks one request of `tokens` may hold at its peak, over every group (vLLM's max_memory_usage)."""
    return sum(group_blocks(kind, tokens, block, in_flight) for kind, _ in groups.members)


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Stage:
    """One pipeline stage, as one of its GPUs sees it."""

    layers: tuple[int, int]  # [start, end)
    weights: StageWeights
    kv_budget_bytes: int  # negative: the weights do not fit
    request_bytes: int  # one request of `context` tokens: paged cache + state on this GPU
    state_bytes: int  # of which fixed-size state
    cache_read_bytes: int  # one decoded token of one request reads on this GPU
    num_blocks: int | None  # this GPU's pool (None when planned in bytes)
    block_bytes: int | None  # one block on this GPU: a page for each layer of its largest group slice


@dataclass(frozen=True)
class Plan:
    context: int
    batch: int  # requests in the whole deployment
    kv_dtype: str
    parallel: Parallelism
    allocator: Allocator
    stages: tuple[Stage, ...]
    exact: bool  # vLLM's allocator reproduced block by block
    estimate_reason: str | None
    num_blocks: int | None  # per GPU, the smallest stage's (what vLLM logs); None when estimated
    blocks_per_request: int | None  # at `context`, over every KV-cache group (vLLM's max_memory_usage)
    kv_cache_tokens: int | None  # vLLM's "GPU KV cache size" (one DP group)
    max_concurrency: float  # requests of `context` tokens, the whole deployment
    max_context: int | None  # longest request each of `batch` can be: the pool's, capped at max_model_len (0: vLLM
    # does not start); None: unbounded
    fits: bool
    usable_bytes: int  # per GPU
    memory_bytes: int  # per GPU
    reserved_bytes: int  # per GPU
    pooled_concurrency: float  # what pooling every GPU's memory would suggest (the naive answer)
    replication: float  # how many copies of each request's cache one DP group keeps (1: none)
    step_seconds: float  # memory-bound lower bound on one decode step of the whole batch
    notes: tuple[str, ...] = field(default_factory=tuple)
    max_model_len: int | None = None  # the length vLLM serves with (None: unknown, or vLLM refuses it)
    derived_max_model_len: int | None = None  # vLLM's, from the config (None: the config cannot say)
    max_num_seqs: int | None = None  # the scheduler's cap per engine (one per DP group); None: unknown
    max_running_requests: int = 0  # requests of `context` tokens running at once, the whole deployment
    startup_error: str | None = None  # why vLLM would not start with these settings
    estimated_max_model_len: int | None = None  # vLLM's estimate when the pool cannot hold max_model_len
    pool_max_context: int | None = None  # the longest request the pool alone could hold (None: unbounded)
    groups: Groups | None = None  # vLLM's KV-cache groups (exact plans), whose blocks the pool hands out
    hybrid: vh.HybridPool | None = None  # how vLLM pages a hybrid model's state (exact hybrid plans)
    block_size: int = BLOCK_TOKENS  # tokens per attention block, as vLLM sets it

    @property
    def requests_per_group(self) -> int:
        return ceil(self.batch / self.parallel.dp)

    @property
    def weights_bytes_per_gpu(self) -> int:
        return max(s.weights.total for s in self.stages)

    @property
    def kv_budget_bytes_per_gpu(self) -> int:
        """The budget of the stage that decides (the fewest blocks, or the least room)."""
        return self.stages[self.deciding_stage].kv_budget_bytes

    @property
    def deciding_stage(self) -> int:
        if self.exact:
            return min(range(len(self.stages)), key=lambda i: self.stages[i].num_blocks)
        return min(
            range(len(self.stages)),
            key=lambda i: self.stages[i].kv_budget_bytes / max(self.stages[i].request_bytes, 1),
        )

    @property
    def tokens_per_second(self) -> float:
        return self.batch / self.step_seconds if self.step_seconds else 0.0


def plan(
    spec: ModelSpec,
    hw: Hardware,
    context: int,
    batch: int = 1,
    kv_dtype: str = "auto",
    weight_dtype: str = "bf16",
    layout: str = "latent",
    parallel: Parallelism | None = None,
    allocator: Allocator | None = None,
    checkpoint_bytes: int | None = None,
) -> Plan:
    """Plan `batch` requests of `context` tokens on `hw` under `parallel` (default: `Parallelism.auto`).
    `checkpoint_bytes`: the checkpoint's own size (every tensor as stored, quantized experts included),
    which then replaces the weights counted from the config, split over the GPUs as the config's parameters
    are. ValueError for a layout the model cannot be split in (TP not dividing heads, PP above the layers,
    GPUs not TP x PP x DP); ParamsUnknown when the weights cannot be counted and no KV budget is given."""
    if context < 1 or batch < 1:
        raise ValueError("context and batch must be at least 1.")
    par = parallel or Parallelism.auto(spec, hw.n_gpus)
    if par.gpus != hw.n_gpus:
        raise ValueError(f"TP x PP x DP = {par.gpus} but there are {hw.n_gpus} GPU(s): they must be equal.")
    alloc = allocator or Allocator()
    kv = auto_kv_dtype(spec) if kv_dtype == "auto" else kv_dtype
    block, in_flight = alloc.block_size, alloc.in_flight_tokens(par.pp)
    reason = why_estimate(spec, kv, layout)
    pool = None
    if reason is None and acc.state_bytes(spec):
        if par.pp > 1 or par.dp_attention:
            reason = "vLLM's hybrid pools under pipeline parallelism or DP attention are not modelled"
        else:
            settings = alloc.hybrid
            if settings.gdn_prefill is None:
                settings = replace(settings, gdn_prefill=vh.gdn_prefill_for(hw.name))
            chunk = next((a.chunk_size for a in spec.attention if isinstance(a, Mamba2Spec)), None)
            try:
                pool = vh.hybrid_pool(spec, par.tp, kv, auto_kv_dtype(spec), block, settings, chunk)
            except vh.Unmodelled as e:
                reason = str(e)
    if pool is None and alloc.hybrid.num_speculative_tokens:
        reason = reason or (
            "speculative (MTP) drafts are planned for Gated DeltaNet and Mamba-2 hybrids only; the draft "
            "layers' cache is not counted"
        )
    if pool is not None:
        block = pool.block_size
        groups = hybrid_groups(spec, pool)
    else:
        groups = None if reason else kv_groups(shard(spec, 0, spec.n_layers, par.tp), kv, layout)
    per_group = ceil(batch / par.dp)
    stages, ranks = [], []
    for start, end in pp_split(spec.n_layers, par.pp):
        rank = shard(spec, start, end, par.tp)
        ranks.append(rank)
        if alloc.kv_budget_bytes is not None and spec.params_unknown:
            weights = StageWeights(0, 0, 0)
        else:
            weights = stage_weights(spec, start, end, par, weight_dtype)
            if checkpoint_bytes is not None:
                scale = checkpoint_bytes / acc.weights_bytes(spec, weight_dtype)
                weights = StageWeights(*(ceil(x * scale) for x in (weights.embedding, weights.routed, weights.rest)))
        budget = (
            alloc.kv_budget_bytes
            if alloc.kv_budget_bytes is not None
            else hw.usable_bytes - weights.total - hw.reserved_bytes
        )
        blocks = block_bytes = None
        if groups is not None and groups.n_groups:
            block_bytes = groups.block_bytes(block, start, end)
            blocks = max(budget, 0) // block_bytes
        stages.append(
            Stage(
                (start, end),
                weights,
                budget,
                paged_request_bytes(rank, context, kv, layout, block),
                acc.state_bytes(rank),
                acc.cache_bytes_read(rank, context, kv, layout),
                blocks,
                block_bytes,
            )
        )
    exact = groups is not None and groups.n_groups > 0
    notes: list[str] = []
    if exact:
        num_blocks = min(s.num_blocks for s in stages)
        need = blocks_per_request(groups, context, block, in_flight)
        per_rank = num_blocks / need
        if alloc.release.tokens_from_concurrency:
            tokens = int(per_rank * context)
        else:  # up to vLLM 0.20.0: whole blocks per group
            tokens = num_blocks // groups.n_groups * block
        max_ctx = _search(lambda n: per_group * blocks_per_request(groups, n, block, in_flight) <= num_blocks - 1)
        fits = per_group * need <= num_blocks - 1
        if block < 64 and any(type(a) in (MLASpec, DSASpec) for a in spec.attention):
            notes.append(
                f"vLLM uses its MLA kernel's block size: 64 with FlashMLA (and DSA's sparse kernel and indexer), "
                f"128 with CUTLASS MLA; set it to your engine's to match its log (blocks of {block} here)."
            )
    else:
        num_blocks = tokens = need = None
        per_rank = min(
            (max(s.kv_budget_bytes, 0) / s.request_bytes if s.request_bytes else float("inf")) for s in stages
        )

        def fits_n(n: int) -> bool:
            return all(
                per_group * paged_request_bytes(r, n, kv, layout, block) <= s.kv_budget_bytes
                for r, s in zip(ranks, stages, strict=True)
            )

        max_ctx = _search(fits_n)
        fits = all(per_group * s.request_bytes <= s.kv_budget_bytes for s in stages)
        if reason:
            notes.append(f"Estimate: {reason}; planned in bytes per GPU instead of vLLM's blocks.")
    pool_max_ctx = max_ctx
    limit = limits.max_model_len(spec, alloc.max_model_len, alloc.allow_long_max_model_len)
    serving, error, estimated = limit.value, limit.refusal, None
    notes = [*limit.notes, *notes]
    if serving is not None and error is None:

        def need_bytes(n: int) -> list[int]:  # one request of n tokens on each stage's GPU (vLLM's check)
            if exact:
                return [
                    blocks_per_request(groups, n, block, alloc.max_num_batched_tokens) * s.block_bytes for s in stages
                ]
            return [paged_request_bytes(r, n, kv, layout, block) for r in ranks]

        need_max = need_bytes(serving)
        short = [i for i, s in enumerate(stages) if need_max[i] > max(s.kv_budget_bytes, 0)]
        if short:
            i = short[0]
            avail = max(stages[i].kv_budget_bytes, 0)
            estimated = _search(lambda n: n <= serving and need_bytes(n)[i] <= avail) or 0
            guess = "" if exact else " (in bytes: this model's pages are an estimate)"
            tail = f"Based on the available memory, the estimated maximum model length is {estimated:,}. "
            error = (
                "vLLM refuses to start: no memory is left for the cache blocks (the weights and the reserved "
                "memory take it all)."
                if avail == 0
                else f"vLLM refuses to start: to serve at least one request with the model's max seq len "
                f"({serving:,}), {need_max[i] / GIB:.2f} GiB KV cache is needed, which is larger than the "
                f"available KV cache memory ({avail / GIB:.2f} GiB){guess}. {tail if estimated else ''}Lower "
                "--max-model-len or give the cache more memory."
            )
        if max_ctx is None or max_ctx > serving:  # vLLM never schedules a longer request
            max_ctx = serving
        if context > serving:
            notes.append(
                f"A request of {context:,} tokens is longer than max_model_len {serving:,} "
                f"({'set' if alloc.max_model_len else 'derived from ' + limit.derived.source}): vLLM rejects it. "
                + (
                    "A longer --max-model-len needs the config to allow it (RoPE scaling with a raised "
                    f"max_position_embeddings) or {limits.LONG_ENV}."
                    if limit.derived.value is not None and context > limit.derived.value
                    else "Set --max-model-len to at least the request size."
                )
            )
    seqs = alloc.max_num_seqs
    if seqs is None and hw.memory_bytes > 1:  # 1: a plan sized by its KV budget alone, on a GPU not named
        seqs = limits.default_max_num_seqs(hw.memory_bytes, hw.name, alloc.max_num_batched_tokens)
    admit = max((num_blocks - 1) // need if exact else int(per_rank), 0)
    checked = pool is not None and alloc.release.seqs_check and not alloc.hybrid.enforce_eager
    if checked and error is None and seqs is not None and seqs > num_blocks and pool.spec_tokens:
        notes.append(
            f"max_num_seqs ({seqs:,}) is above the pool's {num_blocks:,} blocks: vLLM 0.24 and later stop at start-up "
            "when decoding runs in full CUDA graphs, which with speculative decoding depends on the attention "
            "backend (FlashInfer falls back to piecewise graphs); lower --max-num-seqs to be sure."
        )
    elif checked and error is None and seqs is not None and seqs > num_blocks:
        # vllm/config/compilation.py, since 0.24: every decoding sequence needs a state block
        error = (
            f"vLLM refuses to start: max_num_seqs ({seqs:,}) exceeds available Mamba cache blocks ({num_blocks:,}). "
            f"Each decode sequence requires one Mamba cache block, so CUDA graph capture cannot proceed (vLLM "
            f"0.24 and later, unless --enforce-eager). Lower --max-num-seqs to at most {num_blocks:,} or give the "
            "cache more memory."
        )
    if error:
        notes.insert(0, error)
        running, max_ctx = 0, 0
    elif serving is not None and context > serving:
        running = 0
    elif seqs is None:
        running = admit * par.dp
        notes.append(
            "The scheduler's cap is unknown without the GPU (vLLM serve's max_num_seqs is 256, or 1,024 on "
            "GPUs of 70 GiB or more but the A100): give max_num_seqs to apply it."
        )
    else:
        running = min(seqs, admit) * par.dp
        if admit > seqs:
            notes.append(
                f"The scheduler runs at most max_num_seqs = {seqs:,} requests per engine "
                f"({'set' if alloc.max_num_seqs else 'the default of vllm serve for this GPU'}); "
                f"the cache would admit {admit:,} requests of {context:,} tokens."
            )
    fits = fits and error is None and (serving is None or context <= serving)
    whole = paged_request_bytes(spec, context, kv, layout, block)
    stored = sum(s.request_bytes for s in stages) * par.tp
    try:
        total_weights = checkpoint_bytes or acc.weights_bytes(spec, weight_dtype)
    except acc.ParamsUnknown:
        total_weights = 0
    pooled_budget = (
        alloc.kv_budget_bytes * hw.n_gpus
        if alloc.kv_budget_bytes is not None
        else hw.n_gpus * (hw.usable_bytes - hw.reserved_bytes) - total_weights
    )
    step = _step_seconds(spec, stages, par, batch, hw.bandwidth_bytes_s) if hw.bandwidth_bytes_s else 0.0
    return Plan(
        context=context,
        batch=batch,
        kv_dtype=kv,
        parallel=par,
        allocator=alloc,
        stages=tuple(stages),
        exact=exact,
        estimate_reason=reason,
        num_blocks=num_blocks,
        blocks_per_request=need,
        kv_cache_tokens=tokens,
        max_concurrency=per_rank * par.dp,
        max_context=max_ctx,
        fits=fits,
        usable_bytes=hw.usable_bytes,
        memory_bytes=hw.memory_bytes,
        reserved_bytes=hw.reserved_bytes,
        pooled_concurrency=max(pooled_budget, 0) / whole if whole else float("inf"),
        replication=stored / whole if whole else 1.0,
        step_seconds=step,
        notes=tuple(notes),
        max_model_len=serving,
        derived_max_model_len=limit.derived.value,
        max_num_seqs=seqs,
        max_running_requests=running,
        startup_error=error,
        estimated_max_model_len=estimated,
        pool_max_context=pool_max_ctx,
        groups=groups if exact else None,
        hybrid=pool if exact else None,
        block_size=block,
    )


def _search(fits) -> int | None:
    """Largest N in [1, MAX_TOKENS] with fits(N) (monotone); 0 if none; None if even MAX_TOKENS fits."""
    if not fits(1):
        return 0
    if fits(MAX_TOKENS):
        return None
    lo, hi = 1, MAX_TOKENS
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _step_seconds(spec: ModelSpec, stages: list[Stage], par: Parallelism, batch: int, bw: float) -> float:
    """One decode step of the whole batch, memory-bound: the stages run one after another, and on each
    GPU the step reads its weights (routed experts only up to the share the tokens reach; not the
    embedding table, a lookup, unless it is the tied lm_head) and its requests' cache."""
    moe = [m for m in spec.mlp if isinstance(m, MoEMLP)]
    tokens = batch if par.dp_attention else ceil(batch / par.dp)
    share = min(1.0, tokens * moe[0].top_k / moe[0].n_routed) if moe else 1.0
    per_group = ceil(batch / par.dp)
    seconds = 0.0
    for s in stages:
        embed = s.weights.embedding if not (spec.tie_word_embeddings and s.layers[1] == spec.n_layers) else 0
        read = s.weights.total - embed - s.weights.routed + s.weights.routed * share + per_group * s.cache_read_bytes
        seconds += read / bw
    return seconds


def decode_step_bytes(spec: ModelSpec, context: int, batch: int, kv_dtype: str, weight_dtype: str, layout: str) -> int:
    """Bytes one decode step of `batch` requests reads on one GPU holding the whole model: the weights once
    for the whole batch (the lm_head or tied embedding, everything that is not a routed expert, and of the
    routed experts at most the share min(1, batch x top_k / n_routed) the batch's tokens can reach), plus
    every request's cache reads (sparse layers read only what they select). Bytes / bandwidth bounds the
    step time from below: decode is memory-bound until arithmetic intensity crosses the ridge
    (docs/facts.md section 6)."""
    embed, head, routed, rest = acc.weights_bytes_parts(spec, weight_dtype)
    moe = [m for m in spec.mlp if isinstance(m, MoEMLP)]
    share = min(1.0, batch * moe[0].top_k / moe[0].n_routed) if moe else 1.0
    weights = (head or embed) + rest + int(routed * share)
    return weights + batch * acc.cache_bytes_read(spec, context, kv_dtype, layout)
