"""The review sheet's content: up to four candidate deployments (a model preset on some GPUs, with a TP size,
a cache layout, a cache dtype and weights), each planned the one way the planner and the command line plan
(PlanSettings -> plan_inputs -> PlanInputs.plan), and said in lines of text whose every number comes from its
Plan. core.view.sheet_chart lays the lines out as one image; the Review sheet page shows them.

The formulas are the planner's own (core.accounting.formulas, LaTeX for st.latex), turned into plain text for
the image by `latex_text`, which knows exactly the LaTeX those functions write."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.accounting.formulas import budget_latex, bytes_per_token_latex, concurrency_latex
from core.accounting.plan_inputs import PlanSettings, plan_inputs
from core.accounting.planner import BLOCK_TOKENS, VLLM_VERSION, Plan
from core.accounting.totals import kv_bytes_per_token
from core.model.dtypes import weights_label
from core.model.specs import ModelSpec
from core.model.units import fmt_bytes

MAX_CANDIDATES = 4
MAX_LABEL = 60  # characters of a candidate's own name
LABEL_CHARS = re.compile(r"[^A-Za-z0-9 ._()+/#&':-]")  # what a name may hold: it travels in the link
GIB = 2**30
PARTS = ("weights", "KV cache pool", "reserved", "free", "over capacity")  # one GPU's memory, in this order


@dataclass(frozen=True)
class Candidate:
    """One deployment to compare: the planner's choices for one model, and the name the sheet gives it."""

    model: str = "deepseek-v3"  # a preset name (core.model.presets)
    gpu: str = "H200"  # a GPU preset (core.model.gpus.GPUS)
    n_gpus: int = 8
    tp: int = 8  # 0: the widest TP that splits the model, the other GPUs as DP replicas
    layout: str = "latent"  # latent, materialised or fp8_ds_mla (MLA, DSA and V4 layers)
    kv_dtype: str = "auto"  # auto: the model's dtype, as vLLM's kv_cache_dtype auto
    weight_dtype: str = "native"
    label: str = ""  # the name on the sheet; "": the model's

    @property
    def name(self) -> str:
        return self.label or self.model

    def settings(self, context: int, utilization_pct: int) -> PlanSettings:
        """This candidate as the planner's settings: one request of `context` tokens, no memory reserved."""
        return PlanSettings(
            context,
            1,
            self.kv_dtype,
            self.weight_dtype,
            self.layout,
            gpu=self.gpu,
            n_gpus=self.n_gpus,
            tp=self.tp or None,
            utilization=utilization_pct / 100,
        )


DEFAULT_CANDIDATES = (  # the point: vLLM's fp8_ds_mla layout stores DeepSeek-V3's latent in 656 B, not 1,152 B
    Candidate("deepseek-v3", "H200", 8, 8, "latent"),
    Candidate("deepseek-v3", "H200", 8, 8, "fp8_ds_mla"),
)


SLOT_DEFAULTS = (  # where a new candidate's controls start, by its place
    *DEFAULT_CANDIDATES,
    Candidate("llama-3.1-70b", "H200", 8, 0),
    Candidate("deepseek-v4-pro", "H200", 8, 0),
)


def names(candidates: tuple[Candidate, ...]) -> list[str]:
    """What the sheet calls each candidate: its label, or its model and, where several candidates share the
    model, the settings that tell them apart ("deepseek-v3, fp8_ds_mla layout"); a number when nothing does."""

    def differs(c: Candidate) -> list[str]:
        twins = [o for o in candidates if o.model == c.model and not o.label]
        said = {
            "gpus": f"{c.n_gpus} x {c.gpu}",
            "tp": f"TP{c.tp}" if c.tp else "TP chosen",
            "layout": f"{c.layout} layout",
            "kv": f"cache {c.kv_dtype}",
            "w": f"weights {c.weight_dtype}",
        }
        keys = {
            "gpus": lambda o: (o.n_gpus, o.gpu),
            "tp": lambda o: o.tp,
            "layout": lambda o: o.layout,
            "kv": lambda o: o.kv_dtype,
            "w": lambda o: o.weight_dtype,
        }
        return [said[k] for k, key in keys.items() if len({key(o) for o in twins}) > 1]

    out: list[str] = []
    for i, c in enumerate(candidates, 1):
        name = c.label or ", ".join([c.model, *differs(c)])
        out.append(name if name not in out else f"{name} ({i})")
    return out


def clean_label(text: str) -> str:
    """A name typed for a candidate, kept to the characters a link carries plainly and to MAX_LABEL of them."""
    return " ".join(LABEL_CHARS.sub("", text).split())[:MAX_LABEL].strip()


@dataclass(frozen=True)
class Column:
    """One candidate on the sheet: its name, its setup, one GPU's memory (GiB by part, in PARTS order) and
    lines of numbers, assumptions and formulas (plain text; `latex` keeps the formulas for st.latex)."""

    name: str
    setup: tuple[str, ...]
    memory: tuple[tuple[str, float], ...]
    numbers: tuple[str, ...]
    assumptions: tuple[str, ...]
    formulas: tuple[str, ...]
    latex: tuple[str, ...]
    plan: Plan

    @property
    def gpu_gib(self) -> float:
        """The bar's length: the GPU's memory, or more when the plan does not fit."""
        return sum(v for _, v in self.memory)


@dataclass(frozen=True)
class Sheet:
    title: str
    shared: tuple[str, ...]  # the settings every candidate shares
    columns: tuple[Column, ...]
    errors: tuple[str, ...]  # candidates that cannot be planned, each in a sentence
    footer: tuple[str, ...]

    @property
    def scale_gib(self) -> float:
        """The one memory scale of every bar: the largest GPU (or overfull plan) of the sheet."""
        return max((c.gpu_gib for c in self.columns), default=1.0)


def memory_parts(p: Plan) -> tuple[tuple[str, float], ...]:
    """One GPU of the (single) stage: weights, the KV cache pool vLLM allocates (its blocks; the budget for an
    estimate), what is reserved, and what is left free of the whole GPU (1 - utilization included), in GiB."""
    stage = p.stages[p.deciding_stage]
    weights = stage.weights.total
    kv = p.num_blocks * stage.block_bytes if p.exact else max(stage.kv_budget_bytes, 0)
    free = p.memory_bytes - weights - max(kv, 0) - p.reserved_bytes
    parts = {"weights": weights, "KV cache pool": kv, "reserved": p.reserved_bytes}
    parts["free" if free >= 0 else "over capacity"] = abs(free)
    return tuple((k, v / GIB) for k, v in parts.items())


_SIGNS = {  # the commands the formulas write, as signs; "\\," (a thin space between factors) as a product
    "times": "×",
    "cdot": "·",
    "lfloor": "floor(",  # an image's fonts may lack the bracket signs: words render in any of them
    "rfloor": ")",
    "lceil": "ceil(",
    "rceil": ")",
    "sum": "Σ",
    "quad": " ",
    "le": "≤",
    "ge": "≥",
    ",": "·",
    " ": " ",
}


def _group(s: str, i: int) -> tuple[str, int]:
    """The text inside the braces that open at s[i] (nested braces kept), and the index after them."""
    if i >= len(s) or s[i] != "{":
        return "", i
    depth = 0
    for j in range(i, len(s)):
        depth += {"{": 1, "}": -1}.get(s[j], 0)
        if depth == 0:
            return s[i + 1 : j], j + 1
    return s[i + 1 :], len(s)


def _plain(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        if s.startswith("{,}", i):
            out.append(",")
            i += 3
        elif s.startswith("\\\\", i):
            out.append("\n")
            i += 2
        elif s[i] == "\\":
            m = re.match(r"[A-Za-z]+|.", s[i + 1 :])
            cmd = m.group(0) if m else ""
            i += 1 + len(cmd)
            if cmd == "text":
                a, i = _group(s, i)
                out.append(a.replace("{,}", ","))
            elif cmd == "frac":
                a, i = _group(s, i)
                b, i = _group(s, i)
                a, b = _plain(a), _plain(b)
                out.append(f"({a}) / ({b})" if " " in b else f"{a} / {b}")
            elif cmd == "underbrace":
                a, i = _group(s, i)
                b, i = _group(s, i + 1) if s.startswith("_{", i) else ("", i)
                out.append(f"{_plain(a)} ({_plain(b)})" if b else _plain(a))
            elif cmd in ("begin", "end"):
                _, i = _group(s, i)
            else:
                out.append(_SIGNS.get(cmd, cmd))
        elif s[i] in "_^" and s.startswith("{", i + 1):
            mark = s[i]
            a, i = _group(s, i + 1)
            out.append(mark + _plain(a))
        elif s[i] in "{}&":
            i += 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def latex_text(latex: str) -> list[str]:
    """The LaTeX of core.accounting.formulas as plain lines: aligned rows become lines, \\text{} its text,
    fractions a / b, floors and products their signs; an unknown command is written as its name."""
    text = re.sub(r"\( +", "(", re.sub(r" +\)", ")", _plain(latex)))
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def column(c: Candidate, spec: ModelSpec, context: int, utilization_pct: int, name: str = "") -> Column:
    """Plan candidate `c` (model `spec`) at `context` tokens and say it. ValueError, one sentence, when the GPUs,
    TP or layout cannot take the model."""
    inputs = plan_inputs(c.settings(context, utilization_pct))
    p = inputs.plan(spec)
    hw, alloc, par = inputs.hardware, p.allocator, p.parallel
    kv = p.kv_dtype + (" (auto)" if c.kv_dtype == "auto" else "")
    setup = (
        c.model if c.label else "",
        f"{hw.n_gpus} x {hw.name} as {par.describe()}" + ("" if c.tp else " (TP chosen)"),
        f"cache {kv}, {c.layout} layout; weights {weights_label(c.weight_dtype, spec.native_weights)}",
    )
    per_token = kv_bytes_per_token(spec, p.kv_dtype, c.layout)
    layers = len(spec.attention)
    per_layer = f"{per_token // layers:,} B" if per_token % layers == 0 else f"{per_token / layers:,.1f} B on average"
    stage = p.stages[p.deciding_stage]
    if p.max_context is None:
        longest = "any length (every layer keeps a bounded cache)"
    elif p.startup_error:
        longest = "none: vLLM does not start with these settings"
    else:
        longest = f"{p.max_context:,} tokens"
    numbers = [
        f"Concurrency: {p.max_concurrency:,.2f}x at {context:,} tokens" + ("" if p.exact else " (estimate)"),
        f"Longest request: {longest}",
        (
            f"Decode step ≥ {p.step_seconds * 1e3:,.2f} ms: ≤ {p.tokens_per_second:,.0f} tokens/s for one request"
            if p.step_seconds
            else "Decode step: unknown (no bandwidth for this GPU)"
        ),
        f"Cache (unsharded): {per_token:,} B per token, {per_layer} per token per layer ({layers} layers)",
        f"One request of {context:,} tokens: {fmt_bytes(stage.request_bytes)} per GPU",
    ]
    if p.exact:
        numbers.append(f"Pool: {p.num_blocks:,} blocks of {p.block_size} tokens per GPU ({p.kv_cache_tokens:,} tokens)")
    mml = "unknown" if p.max_model_len is None else f"{p.max_model_len:,}"
    seqs = "unknown" if p.max_num_seqs is None else f"{p.max_num_seqs:,}"
    assumptions = [  # what the candidates share is said once, in the sheet's header
        f"{hw.name}: {hw.memory_bytes / 1e9:g} GB = {fmt_bytes(hw.memory_bytes)}, of which "
        f"{fmt_bytes(hw.usable_bytes)} usable; reserved {fmt_bytes(p.reserved_bytes)}",
        f"max_num_batched_tokens {alloc.max_num_batched_tokens:,} (as planned); max_model_len {mml}; "
        f"max_num_seqs {seqs}",
    ]
    assumptions += [f"Note: {n}" for n in dict.fromkeys(filter(None, (p.startup_error, p.estimate_reason)))]
    latex = [bytes_per_token_latex(spec, p.kv_dtype, c.layout), budget_latex(p, hw)]
    if p.exact and p.kv_budget_bytes_per_gpu > 0:
        latex.append(concurrency_latex(p))
    return Column(
        name=name or c.name,
        setup=tuple(line for line in setup if line),
        memory=memory_parts(p),
        numbers=tuple(numbers),
        assumptions=tuple(assumptions),
        formulas=tuple(line for f in latex for line in latex_text(f)),
        latex=tuple(latex),
        plan=p,
    )


def review(
    candidates: tuple[Candidate, ...],
    specs: dict[str, ModelSpec],
    context: int,
    utilization_pct: int,
    date: str,
    version: str,
) -> Sheet:
    """The sheet of `candidates` (models looked up in `specs` by preset name) at `context` tokens; a candidate
    that cannot be planned becomes a sentence in `errors` and the others are kept."""
    columns: list[Column] = []
    errors: list[str] = []
    candidates = candidates[:MAX_CANDIDATES]
    for i, (c, name) in enumerate(zip(candidates, names(candidates), strict=True), 1):
        try:
            columns.append(column(c, specs[c.model], context, utilization_pct, name))
        except ValueError as e:
            errors.append(f"Candidate {i} ({name}) cannot be planned: {e}")
    block = columns[0].plan.allocator.block_size if columns else BLOCK_TOKENS
    return Sheet(
        title=f"KV cache review: {len(columns)} candidate{'s' if len(columns) != 1 else ''} at {context:,} tokens",
        shared=(
            f"One request of {context:,} tokens per candidate. Engine: vLLM {VLLM_VERSION}, its allocator as the "
            f"planner follows it; gpu_memory_utilization {utilization_pct / 100:.2f}, no memory reserved, blocks of "
            f"{block} tokens. Each bar is one GPU, on one scale for every candidate.",
        ),
        columns=tuple(columns),
        errors=tuple(errors),
        footer=(
            f"KV Cache Lab {version}, {date}. Engine: vLLM {VLLM_VERSION} as the planner follows it. Bytes in binary "
            "units (GiB); GPU memory from vendor datasheets (GB). Decode step and tokens/s are memory-bound limits "
            "at the datasheet bandwidth; real engines reach a fraction of them.",
        ),
    )
