"""core/model/gpus.py: every GPU preset carries the memory its device reports beside the datasheet's, with a
source; the figures the issue quotes from vLLM logs hold; estimates say they are; docs/facts.md lists them all."""

import re
from pathlib import Path

import pytest

from core.model.gpus import GIB, GPUS

FACTS = (Path(__file__).resolve().parent.parent / "docs" / "facts.md").read_text()


@pytest.mark.parametrize("name", list(GPUS))
def test_every_preset_reports_its_memory_with_a_source(name):
    g = GPUS[name]
    assert g.reported_source.strip()
    if not g.reported_estimate:
        assert re.match(r"https://github\.com/[\w.-]+/[\w.-]+/(issues|pull)/\d+", g.reported_source), g
    # reported memory lies near the datasheet's figure read as GB or as GiB (AMD's "192 GB" is 192 GiB)
    assert 0.9 * g.memory_gb * 1e9 <= g.reported_bytes <= 1.001 * g.memory_gb * GIB, g
    assert g.memory_bytes == int(g.memory_gb * 1e9)  # what the planner plans from, for now
    said = g.describe_memory()
    assert f"{g.memory_gb:g} GB" in said and f"{g.reported_gib:.2f} GiB" in said
    assert ("estimated" in said) == g.reported_estimate


def test_the_figures_vllm_logs_print():
    """vLLM logs total_gpu_memory 79.11 GiB on 80 GB H100s and about 139.8 GiB on a 141 GB card."""
    assert GPUS["H100 SXM"].reported_bytes == pytest.approx(79.1 * GIB, rel=0.005)
    assert GPUS["H200"].reported_bytes == pytest.approx(139.8 * GIB, rel=0.005)


def test_facts_list_every_preset():
    section = FACTS[FACTS.index("## 8. GPUs") : FACTS.index("## 9.")]
    for name, g in GPUS.items():
        row = next((line for line in section.splitlines() if line.startswith(f"| {name} |")), None)
        assert row is not None, name
        assert f"{g.memory_gb:g} GB" in row and f"{g.reported_gib:.2f}" in row, row
