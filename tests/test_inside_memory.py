"""Memory of the Inside MLA page under its heaviest allowed links (core/lab/inside.py, app_pages/inside_mla.py).

Shared links come from strangers, so what one link can make the server allocate is bounded. This runs the
page through AppTest in a fresh interpreter (the server's situation: torch loaded, the page's caches
filled), opens the two heaviest links the page allows one after the other, and reads the process's own
counters: the peak resident memory must stay under 1.5 GB, and after the runs (the page keeps only
block-averaged heatmaps of what it computed) the resident memory must come back to within 300 MB of
where it was after a first light run. A budget in bytes, not a timing. It also checks that the link that
used to hold 1-2 GB (64 heads x 1,024 tokens) is now refused with a sentence. Limits: 8M numbers per
intermediate (core.lab.inside.MAX_ELEMENTS).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEAK_BUDGET = 1_500_000_000
RETURN_BUDGET = 300_000_000

HEAVY = [  # the two largest intermediates the page allows (8M scores), at the widest and the longest
    {"width": "4096", "heads": "32", "kv": "32", "hd": "4", "dc": "4", "dr": "0", "T": "512"},
    {"width": "16", "heads": "8", "kv": "8", "hd": "4", "dc": "4", "dr": "0", "T": "1024"},
]
REFUSED = {"width": "16", "heads": "64", "kv": "64", "hd": "4", "dc": "4", "dr": "0", "T": "1024"}

SCRIPT = r"""
import ctypes, gc, json, resource, sys
from streamlit.testing.v1 import AppTest

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

def peak():
    # VmHWM: this process's own peak. ru_maxrss would not do: Linux carries it across exec from the parent
    # that spawned us (a pytest process that holds a 540 MB model reads as this page's peak).
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))

def trim():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass

def page(query):
    at = AppTest.from_file("app.py", default_timeout=600)
    at.switch_page("app_pages/inside_mla.py")
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]

heavy, refused = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert page({}) == []
trim()
base = rss()
for q in heavy:
    assert page(q) == [], q
refusal = page(refused)
trim()
print(json.dumps({
    "base": base,
    "peak": peak(),
    "after": rss(),
    "refusal": refusal,
}))
"""


def test_the_heaviest_links_stay_inside_the_memory_budget():
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(HEAVY), json.dumps(REFUSED)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m["peak"] < PEAK_BUDGET, m
    assert m["after"] - m["base"] < RETURN_BUDGET, m
    (refusal,) = m["refusal"]
    assert "limit" in refusal and "8,388,608" in refusal.replace("\\", "")
