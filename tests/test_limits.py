"""The limits vLLM enforces before the cache does (core/accounting/limits.py, and the planner that applies
them): the derived max_model_len from a config's length keys and RoPE scaling, the start-up refusals (a
--max-model-len above it; a pool that cannot hold one request of it, with vLLM's estimate), the longest
request capped at max_model_len, and the scheduler's max_num_seqs. Rules and sources: docs/facts.md section
10."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest

from core.accounting import limits
from core.accounting import planner as pl
from core.accounting.plan_inputs import PlanSettings, plan_inputs
from core.model.gpus import GPUS
from core.model.hf_config import from_hf_config, load_config_file
from core.model.presets import load_preset
from core.report import main

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tests" / "data" / "configs"
GIB = 1 << 30


def qwen3_235b(**changes):
    cfg = json.loads((CONFIGS / "qwen--qwen3-235b-a22b.json").read_text())
    return from_hf_config({**cfg, **changes})


YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}


def h200x8(context: int, **kw) -> PlanSettings:
    return PlanSettings(context=context, gpu="H200", n_gpus=8, tp=8, **kw)


# ----------------------------------------------------------------------------- the derived length


def test_qwen3_235b_serves_40960_tokens_and_yarn_alone_does_not_raise_it():
    """Its config says max_position_embeddings 40,960 and no RoPE scaling; since vLLM 0.30 a YaRN entry no
    longer multiplies the length (Qwen's 131,072 needs max_position_embeddings raised with it)."""
    assert limits.derived_max_model_len(qwen3_235b()).value == 40960
    assert limits.derived_max_model_len(qwen3_235b(rope_scaling=YARN)).value == 40960
    raised = limits.derived_max_model_len(qwen3_235b(rope_scaling=YARN, max_position_embeddings=131072))
    assert raised.value == 131072 and raised.source == "max_position_embeddings=131,072"


def test_linear_and_dynamic_scaling_multiply_the_length_and_llama3_longrope_gemma3_do_not():
    base = json.loads((CONFIGS / "meta-llama--llama-2-7b-hf.json").read_text())
    for kind, factor, want in [("linear", 4.0, 16384), ("dynamic", 2.0, 8192), ("llama3", 8.0, 4096)]:
        spec = from_hf_config({**base, "rope_scaling": {"rope_type": kind, "factor": factor}})
        assert limits.derived_max_model_len(spec).value == want, kind
    legacy = from_hf_config({**base, "rope_scaling": {"type": "linear", "factor": 2.0}})  # the old key name
    assert limits.derived_max_model_len(legacy).value == 8192
    gemma = load_preset("gemma-3-27b")  # linear x8 in its file, already in its 131,072 (library default)
    assert gemma.context_limits.rope[0].factor == 8.0 and limits.derived_max_model_len(gemma).value == 131072


def test_the_smallest_length_key_wins_unless_model_max_length_overrides_and_none_means_2048():
    base = json.loads((CONFIGS / "meta-llama--llama-2-7b-hf.json").read_text())
    spec = from_hf_config({**base, "seq_length": 2048})
    assert limits.derived_max_model_len(spec).source == "seq_length=2,048"
    spec = from_hf_config({**base, "seq_length": 2048, "model_max_length": 8192})
    assert limits.derived_max_model_len(spec).value == 8192  # Command-R's rule: it overrides the minimum
    bare = from_hf_config({k: v for k, v in base.items() if k != "max_position_embeddings"})
    d = limits.derived_max_model_len(bare)
    assert d.value == 2048 and "assumes 2,048" in d.source


def test_longrope_serves_its_original_length_by_default():
    phi = from_hf_config(load_config_file(CONFIGS / "microsoft--phi-4-mini-instruct.json"))
    d = limits.derived_max_model_len(phi)
    assert (d.value, d.default_len) == (131072, 4096)
    assert limits.max_model_len(phi).value == 4096 and limits.max_model_len(phi, 131072).value == 131072


def test_a_length_the_config_cannot_state_is_unknown_never_a_default():
    base = json.loads((CONFIGS / "meta-llama--llama-2-7b-hf.json").read_text())
    for bad in ({"max_position_embeddings": "4k"}, {"rope_scaling": {"factor": 2.0}}, {"rope_scaling": [1]}):
        spec = from_hf_config({**base, **bad})  # the cache figures are still exact
        d = limits.derived_max_model_len(spec)
        assert d.value is None and d.why, bad
        p = plan_inputs(PlanSettings(context=4096, gpu="H200")).plan(spec)
        assert p.max_model_len is None and any("requests are not capped" in n for n in p.notes)


def test_every_exact_corpus_config_states_its_length():
    outcomes = json.loads((CONFIGS / "outcomes.json").read_text())
    n = 0
    for f in sorted(glob.glob(str(CONFIGS / "*.json"))):
        if Path(f).name == "outcomes.json" or outcomes.get(Path(f).name, {}).get("outcome") != "exact":
            continue
        try:
            spec = from_hf_config(load_config_file(f))
        except ValueError:
            continue
        d = limits.derived_max_model_len(spec)
        assert d.value is not None and 512 <= d.value <= 1 << 24, (f, d)
        n += 1
    assert n >= 100


# ----------------------------------------------------------------------------- what the plan does with it


def test_qwen3_235b_at_131072_without_rope_scaling_is_refused_or_flagged_as_vllm_would():
    spec = qwen3_235b()
    asked = plan_inputs(h200x8(131072, max_model_len=131072)).plan(spec)
    assert asked.startup_error.startswith("vLLM refuses to start: User-specified max_model_len (131,072)")
    assert "max_position_embeddings=40,960" in asked.startup_error and limits.LONG_ENV in asked.startup_error
    assert not asked.fits and asked.max_running_requests == 0 and asked.max_context == 0
    default = plan_inputs(h200x8(131072)).plan(spec)  # vLLM starts at 40,960 and rejects these requests
    assert default.startup_error is None and default.max_model_len == 40960 and not default.fits
    assert default.max_context == 40960 < default.pool_max_context and default.max_running_requests == 0
    assert any("longer than max_model_len 40,960" in n for n in default.notes)
    forced = plan_inputs(h200x8(131072, max_model_len=131072, allow_long_max_model_len=True)).plan(spec)
    assert forced.fits and forced.max_model_len == 131072 and any(limits.LONG_ENV in n for n in forced.notes)


def test_qwen3_235b_with_yarn_and_the_raised_length_serves_131072():
    spec = qwen3_235b(rope_scaling=YARN, max_position_embeddings=131072)
    p = plan_inputs(h200x8(131072, max_model_len=131072)).plan(spec)
    assert p.startup_error is None and p.fits and p.max_model_len == p.derived_max_model_len == 131072
    assert p.max_running_requests == int(p.max_concurrency) == 10


def test_gpt2s_longest_request_is_1024_tokens():
    p = plan_inputs(PlanSettings(context=1024, gpu="H100 SXM")).plan(load_preset("gpt2"))
    assert p.max_context == p.max_model_len == 1024 and p.pool_max_context > 1_000_000 and p.fits
    longer = plan_inputs(PlanSettings(context=2048, gpu="H100 SXM")).plan(load_preset("gpt2"))
    assert not longer.fits and longer.max_running_requests == 0


def test_no_plan_reports_a_longest_request_above_its_max_model_len():
    for name in ("llama-3.1-70b", "deepseek-v3", "mistral-7b", "qwen3-next-80b-a3b", "gemma-3-27b", "gpt2"):
        p = plan_inputs(PlanSettings(context=4096, gpu="H200", n_gpus=8)).plan(load_preset(name))
        assert p.max_context is not None and p.max_context <= p.max_model_len, name


def test_short_requests_are_capped_by_max_num_seqs():
    spec = load_preset("llama-3.1-70b")
    p = plan_inputs(h200x8(1024)).plan(spec)
    assert p.max_num_seqs == 1024 and p.max_concurrency > 2000 and p.max_running_requests == 1024
    assert any("max_num_seqs = 1,024" in n for n in p.notes)
    assert plan_inputs(h200x8(1024, max_num_seqs=64)).plan(spec).max_running_requests == 64
    small = plan_inputs(PlanSettings(context=1024, gpu="RTX 4090", max_model_len=8192)).plan(
        load_preset("llama-3.1-8b")
    )
    assert small.max_num_seqs == 256 and small.max_running_requests == min(256, int(small.max_concurrency))


@pytest.mark.parametrize(
    "gpu, seqs",
    [("H100 SXM", 1024), ("H200", 1024), ("B200", 1024), ("MI300X", 1024), ("A100 SXM 80GB", 256), ("RTX 4090", 256)],
)
def test_vllm_serves_default_max_num_seqs_by_gpu(gpu, seqs):
    g = GPUS[gpu]
    assert limits.default_max_num_seqs(g.memory_bytes, g.name, 8192) == seqs
    assert limits.default_max_num_seqs(g.memory_bytes, g.name, 100) == 100  # never above the batched tokens


def test_a_plan_without_a_gpu_does_not_guess_the_scheduler_cap():
    p = plan_inputs(PlanSettings(context=1024, kv_budget_gib=20)).plan(load_preset("llama-3.1-8b"))
    assert p.max_num_seqs is None and any("cap is unknown without the GPU" in n for n in p.notes)


def test_the_qwen3_8b_log_where_max_model_len_had_to_be_lowered():
    """A public vLLM log (Qwen3-8B, TP1, bf16, default max_model_len 40,960): "To serve at least one request
    with the models's max seq len (40960), (5.62 GiB KV cache is needed, which is larger than the available
    KV cache memory (4.50 GiB). Based on the available memory, the estimated maximum model length is
    32768." Fed that KV memory, the planner refuses the same way with the same numbers; at the estimate, it
    starts."""
    spec = from_hf_config(load_config_file(CONFIGS / "qwen--qwen3-8b.json"))
    p = plan_inputs(PlanSettings(context=1024, kv_budget_gib=4.5)).plan(spec)
    assert "max seq len (40,960), 5.62 GiB KV cache is needed" in p.startup_error
    assert "available KV cache memory (4.50 GiB)" in p.startup_error
    assert p.estimated_max_model_len == 32768 and not p.fits and p.max_running_requests == 0
    for logged in (4.495, 4.5049):  # any budget the logged "4.50" allows gives an estimate near it
        q = plan_inputs(PlanSettings(context=1024, kv_budget_gib=logged)).plan(spec)
        assert abs(q.estimated_max_model_len - 32768) <= 48
    ok = plan_inputs(PlanSettings(context=1024, kv_budget_gib=4.5, max_model_len=32768)).plan(spec)
    # vLLM 0.33 checks the memory without the null block, so it starts; one request then holds 2,047 blocks
    assert ok.startup_error is None and ok.fits and ok.max_context == 2047 * 16


def test_the_cli_takes_vllms_flags_and_reports_the_limits(capsys):
    args = ["qwen3-235b-a22b", "--gpu", "H200", "--gpus", "8", "--context", "32768", "--json"]
    assert main([*args, "--max-num-seqs", "8"]) == 0
    p = json.loads(capsys.readouterr().out)["plan"]
    assert (p["max_model_len"], p["derived_max_model_len"], p["max_num_seqs"]) == (40960, 40960, 8)
    assert p["max_running_requests"] == 8 and p["max_context"] == 40960 and p["startup_error"] is None
    assert main([*args, "--max-model-len", "131072"]) == 0
    p = json.loads(capsys.readouterr().out)["plan"]
    assert p["startup_error"] and p["max_model_len"] is None and not p["fits"]
    assert main(["qwen3-235b-a22b", "--gpu", "H200", "--gpus", "8", "--max-model-len", "131072"]) == 0
    assert "longest request none: vLLM does not start" in capsys.readouterr().out
    assert main(["gpt2", "--gpu", "H200", "--max-num-seqs", "0"]) == 2


def test_the_planner_refuses_nonsense_limits():
    for bad in ({"max_model_len": 0}, {"max_num_seqs": -1}, {"max_model_len": True}):
        with pytest.raises(ValueError, match="must be a whole number"):
            pl.Allocator(**bad)
