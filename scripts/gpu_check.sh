#!/usr/bin/env bash
# The CUDA path, checked on a GPU when one is lent. Run from the repository root on the GPU machine:
#
#     bash scripts/gpu_check.sh [OUT_DIR]        # OUT_DIR defaults to $OUT, else gpu_check_out
#
# 1. Environment from the repo's own files: the project's .venv when its torch sees CUDA; else .venv-gpu with
#    requirements.txt and requirements-nodeps.txt, whose torch 2.13.0 then comes from the default package
#    index (a CUDA build on Linux). PIP_CONFIG_FILE=/dev/null keeps a machine's pip settings that point at a
#    local CPU wheel out of it. Everyone else keeps the CPU pin of `make venv`.
# 2. The tests that run only with CUDA (the files that skip without it) and every page's AppTest (pages put
#    their layers on CUDA when it is present), with -rs so every skip is listed.
# 3. The decode comparison on the GPU: each design's measured decode step against its roofline bound at 4K to
#    128K tokens, and the fraction of the bandwidth absorbed MLA reaches (python -m bench --device cuda).
#
# Results go to OUT_DIR: summary.txt, nvidia-smi.csv, pytest logs, bench.json and bench.txt.
# Without a CUDA device it says so in one line and exits 3: there is nothing to check (make test covers the
# CPU path). Any failing step makes the exit status 1; every step still runs.
#
# For trying the script without a GPU (tests/test_gpu_check.py): GPU_CHECK_PY names the interpreter (no
# environment is built), GPU_CHECK_DEVICE=cpu runs the three steps on the CPU, CUDA_TESTS / APPTESTS name
# the test files, BENCH_FLAGS adds flags to the bench (--quick).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu_check_out}}
CONTEXTS=${CONTEXTS:-4096,16384,65536,131072}
mkdir -p "$OUT"
: > "$OUT/summary.txt"
log() { echo "gpu_check: $*" | tee -a "$OUT/summary.txt"; }
has_cuda() { [ -x "$1" ] && "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }

DEVICE=${GPU_CHECK_DEVICE:-cuda}
if [ "$DEVICE" = cuda ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    log "no CUDA device here (no NVIDIA driver: nvidia-smi not found); nothing to check, make test covers the CPU path."
    exit 3
fi
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"

PY=${GPU_CHECK_PY:-.venv/bin/python}
if [ "$DEVICE" = cuda ] && [ -z "${GPU_CHECK_PY:-}" ] && ! has_cuda "$PY"; then
    PY=.venv-gpu/bin/python
    if ! has_cuda "$PY"; then
        log "building .venv-gpu (the project's torch does not see CUDA here)"
        test -x "$PY" || python3 -m venv .venv-gpu
        export PIP_CONFIG_FILE=/dev/null
        "$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt
        "$PY" -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
    fi
fi
if [ "$DEVICE" = cpu ]; then
    log "dry run on the CPU (GPU_CHECK_DEVICE=cpu): the steps run, nothing here is a GPU figure"
elif ! has_cuda "$PY"; then
    log "no CUDA device usable by torch ($("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2>&1 | tail -1)); nothing to check."
    exit 3
else
    log "$("$PY" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"{p.name}, {p.total_memory / 2**30:.1f} GiB as CUDA reports it; torch {torch.__version__}, CUDA {torch.version.cuda}")')"
fi

status=0
step() {  # step NAME COMMAND...: run, keep its log, note the outcome, carry on
    local name=$1; shift
    local start=$SECONDS
    if "$@" > "$OUT/$name.log" 2>&1; then
        log "$name: passed in $((SECONDS - start)) s ($(tail -1 "$OUT/$name.log"))"
    else
        log "$name: FAILED in $((SECONDS - start)) s; see $name.log ($(tail -1 "$OUT/$name.log"))"
        status=1
    fi
}

read -r -a CUDA_FILES <<< "${CUDA_TESTS:-$(grep -l "torch.cuda.is_available" tests/test_*.py | tr '\n' ' ')}"
read -r -a APP_FILES <<< "${APPTESTS:-$(ls tests/test_app_*.py | tr '\n' ' ')}"
read -r -a EXTRA <<< "${BENCH_FLAGS:-}"
step cuda-tests "$PY" -m pytest -q -rs -p no:cacheprovider "${CUDA_FILES[@]}"
step page-apptests "$PY" -m pytest -q -rs -p no:cacheprovider "${APP_FILES[@]}"
step decode-bench "$PY" -m bench --device "$DEVICE" --decode-only --contexts "$CONTEXTS" --out "$OUT/bench.json" "${EXTRA[@]}"
cp "$OUT/decode-bench.log" "$OUT/bench.txt" 2>/dev/null
log "done: exit $status; results in $OUT"
exit $status
