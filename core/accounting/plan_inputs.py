"""The memory planner's inputs, built in one place from plain values.

The planner page (its controls, its link) and the command line (its flags) each turn what they were given
into a `PlanSettings` of plain values; `plan_inputs` is the one builder of what `planner.plan` takes from
them: the hardware, the parallelism (or none, when TP is chosen per model), the allocator, and the request
(context, batch, dtypes, layout). Each caller keeps only its own conventions (the page's percent and its
"0: automatic", the CLI's forgiving GPU names and flags left out) and its own way of showing errors: a bad
setting is one ValueError sentence here.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.accounting import limits
from core.accounting.planner import (
    BLOCK_TOKENS,
    DEFAULT_BATCHED_TOKENS,
    VLLM_RELEASE,
    Allocator,
    Hardware,
    Parallelism,
    Plan,
    plan,
)
from core.accounting.vllm_hybrid import HybridSettings, padding_lines
from core.model.gpus import GPUS
from core.model.specs import ModelSpec

GIB = 2**30


@dataclass(frozen=True)
class PlanSettings:
    """A memory plan as asked for, in plain values. Memory per GPU comes from the preset `gpu`, or is given in
    decimal GB (a custom GPU, as datasheets state it) or in binary GiB (as vLLM logs it), which overrides the
    preset's; with neither, only `kv_budget_gib` can size the pool."""

    context: int
    batch: int = 1
    kv_dtype: str = "auto"
    weight_dtype: str = "native"
    layout: str = "latent"
    gpu: str | None = None  # a GPU preset's name (core.model.gpus.GPUS); None: a GPU known by its memory
    memory_gb: float | None = None  # per GPU, decimal GB: a custom GPU
    memory_gib: float | None = None  # per GPU, binary GiB (overrides the preset's)
    bandwidth_tb_s: float | None = None  # per GPU; None: the preset's (0 without one: no decode-time bound)
    n_gpus: int | None = None  # None: TP x PP
    tp: int | None = None  # None: per model, the widest that splits it (1 with data-parallel attention)
    pp: int = 1
    dp_attention: bool = False
    utilization: float = 0.9  # vLLM's gpu_memory_utilization, a fraction
    reserved_gib: float = 0.0  # per GPU
    kv_budget_gib: float | None = None  # per GPU, as vLLM logs it; None: what the memory leaves
    block_size: int = BLOCK_TOKENS
    max_num_batched_tokens: int | None = None  # None: vLLM's default for the GPU (8192 with no GPU named)
    async_scheduling: bool = True
    max_model_len: int | None = None  # vLLM's --max-model-len; None: derived from the config
    max_num_seqs: int | None = None  # vLLM's --max-num-seqs; None: its default for the GPU
    allow_long_max_model_len: bool = False  # VLLM_ALLOW_LONG_MAX_MODEL_LEN=1
    # vLLM's release and its flags for hybrid models' state (core.accounting.vllm_hybrid)
    vllm_version: str = VLLM_RELEASE
    enable_prefix_caching: bool | None = None  # None: the release's default
    mamba_cache_mode: str | None = None
    mamba_block_size: int | None = None
    mamba_ssm_cache_dtype: str = "auto"
    num_speculative_tokens: int = 0
    enforce_eager: bool = False  # --enforce-eager: no CUDA graphs
    checkpoint_bytes: int | None = None  # the checkpoint's own size (a model fetched from the Hub)


@dataclass(frozen=True)
class PlanInputs:
    """What `planner.plan` takes, but the model."""

    hardware: Hardware
    parallel: Parallelism | None  # None: chosen per model by `parallelism`
    allocator: Allocator
    context: int
    batch: int
    kv_dtype: str
    weight_dtype: str
    layout: str
    pp: int
    dp_attention: bool
    gpu_memory_bytes: int | None  # as stated; None: not given (the pool is sized by the KV budget alone)
    checkpoint_bytes: int | None = None  # the checkpoint's size: the weights, in place of the config's count

    def parallelism(self, spec: ModelSpec) -> Parallelism:
        """The layout asked for, or the widest TP that splits `spec` with the other GPUs as DP groups."""
        return self.parallel or Parallelism.auto(spec, self.hardware.n_gpus, self.pp, self.dp_attention)

    def plan(self, spec: ModelSpec, parallel: Parallelism | None = None, batch: int | None = None) -> Plan:
        """`planner.plan` of `spec` with these inputs (`parallel` and `batch` replace the asked ones)."""
        return plan(
            spec,
            self.hardware,
            self.context,
            self.batch if batch is None else batch,
            self.kv_dtype,
            self.weight_dtype,
            self.layout,
            parallel or self.parallelism(spec),
            self.allocator,
            self.checkpoint_bytes,
        )

    def log_lines(self, spec: ModelSpec, parallel: Parallelism, first: Plan) -> list[str]:
        """The lines vLLM (the release asked for) logs about its pool for `spec`, as it formats them: for a hybrid
        model the block size and padding, then the available memory, the pool's tokens and the concurrency of
        requests of max_model_len tokens (one engine, one DP group); `first` is a plan
        under `parallel`. Empty without an exact pool, or when vLLM would not start (its startup_error says)."""
        mml = first.max_model_len
        if not first.exact or first.startup_error or mml is None:
            return []
        at = first if first.context == mml and first.batch == 1 else self.plan_at(spec, parallel, mml)
        hybrid = []
        if at.hybrid:
            counts = [at.hybrid.n_attention, at.hybrid.n_state]
            hybrid = at.hybrid.lines() + padding_lines(counts, at.groups.group_size)
        release = self.allocator.release
        return [
            *hybrid,
            f"Available KV cache memory: {release.gib(at.kv_budget_bytes_per_gpu)} GiB",
            f"GPU KV cache size: {at.kv_cache_tokens:,} tokens",
            f"Maximum concurrency for {mml:,} tokens per request: {at.max_concurrency / parallel.dp:.2f}x",
        ]

    def plan_at(self, spec: ModelSpec, parallel: Parallelism, context: int) -> Plan:
        """One request of `context` tokens, with these inputs otherwise."""
        return plan(
            spec,
            self.hardware,
            context,
            1,
            self.kv_dtype,
            self.weight_dtype,
            self.layout,
            parallel,
            self.allocator,
            self.checkpoint_bytes,
        )


def plan_inputs(s: PlanSettings) -> PlanInputs:
    """The planner's inputs for `s`. ValueError, one sentence, for an unknown GPU, no way to size the pool,
    TP x PP not dividing the GPUs (PP not dividing them when TP is per model) and out-of-range settings."""
    g = None
    if s.gpu is not None:
        if s.gpu not in GPUS:
            raise ValueError(f"unknown GPU {s.gpu!r}; choose one of {', '.join(GPUS)}.")
        g = GPUS[s.gpu]
    if s.memory_gb is not None and s.memory_gib is not None:
        raise ValueError("give the memory per GPU once, in GB or in GiB.")
    if s.memory_gib is not None:
        memory = int(s.memory_gib * GIB)
    elif s.memory_gb is not None:
        memory = int(s.memory_gb * 1e9)
    else:
        memory = g.memory_bytes if g else None
    if not memory and g is None and s.kv_budget_gib is None:
        raise ValueError("a plan needs a GPU, its memory or the KV cache budget per GPU.")
    if g is not None:
        name = g.name
    elif memory and s.memory_gb is not None:
        name = f"custom {s.memory_gb:g} GB GPU"
    elif memory:
        name = f"{s.memory_gib:g} GiB GPU"
    else:
        name = "GPU of unstated memory"
    if s.bandwidth_tb_s is not None:
        bandwidth = s.bandwidth_tb_s * 1e12
    else:
        bandwidth = g.bandwidth_tb_s * 1e12 if g else 0.0
    n = s.n_gpus if s.n_gpus is not None else (s.tp or 1) * s.pp
    if s.tp is not None:
        par = Parallelism.for_gpus(n, s.tp, s.pp, s.dp_attention)
    elif n < 1 or s.pp < 1 or n % s.pp:
        raise ValueError(f"PP {s.pp} does not divide {n} GPU(s): TP x PP x DP must equal the GPUs.")
    else:
        par = None  # per model: Parallelism.auto
    # without a memory size only the KV budget sizes the pool; the memory is then reported as unknown
    hw = Hardware(name, memory or 1, bandwidth, n, s.utilization, int(s.reserved_gib * GIB))
    budget = None if s.kv_budget_gib is None else int(s.kv_budget_gib * GIB)
    batched = s.max_num_batched_tokens
    if batched is None:  # vLLM's table by GPU; a pool sized by its KV budget alone on an unnamed GPU: 8192
        batched = limits.default_max_num_batched_tokens(memory, name) if memory else DEFAULT_BATCHED_TOKENS
    alloc = Allocator(
        s.block_size,
        batched,
        s.async_scheduling,
        budget,
        max_model_len=s.max_model_len,
        max_num_seqs=s.max_num_seqs,
        allow_long_max_model_len=s.allow_long_max_model_len,
        hybrid=HybridSettings(
            s.vllm_version,
            s.enable_prefix_caching,
            s.mamba_cache_mode,
            s.mamba_block_size,
            s.mamba_ssm_cache_dtype,
            s.num_speculative_tokens,
            enforce_eager=s.enforce_eager,
        ),
    )
    return PlanInputs(
        hw,
        par,
        alloc,
        s.context,
        s.batch,
        s.kv_dtype,
        s.weight_dtype,
        s.layout,
        s.pp,
        s.dp_attention,
        memory,
        s.checkpoint_bytes,
    )
