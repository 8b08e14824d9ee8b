"""scripts/gpu_check.sh, the prepared check of the CUDA path, tried as far as a machine without a GPU allows.

Proves:
- without an NVIDIA driver it says so in one line and exits 3 (nothing to check), building nothing;
- with a driver but a torch that sees no CUDA device it says so and exits 3;
- its three steps (CUDA-only tests, page AppTests, the decode bench) run end to end in a CPU dry run,
  write their logs and the bench's JSON, and a failing step makes the exit status 1 while the others run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def run(out: Path, path: str | None = None, **env: str) -> subprocess.CompletedProcess:
    full = os.environ | {"GPU_CHECK_PY": sys.executable} | env
    if path is not None:
        full["PATH"] = path
    return subprocess.run(
        ["bash", str(SCRIPT), str(out)], cwd=ROOT, env=full, capture_output=True, text=True, timeout=600
    )


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine: the real check would run")
def test_without_a_driver_it_says_so_and_exits_3(tmp_path):
    r = run(tmp_path / "out", GPU_CHECK_PY="")
    assert r.returncode == 3
    (line,) = r.stdout.strip().splitlines()
    assert "no CUDA device here" in line and "nvidia-smi not found" in line
    assert "building" not in r.stdout  # no environment is made where there is no GPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch sees CUDA")
def test_with_a_driver_but_no_cuda_torch_it_says_so_and_exits_3(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text(
        "#!/bin/sh\necho 'name, memory.total [MiB], driver_version'\necho 'Fake, 1 MiB, 0'\n"
    )
    (fake / "nvidia-smi").chmod(0o755)
    r = run(tmp_path / "out", path=f"{fake}:{os.environ['PATH']}")
    assert r.returncode == 3
    assert "no CUDA device usable by torch" in r.stdout


def test_a_cpu_dry_run_runs_every_step(tmp_path):
    out = tmp_path / "out"
    steps = dict(CUDA_TESTS="tests/test_units.py", APPTESTS="tests/test_app_glossary.py", CONTEXTS="512")
    r = run(out, GPU_CHECK_DEVICE="cpu", BENCH_FLAGS="--quick", **steps)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = (out / "summary.txt").read_text()
    for step in ("cuda-tests", "page-apptests", "decode-bench"):
        assert f"{step}: passed" in summary
    bench = json.loads((out / "bench.json").read_text())
    assert bench["contexts"] == [512] and [d["device"] for d in bench["devices"]] == ["cpu"]

    r = run(tmp_path / "fail", GPU_CHECK_DEVICE="cpu", BENCH_FLAGS="--quick", **(steps | {"APPTESTS": "tests/none.py"}))
    assert r.returncode == 1
    summary = (tmp_path / "fail" / "summary.txt").read_text()
    assert "page-apptests: FAILED" in summary and "decode-bench: passed" in summary
