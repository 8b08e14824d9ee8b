"""Each page's view state, declared once so that a copied link reproduces the view: a frozen dataclass per page
whose fields carry their link key, parser and serialiser (core.view.urlcodec parses and dumps any of them,
never raising), and the grids and menus those parsers accept."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.accounting import vllm_hybrid
from core.accounting.base import LAYOUTS
from core.accounting.plan_inputs import PlanSettings
from core.accounting.planner import VLLM_RELEASE
from core.lab.needle_methods import METHODS
from core.lab.passages import load_passages
from core.lab.real_methods import methods as real_methods
from core.model.dtypes import CACHE_DTYPES, WEIGHT_DTYPES
from core.model.gpus import GPUS
from core.model.presets import preset_names
from core.view.review import DEFAULT_CANDIDATES, MAX_CANDIDATES, MAX_LABEL, Candidate, clean_label
from core.view.urlcodec import (
    Replaced,
    choice,
    choice_int,
    decode_config,
    dump_state,
    flag,
    float_in,
    int_in,
    join_names,
    meta,
    name_list,
    parse_state,
)

MAX_CONTEXT = 1 << 20  # the sliders' top
MAX_TYPED_CONTEXT = 1 << 24  # an exact context typed in the planner
CUSTOM = "@config"  # the model slot of an uploaded or pasted config.json


# ----------------------------------------------------------------------------- the pages' states

DEFAULT_MODELS = ("llama-3.1-70b", "deepseek-v3", "deepseek-v3.2", "deepseek-v4-pro")


@dataclass(frozen=True)
class OverviewState:
    models: tuple[str, ...] = field(
        default=DEFAULT_MODELS, metadata=meta("models", name_list(preset_names, 6, "models"), join_names)
    )
    context: int = field(default=131_072, metadata=meta("context", int_in(1, MAX_CONTEXT, "context")))
    gpu: str = field(default="H200", metadata=meta("gpu", choice(lambda: GPUS, "GPU")))
    kv_dtype: str = field(default="bf16", metadata=meta("kv", choice(lambda: CACHE_DTYPES, "cache dtype")))
    batch: int = field(default=1, metadata=meta("batch", int_in(1, 4096, "batch")))
    notices: tuple[str, ...] = field(default=(), compare=False)


def parse_overview(params: Mapping[str, Any]) -> OverviewState:
    return parse_state(OverviewState, params)


def serialise_overview(s: OverviewState) -> dict[str, str]:
    return dump_state(s)


def _planner_models() -> list[str]:
    return [*preset_names(), CUSTOM]


# the page's prefix-caching choice: the release's default for hybrid models, or vLLM's flag either way
PREFIX_CACHING = {"default": None, "on": True, "off": False}


@dataclass(frozen=True)
class PlannerState:
    models: tuple[str, ...] = field(
        default=("llama-3.1-70b", "deepseek-v3"),
        metadata=meta("models", name_list(_planner_models, 4, "models"), join_names),
    )
    context: int = field(default=131_072, metadata=meta("context", int_in(1, MAX_TYPED_CONTEXT, "context")))
    batch: int = field(default=1, metadata=meta("batch", int_in(1, 65_536, "batch")))
    kv_dtype: str = field(default="auto", metadata=meta("kv", choice(lambda: ["auto", *CACHE_DTYPES], "cache dtype")))
    weight_dtype: str = field(
        default="native", metadata=meta("w", choice(lambda: ["native", *WEIGHT_DTYPES], "weight dtype"))
    )
    layout: str = field(
        default="latent",
        metadata=meta("layout", choice(lambda: ("latent", "materialised", "fp8_ds_mla"), "cache layout")),
    )
    gpu: str = field(default="H200", metadata=meta("gpu", choice(lambda: [*GPUS, "custom"], "GPU")))
    memory_gb: float = field(
        default=80.0, metadata=meta("mem", float_in(1, 10_000, "custom GPU memory (GB)"), "{:g}".format)
    )
    bandwidth_tb_s: float = field(
        default=3.0, metadata=meta("bw", float_in(0.01, 1000, "custom GPU bandwidth (TB/s)"), "{:g}".format)
    )
    n_gpus: int = field(default=8, metadata=meta("gpus", int_in(1, 1024, "number of GPUs")))
    utilization: int = field(default=90, metadata=meta("util", int_in(5, 100, "memory utilization (%)")))
    reserved_gib: float = field(
        default=0.0, metadata=meta("reserve", float_in(0, 1000, "reserved memory per GPU (GiB)"), "{:g}".format)
    )
    tp: int = field(default=0, metadata=meta("tp", int_in(0, 1024, "tensor parallel size (0: every GPU of a stage)")))
    pp: int = field(default=1, metadata=meta("pp", int_in(1, 64, "pipeline parallel size")))
    dp_attention: bool = field(
        default=False, metadata=meta("dpa", flag("data-parallel attention"), lambda b: "1" if b else "0")
    )
    block_size: int = field(default=16, metadata=meta("block", choice_int((16, 32, 64, 128), "block size")))
    batched_tokens: int = field(
        default=0, metadata=meta("mnbt", int_in(0, 1 << 20, "max_num_batched_tokens (0: vLLM's default)"))
    )
    kv_budget_gib: float = field(
        default=0.0, metadata=meta("kvb", float_in(0, 100_000, "KV memory per GPU (GiB)"), "{:g}".format)
    )
    max_model_len: int = field(default=0, metadata=meta("mml", int_in(0, 1 << 30, "max_model_len (0: the config's)")))
    max_num_seqs: int = field(default=0, metadata=meta("mns", int_in(0, 1 << 20, "max_num_seqs (0: vLLM's default)")))
    allow_long: bool = field(
        default=False, metadata=meta("long", flag("VLLM_ALLOW_LONG_MAX_MODEL_LEN"), lambda b: "1" if b else "0")
    )
    vllm_version: str = field(
        default=VLLM_RELEASE, metadata=meta("vllm", choice(lambda: vllm_hybrid.VERSIONS, "vLLM release"))
    )
    prefix_caching: str = field(
        default="default", metadata=meta("pc", choice(lambda: PREFIX_CACHING, "prefix caching"))
    )
    mtp_tokens: int = field(default=0, metadata=meta("mtp", int_in(0, 16, "MTP draft tokens")))
    config: str = field(default="", metadata=meta("cfg", lambda raw: decode_config(raw) and raw))
    notices: tuple[str, ...] = field(default=(), compare=False)

    def plan_settings(self) -> PlanSettings:
        """The plan the controls ask for, as plain values (`plan_inputs` builds the planner's inputs from them):
        the "custom" GPU is one of the given memory (GB) and bandwidth, utilization is a percent, TP 0 is
        chosen per model, a KV budget of 0 means the memory decides, and a max_model_len, max_num_seqs or
        max_num_batched_tokens of 0 is vLLM's default (the config's length; its table by GPU)."""
        custom = self.gpu == "custom"
        return PlanSettings(
            self.context,
            self.batch,
            self.kv_dtype,
            self.weight_dtype,
            self.layout,
            gpu=None if custom else self.gpu,
            memory_gb=self.memory_gb if custom else None,
            bandwidth_tb_s=self.bandwidth_tb_s if custom else None,
            n_gpus=self.n_gpus,
            tp=self.tp or None,
            pp=self.pp,
            dp_attention=self.dp_attention,
            utilization=self.utilization / 100,
            reserved_gib=self.reserved_gib,
            kv_budget_gib=self.kv_budget_gib or None,
            block_size=self.block_size,
            max_num_batched_tokens=self.batched_tokens or None,
            max_model_len=self.max_model_len or None,
            max_num_seqs=self.max_num_seqs or None,
            allow_long_max_model_len=self.allow_long,
            vllm_version=self.vllm_version,
            enable_prefix_caching=PREFIX_CACHING[self.prefix_caching],
            num_speculative_tokens=self.mtp_tokens,
        )


# ----------------------------------------------------------------------------- the review sheet's candidates
# A candidate travels as model~gpu~gpus~tp~layout~kv~weights[~name], candidates separated by commas:
# ?c=deepseek-v3~H200~8~8~latent~auto~native,deepseek-v3~H200~8~8~fp8_ds_mla~auto~native

_CANDIDATE_FIELDS = (
    ("model", choice(preset_names, "model")),
    ("gpu", choice(lambda: GPUS, "GPU")),
    ("n_gpus", int_in(1, 1024, "number of GPUs")),
    ("tp", int_in(0, 1024, "tensor parallel size (0: chosen per model)")),
    ("layout", choice(lambda: LAYOUTS, "cache layout")),
    ("kv_dtype", choice(lambda: ["auto", *CACHE_DTYPES], "cache dtype")),
    ("weight_dtype", choice(lambda: ["native", *WEIGHT_DTYPES], "weight dtype")),
)


def _label(raw: str) -> str:
    if clean_label(raw) != raw:
        raise ValueError(
            f"a name may hold letters, digits, spaces and . _ ( ) + / # & ' : - only, at most {MAX_LABEL} of them"
        )
    return raw


def parse_candidate(raw: str) -> Candidate:
    """One candidate from its link form; ValueError naming the first value that is wrong."""
    values = raw.split("~")
    if not len(_CANDIDATE_FIELDS) <= len(values) <= len(_CANDIDATE_FIELDS) + 1:
        raise ValueError(f"a candidate needs {len(_CANDIDATE_FIELDS)} values and an optional name, joined by ~")
    parsed = {name: parse(v) for (name, parse), v in zip(_CANDIDATE_FIELDS, values, strict=False)}
    return Candidate(**parsed, label=_label(values[-1]) if len(values) > len(_CANDIDATE_FIELDS) else "")


def parse_candidates(raw: str) -> tuple[Candidate, ...]:
    """The candidates of a link: a bad one is left out and said (Replaced); none readable is a ValueError."""
    items = [x for x in raw.split(",") if x][:20]
    good, said = [], []
    for i, item in enumerate(items, 1):
        try:
            good.append(parse_candidate(item))
        except ValueError as e:
            said.append(f"candidate {i} left out ({e})")
    if len(good) > MAX_CANDIDATES:
        said.append(f"{len(good)} candidates asked for; showing the first {MAX_CANDIDATES}, the most a sheet compares")
        good = good[:MAX_CANDIDATES]
    if not good:
        raise ValueError("no candidate in the link could be read" + (f": {'; '.join(said)}" if said else ""))
    if said:
        raise Replaced(tuple(good), "; ".join(said))
    return tuple(good)


def dump_candidates(candidates: tuple[Candidate, ...]) -> str:
    def one(c: Candidate) -> str:
        values = [c.model, c.gpu, c.n_gpus, c.tp, c.layout, c.kv_dtype, c.weight_dtype] + ([c.label] if c.label else [])
        return "~".join(map(str, values))

    return ",".join(one(c) for c in candidates)


@dataclass(frozen=True)
class ReviewState:
    candidates: tuple[Candidate, ...] = field(
        default=DEFAULT_CANDIDATES, metadata=meta("c", parse_candidates, dump_candidates)
    )
    context: int = field(default=131_072, metadata=meta("context", int_in(1, MAX_TYPED_CONTEXT, "context")))
    utilization: int = field(default=90, metadata=meta("util", int_in(5, 100, "memory utilization (%)")))
    theme: str = field(default="light", metadata=meta("theme", choice(lambda: THEMES, "theme of the sheet")))
    formulas: bool = field(
        default=True, metadata=meta("formulas", flag("formulas on the sheet"), lambda b: "1" if b else "0")
    )
    notices: tuple[str, ...] = field(default=(), compare=False)


THEMES = ("light", "dark")


def review_link(s: PlannerState) -> tuple[dict[str, str], list[str]]:
    """The Review sheet's link for the planner's view: its preset models on its GPUs with its TP, layout and
    dtypes, context and utilization; and what could not be carried, in sentences (a custom GPU or config)."""
    said = []
    models = [m for m in s.models if m != CUSTOM]
    if len(models) < len(s.models):
        said.append("the review sheet compares presets only: your own config.json stays here")
    if s.gpu == "custom":
        said.append("the review sheet plans GPU presets only: pick one to carry the plan over")
        models = []
    if s.pp > 1 or s.dp_attention or s.reserved_gib or s.kv_budget_gib or s.block_size != 16 or s.batched_tokens:
        said.append(
            "the review sheet plans with vLLM's defaults: PP, data-parallel attention, reserved memory, "
            "a given KV memory and block or batch sizes stay here"
        )
    candidates = tuple(
        Candidate(m, s.gpu, s.n_gpus, s.tp, s.layout, s.kv_dtype, s.weight_dtype) for m in models[:MAX_CANDIDATES]
    )
    state = ReviewState(candidates or DEFAULT_CANDIDATES, s.context, s.utilization)
    return dump_state(state), said


WIDTHS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)  # the Inside MLA page's model widths


def _passage(raw: str) -> int:
    n = len(load_passages())
    if raw == "all":
        return -1
    return int_in(0, n - 1, f"passage (there are {n})")(raw)


@dataclass(frozen=True)
class InsideState:
    d_model: int = field(
        default=256,
        metadata=meta("width", lambda raw: int(choice(lambda: [str(w) for w in WIDTHS], "model width")(raw))),
    )
    n_heads: int = field(default=8, metadata=meta("heads", int_in(1, 64, "query heads")))
    n_kv_heads: int = field(default=2, metadata=meta("kv", int_in(1, 64, "kv heads")))
    head_dim: int = field(default=32, metadata=meta("hd", int_in(4, 256, "head dim")))
    kv_lora_rank: int = field(default=64, metadata=meta("dc", int_in(4, 1024, "latent rank")))
    rope_dim: int = field(default=16, metadata=meta("dr", int_in(0, 128, "rope dim")))
    q_lora_rank: int = field(default=0, metadata=meta("dq", int_in(0, 2048, "query rank")))
    seq_len: int = field(default=64, metadata=meta("T", int_in(4, 1024, "sequence length")))
    source: str = field(default="random", metadata=meta("input", choice(lambda: ("random", "text"), "input")))
    precision: str = field(default="fp64", metadata=meta("prec", choice(lambda: ("fp64", "fp32"), "precision")))
    device: str = field(default="cpu", metadata=meta("device", choice(lambda: ("cpu", "cuda"), "device")))
    coupled_rope: bool = field(
        default=False, metadata=meta("coupled", flag("RoPE toggle"), lambda b: "1" if b else "0")
    )
    heat_design: str = field(
        default="MLA absorbed",
        # "MLA naive" is the name older shared links carry for what the page now calls "MLA materialised".
        metadata=meta(
            "heat",
            lambda raw: choice(lambda: ("MHA", "GQA", "MLA materialised", "MLA absorbed"), "heatmap design")(
                {"MLA naive": "MLA materialised"}.get(raw, raw)
            ),
        ),
    )
    heat_head: int = field(default=0, metadata=meta("head", int_in(0, 63, "heatmap head")))
    notices: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class LatentState:
    layer: int = field(default=0, metadata=meta("layer", int_in(0, 5, "layer")))
    head: int = field(
        default=-1,
        metadata=meta(
            "head", lambda raw: -1 if raw == "all" else int_in(0, 11, "head")(raw), lambda h: "all" if h < 0 else str(h)
        ),
    )
    passage: int = field(
        default=0,
        metadata=meta(
            "text",
            _passage,
            lambda p: "all" if p < 0 else str(p),
        ),
    )
    rank: int = field(default=64, metadata=meta("rank", int_in(1, 384, "rank")))
    notices: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class SparseState:
    tokens: int = field(default=64, metadata=meta("T", int_in(8, 256, "tokens")))
    index_topk: int = field(default=8, metadata=meta("k", int_in(1, 64, "top-k")))
    window: int = field(default=8, metadata=meta("w", int_in(1, 64, "window")))
    hca_ratio: int = field(
        default=16, metadata=meta("m", lambda raw: int(choice(lambda: ("2", "8", "16", "32", "64"), "HCA ratio")(raw)))
    )
    kind: str = field(default="CSA", metadata=meta("layer", choice(lambda: ("CSA", "HCA", "SWA"), "V4 layer type")))
    source: str = field(default="random", metadata=meta("input", choice(lambda: ("random", "text"), "input")))
    precision: str = field(default="bf16", metadata=meta("prec", choice(lambda: ("bf16", "production"), "precision")))
    notices: tuple[str, ...] = field(default=(), compare=False)


HYBRID_TOKENS = (16, 32, 64, 128, 256, 512, 1024, 2048)  # the Hybrid page's run lengths
HYBRID_MODELS = (
    "qwen3-next-80b-a3b",
    "qwen3.5-27b",
    "nemotron-h-56b",
    "nemotron-3-nano-30b-a3b",
    "kimi-linear-48b-a3b",
    "llama-4-scout",
    "gemma-4-26b-a4b",
    "mimo-v2-flash",
    "llama-3.3-nemotron-super-49b",
    "minimax-m1",
    "lfm2-350m",
    "nemotron-3-ultra-550b-a55b",
    "exaone-4.0-32b",
    "glm-5.2",
    "minimax-m3",
    "gemma-3-27b",
    "gpt-oss-120b",
)


@dataclass(frozen=True)
class HybridState:
    tokens: int = field(
        default=512, metadata=meta("T", lambda raw: int(choice(lambda: tuple(map(str, HYBRID_TOKENS)), "tokens")(raw)))
    )
    source: str = field(default="random", metadata=meta("input", choice(lambda: ("random", "text"), "input")))
    model: str = field(default="qwen3-next-80b-a3b", metadata=meta("model", choice(lambda: HYBRID_MODELS, "model")))
    context: int = field(default=131_072, metadata=meta("context", int_in(1, MAX_CONTEXT, "context")))
    notices: tuple[str, ...] = field(default=(), compare=False)


def _one_passage(raw: str) -> int:
    p = _passage(raw)
    if p < 0:
        raise Replaced(0, "text 'all' is not offered on this page (one passage at a time); showing passage 0")
    return p


@dataclass(frozen=True)
class QuantState:
    layer: int = field(default=0, metadata=meta("layer", int_in(0, 5, "layer")))
    passage: int = field(default=0, metadata=meta("text", lambda raw: _one_passage(raw)))
    rank: int = field(default=128, metadata=meta("rank", int_in(8, 384, "latent rank")))
    metric: str = field(
        default="output error",
        metadata=meta(
            "metric",
            choice(lambda: ("output error", "key error", "value error", "score error", "probability TV"), "error"),
        ),
    )
    notices: tuple[str, ...] = field(default=(), compare=False)


def _needle_methods() -> tuple[str, ...]:
    return METHODS


@dataclass(frozen=True)
class NeedleState:
    model: str = field(
        default="tiny-mla", metadata=meta("model", choice(lambda: ("tiny-mha", "tiny-gqa", "tiny-mla"), "model"))
    )
    method: str = field(default="H2O", metadata=meta("method", choice(_needle_methods, "compression method")))
    strength: str = field(default="", metadata=meta("strength", lambda raw: raw[:32]))
    notices: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class ComputeState:
    gpu: str = field(default="H200", metadata=meta("gpu", choice(lambda: GPUS, "GPU")))
    context: int = field(default=32_768, metadata=meta("context", int_in(1, MAX_CONTEXT, "context")))
    batch: int = field(default=1, metadata=meta("batch", int_in(1, 1024, "batch")))
    quantity: str = field(
        default="decode: attention FLOPs",
        metadata=meta(
            "show",
            choice(
                lambda: ("decode: attention FLOPs", "decode: cache bytes read", "prefill: attention FLOPs per token"),
                "quantity",
            ),
        ),
    )
    notices: tuple[str, ...] = field(default=(), compare=False)


def _real_methods() -> tuple[str, ...]:
    return tuple(m.label for m in real_methods())


REAL_METRICS = ("perplexity", "KL divergence", "top-1 agreement", "passkey retrieval")
REAL_FAMILIES = ("quantization", "eviction", "low rank")
REAL_Y_MAX = ("2x", "10x", "all")


@dataclass(frozen=True)
class RealState:
    metric: str = field(default="perplexity", metadata=meta("metric", choice(lambda: REAL_METRICS, "quantity")))
    families: tuple[str, ...] = field(
        default=REAL_FAMILIES,
        metadata=meta("families", name_list(lambda: REAL_FAMILIES, len(REAL_FAMILIES), "families"), join_names),
    )
    y_max: str = field(default="2x", metadata=meta("ymax", choice(lambda: REAL_Y_MAX, "y range")))
    method: str = field(
        default="MLA whitened SVD, 4 RoPE pairs, d_c=48",
        metadata=meta("method", choice(_real_methods, "compression method")),
    )
    context: int = field(default=1024, metadata=meta("context", choice_int((1024, 2048), "passkey context")))
    notices: tuple[str, ...] = field(default=(), compare=False)
