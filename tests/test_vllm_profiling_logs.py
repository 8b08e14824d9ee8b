"""tests/data/vllm_profiling_logs.json: public vLLM start-up logs (0.6-0.10's V0 and V1 engines) that print the
whole memory-profiling line, gathered for planning from the memory a GPU reports (docs/facts.md section 8).
Each record's numbers were copied from the log at its URL; this checks they are the log's own arithmetic
(usable = total x utilization; KV = usable - weights - non-torch - activation peak, to the 0.01 GiB printed),
and that the totals agree with the GPU presets' reported memory."""

import json
from pathlib import Path

import pytest

from core.model.gpus import GPUS

LOGS = json.loads((Path(__file__).resolve().parent / "data" / "vllm_profiling_logs.json").read_text())


def test_enough_logs_with_their_sources():
    assert len(LOGS) >= 6
    assert all(x["url"].startswith("https://github.com/") and x["profiling_line"] for x in LOGS)


@pytest.mark.parametrize("log", LOGS, ids=[x["url"].rsplit("/", 2)[-1] + ":" + str(i) for i, x in enumerate(LOGS)])
def test_each_log_is_its_own_arithmetic(log):
    usable = log["total_gpu_memory_gib"] * log["utilization"]
    assert usable == pytest.approx(log["usable_gib"], abs=0.011)
    rest = log["usable_gib"] - log["weights_gib"] - log["non_torch_gib"] - log["activation_peak_gib"]
    assert rest == pytest.approx(log["kv_cache_gib"], abs=0.021)
    for key in ("total_gpu_memory_gib", "weights_gib", "non_torch_gib", "activation_peak_gib", "kv_cache_gib"):
        assert f"{log[key]:.2f}GiB" in log["profiling_line"].replace(" GiB", "GiB"), key


@pytest.mark.parametrize(
    ("gpu", "logged"),
    [("A100 SXM 40GB", 39.38), ("L40S", 44.42), ("H200", 139.72), ("H100 SXM", 79.22)],
)
def test_logged_totals_agree_with_the_presets(gpu, logged):
    assert any(x["total_gpu_memory_gib"] == logged for x in LOGS)
    assert GPUS[gpu].reported_gib == pytest.approx(logged, rel=0.002)
