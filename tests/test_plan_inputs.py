"""One builder of the memory planner's inputs (core.accounting.plan_inputs), for the page and the CLI.

- Plain settings become the planner's Hardware, Parallelism (None: per model) and Allocator: presets, a
  custom GPU in GB, memory in GiB overriding a preset, a pool sized by the KV budget alone (memory unknown).
- Bad settings raise one ValueError sentence: an unknown GPU, nothing to size the pool, PP or TP x PP not
  dividing the GPUs, utilization or block size out of range.
- `PlanInputs.plan` is `planner.plan` with those inputs; TP left out is the widest that splits each model.
- The page (PlannerState.plan_settings) and the CLI (report.plan_settings) turn the same plain state into
  equal settings, equal inputs and equal plans.
"""

from __future__ import annotations

import pytest

from core.accounting import planner as pl
from core.accounting.plan_inputs import GIB, PlanInputs, PlanSettings, plan_inputs
from core.model.gpus import GPUS
from core.model.presets import load_preset
from core.report import parser, plan_settings
from core.view.urlstate import PlannerState

H200 = GPUS["H200"]


def test_defaults_are_vllms():
    i = plan_inputs(PlanSettings(4096, gpu="H200"))
    assert i.hardware == pl.Hardware("H200", H200.memory_bytes, H200.bandwidth_tb_s * 1e12, 1, 0.9, 0)
    assert i.parallel is None and i.allocator == pl.Allocator()
    assert (i.context, i.batch, i.kv_dtype, i.weight_dtype, i.layout) == (4096, 1, "auto", "native", "latent")
    assert i.gpu_memory_bytes == H200.memory_bytes


@pytest.mark.parametrize(
    ("settings", "batched"),
    [
        (PlanSettings(4096, gpu="H200"), 8192),
        (PlanSettings(4096, gpu="H100 SXM"), 8192),
        (PlanSettings(4096, gpu="MI300X"), 8192),
        (PlanSettings(4096, gpu="A100 SXM 80GB"), 2048),  # 80 GB, but an A100 (vLLM PR 17885)
        (PlanSettings(4096, gpu="RTX 4090"), 2048),
        (PlanSettings(4096, memory_gb=48), 2048),  # an L40S-sized custom GPU
        (PlanSettings(4096, memory_gib=79.1), 8192),
        (PlanSettings(4096, gpu="RTX 4090", max_num_batched_tokens=4096), 4096),  # set: kept
        (PlanSettings(4096, kv_budget_gib=10), 8192),  # no GPU at all: the large GPUs' default, as before
    ],
)
def test_max_num_batched_tokens_defaults_to_vllm_serves_for_the_gpu(settings, batched):
    """vllm serve's max_num_batched_tokens is 8,192 on GPUs of 70 GiB or more but the A100 and 2,048 on the
    others (it was 8,192 everywhere here); max_num_seqs is capped by it, sliding-window layers admit by it."""
    i = plan_inputs(settings)
    assert i.allocator.max_num_batched_tokens == batched


def test_a_sliding_window_model_on_a_small_gpu_plans_with_its_default():
    """gpt-oss-120b on eight RTX 4090s (TP8): the sliding-window groups keep a window plus the tokens in
    flight, which now come from 2,048 batched tokens, as vLLM would run it, not 8,192."""
    spec = load_preset("gpt-oss-120b")
    default = plan_inputs(PlanSettings(8192, gpu="RTX 4090", n_gpus=8, tp=8)).plan(spec)
    told = plan_inputs(PlanSettings(8192, gpu="RTX 4090", n_gpus=8, tp=8, max_num_batched_tokens=2048))
    old = plan_inputs(PlanSettings(8192, gpu="RTX 4090", n_gpus=8, tp=8, max_num_batched_tokens=8192))
    assert default == told.plan(spec) and default.max_concurrency > old.plan(spec).max_concurrency


def test_every_setting_reaches_the_planner():
    s = PlanSettings(
        1000, 4, "fp8", "bf16", "materialised", gpu="B200", n_gpus=16, tp=4, pp=2, dp_attention=True,
        utilization=0.85, reserved_gib=2.5, kv_budget_gib=12.1334, block_size=64, max_num_batched_tokens=2048,
        async_scheduling=False,
    )  # fmt: skip
    i = plan_inputs(s)
    b200 = GPUS["B200"]
    assert i.hardware == pl.Hardware("B200", b200.memory_bytes, b200.bandwidth_tb_s * 1e12, 16, 0.85, int(2.5 * GIB))
    assert i.parallel == pl.Parallelism(4, 2, 2, True)
    assert i.allocator == pl.Allocator(64, 2048, False, int(12.1334 * GIB))
    assert (i.context, i.batch, i.kv_dtype, i.weight_dtype, i.layout) == (1000, 4, "fp8", "bf16", "materialised")


def test_gpu_memory_given_three_ways():
    custom = plan_inputs(PlanSettings(1, memory_gb=80.5, bandwidth_tb_s=3.0)).hardware
    assert (custom.name, custom.memory_bytes, custom.bandwidth_bytes_s) == ("custom 80.5 GB GPU", 80_500_000_000, 3e12)
    gib = plan_inputs(PlanSettings(1, memory_gib=24)).hardware
    assert (gib.name, gib.memory_bytes, gib.bandwidth_bytes_s) == ("24 GiB GPU", 24 * GIB, 0.0)
    over = plan_inputs(PlanSettings(1, gpu="H200", memory_gib=100)).hardware  # the preset's bandwidth stays
    assert (over.name, over.memory_bytes, over.bandwidth_bytes_s) == ("H200", 100 * GIB, H200.bandwidth_tb_s * 1e12)
    unknown = plan_inputs(PlanSettings(1, kv_budget_gib=3.8125))
    assert unknown.gpu_memory_bytes is None and unknown.hardware.name == "GPU of unstated memory"
    assert unknown.hardware.memory_bytes == 1 and unknown.allocator.kv_budget_bytes == int(3.8125 * GIB)


def test_gpus_default_to_tp_x_pp():
    assert plan_inputs(PlanSettings(1, gpu="H200", tp=2, pp=2)).hardware.n_gpus == 4
    assert plan_inputs(PlanSettings(1, gpu="H200", pp=3)).hardware.n_gpus == 3


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (dict(gpu="nope"), "unknown GPU 'nope'; choose one of"),
        (dict(gpu="H200", memory_gb=80, memory_gib=80), "once"),
        (dict(), "a plan needs a GPU"),
        (dict(gpu="H200", n_gpus=8, pp=3), "PP 3 does not divide 8 GPU(s)"),
        (dict(gpu="H200", n_gpus=8, pp=3, dp_attention=True), "PP 3 does not divide 8 GPU(s)"),
        (dict(gpu="H200", n_gpus=6, tp=4), "TP x PP = 4 x 1 = 4 does not divide 6 GPU(s)"),
        (dict(gpu="H200", utilization=1.5), "memory utilization must be in (0, 1]"),
        (dict(gpu="H200", reserved_gib=-1), "reserved memory cannot be negative"),
        (dict(gpu="H200", block_size=0), "block size must be a whole number"),
        (dict(kv_budget_gib=-1), "cannot be negative"),
    ],
)
def test_bad_settings_raise_one_sentence(settings, words):
    with pytest.raises(ValueError) as e:
        plan_inputs(PlanSettings(1, **settings))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_tp_per_model_and_plan():
    gpt2, llama = load_preset("gpt2"), load_preset("llama-3.1-70b")
    i = plan_inputs(PlanSettings(2048, 3, gpu="H200", n_gpus=8))
    assert i.parallelism(gpt2) == pl.Parallelism(4, 1, 2) and i.parallelism(llama) == pl.Parallelism(8, 1, 1)
    hw = pl.Hardware("H200", H200.memory_bytes, H200.bandwidth_tb_s * 1e12, 8)
    assert i.plan(llama) == pl.plan(llama, hw, 2048, 3, "auto", "native", "latent", pl.Parallelism(8), pl.Allocator())
    one = i.plan(llama, pl.Parallelism(2, 1, 4), batch=1)
    assert one == pl.plan(llama, hw, 2048, 1, "auto", "native", "latent", pl.Parallelism(2, 1, 4), pl.Allocator())


# ----------------------------------------------------------------------------- page and CLI agree

# The same plain state, as the page's controls hold it and as CLI flags say it.
SAME = [
    (dict(), []),
    (
        dict(gpu="H100 SXM", n_gpus=8, tp=4, pp=2, utilization=85, reserved_gib=2.5),
        [
            "--gpu",
            "H100 SXM",
            "--gpus",
            "8",
            "--tp",
            "4",
            "--pp",
            "2",
            "--utilization",
            "0.85",
            "--reserved-gib",
            "2.5",
        ],
    ),  # fmt: skip
    (
        dict(models=("deepseek-v3",), gpu="B200", n_gpus=16, dp_attention=True, block_size=64, batched_tokens=4096),
        ["--gpu", "B200", "--gpus", "16", "--dp-attention", "--block-size", "64", "--max-num-batched-tokens", "4096"],
    ),
    (
        dict(gpu="A100 SXM 80GB", n_gpus=4, pp=2, kv_budget_gib=12.1334, context=1024, batch=7),
        [
            "--gpu",
            "A100 SXM 80GB",
            "--gpus",
            "4",
            "--pp",
            "2",
            "--kv-budget-gib",
            "12.1334",
            "--context",
            "1024",
            "--batch",
            "7",
        ],
    ),  # fmt: skip
    (
        dict(gpu="MI300X", n_gpus=2, kv_dtype="fp8", weight_dtype="fp8", layout="materialised", context=50_000),
        [
            "--gpu",
            "mi300x",
            "--gpus",
            "2",
            "--kv-dtype",
            "fp8",
            "--weights",
            "fp8",
            "--layout",
            "materialised",
            "--context",
            "50000",
        ],
    ),  # fmt: skip
]
PAGE = PlannerState()  # the page's defaults, said as flags: the CLI's differ
DEFAULT_FLAGS = ["--gpu", PAGE.gpu, "--gpus", f"{PAGE.n_gpus}", "--context", f"{PAGE.context}"]


def page_and_cli(page: dict, flags: list[str]) -> tuple[PlanSettings, PlanSettings]:
    return PlannerState(**page).plan_settings(), plan_settings(parser().parse_args(["gpt2", *DEFAULT_FLAGS, *flags]))


@pytest.mark.parametrize(("page", "flags"), SAME)
def test_page_and_cli_build_the_same_inputs(page, flags):
    from_page, from_cli = page_and_cli(page, flags)
    assert from_page == from_cli
    assert plan_inputs(from_page) == plan_inputs(from_cli)


@pytest.mark.parametrize(("page", "flags"), SAME[1:3])
def test_page_and_cli_plan_the_same(page, flags):
    from_page, from_cli = (plan_inputs(s) for s in page_and_cli(page, flags))
    for name in ("llama-3.1-70b", "deepseek-v3", "gemma-3-27b"):
        spec = load_preset(name)
        assert from_page.plan(spec) == from_cli.plan(spec), name


def test_the_pages_conventions():
    """Percent utilization, TP 0 per model, a KV budget of 0 from the memory, a custom GPU in GB."""
    s = PlannerState(gpu="custom", memory_gb=48.0, bandwidth_tb_s=0.9, utilization=80, tp=0, kv_budget_gib=0.0)
    i = plan_inputs(s.plan_settings())
    assert isinstance(i, PlanInputs) and i.parallel is None and i.allocator.kv_budget_bytes is None
    assert (i.hardware.name, i.hardware.memory_bytes, i.hardware.utilization) == ("custom 48 GB GPU", 48e9, 0.8)
    assert i.hardware.bandwidth_bytes_s == 0.9e12
    assert PlannerState(gpu="H200", memory_gb=48.0).plan_settings().memory_gb is None  # only the custom GPU's
