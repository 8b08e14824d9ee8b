"""The Altair speed-up in core/view/charts.py is a pure cache: the class table it reuses equals the one
Altair builds, and a chart's spec is the same as without it."""

import subprocess
import sys
from pathlib import Path

from altair.utils import schemapi

import core.view.charts  # noqa: F401  (installs the cache)

ROOT = Path(__file__).resolve().parent.parent


def test_memoized_class_table_equals_altairs_own():
    init = schemapi._FromDict.__init__
    assert getattr(init, "memoized", False)
    classes = list(schemapi._subclasses(schemapi.SchemaBase))
    fresh = schemapi._FromDict.__new__(schemapi._FromDict)
    init.original(fresh, classes)
    cached = schemapi._FromDict(classes)
    assert dict(cached.class_dict) == dict(fresh.class_dict)
    assert schemapi._FromDict(classes).class_dict is cached.class_dict  # built once


LISTING = """
import sys
sys.path.insert(0, {root!r})
import altair as alt
from altair.utils import schemapi
import core.view.charts
for root in (schemapi.SchemaBase, alt.VegaLiteSchema):
    assert root._default_wrapper_classes() == tuple(schemapi._subclasses(root))
    assert root._default_wrapper_classes() is root._default_wrapper_classes()  # kept, not walked again
class Deeper(alt.Axis):  # two levels below VegaLiteSchema
    pass
listing = alt.VegaLiteSchema._default_wrapper_classes()
assert Deeper in listing and listing == tuple(schemapi._subclasses(alt.VegaLiteSchema))
assert Deeper in schemapi.SchemaBase._default_wrapper_classes()
print("ok")
"""


def test_the_kept_class_listing_is_altairs_walk_and_follows_new_classes():
    """The wrapper classes are listed once, not walked on every lookup, and listed again when a schema class
    is defined anywhere below the root: the same classes, in the same order, as Altair's own walk. (In a
    process of its own: the class it defines stays defined.)"""
    run = subprocess.run([sys.executable, "-c", LISTING.format(root=str(ROOT))], capture_output=True, text=True)
    assert run.stdout.strip() == "ok", run.stderr


SPEC = """
import json, sys
sys.path.insert(0, {root!r})
from altair.utils import schemapi
import core.view.charts as ch
if {patched}:
    schemapi.disable_debug_mode()  # as the served app runs (app_pages/figures.py)
else:  # Altair's own class table, class listing and deep copy, and its debug mode
    schemapi._deep_copy = schemapi._deep_copy.original
    for root, listing in schemapi._FromDict.__init__.originals.items():
        root._default_wrapper_classes = listing
    schemapi._FromDict.__init__ = schemapi._FromDict.__init__.original
import altair as alt, pandas as pd
from core.accounting import roofline as rl
from core.model.gpus import GPUS
from core.model.presets import load_preset
df = pd.DataFrame({{"x": [1, 2, 3], "y": [3, 1, 2], "m": ["a", "b", "a"]}})
c = alt.Chart(df).mark_line().encode(x="x:Q", y=alt.Y("y:Q", title="y"), color="m:N", tooltip=["x", "y"])
c = alt.layer(c, alt.Chart(df).mark_rule().encode(x=alt.value(3)))
gpu = GPUS["H200"]
roof = ch.roofline_chart(rl.roof(gpu), rl.roofline_points(rl.designs(load_preset), gpu, 4096, 8), "roof")
specs = {{m: load_preset(m) for m in ("llama-3.1-70b", "qwen3-next-80b-a3b")}}
curves = ch.cache_vs_context(specs, ch.CONTEXTS, "bf16", 1)
kv = ch.cache_chart(curves, "H200", 131.0, 4096, "kv")
print(json.dumps([ch.style(x).to_dict() for x in (c, roof, kv)], sort_keys=True))
"""


def test_a_chart_spec_is_the_same_with_and_without_the_speedups():
    """The memoised class table, the faster deep copy and debug mode off (as the app serves charts) give the
    very spec Altair gives without them: a line chart, the roofline (layered, conditions, labels) and a KV-cache
    chart with a hybrid model's dotted state line."""
    out = [
        subprocess.run(
            [sys.executable, "-c", SPEC.format(root=str(ROOT), patched=p)], capture_output=True, text=True, check=True
        ).stdout
        for p in (True, False)
    ]
    assert out[0] == out[1] and len(out[0]) > 5000


def test_pages_skip_the_schema_check_only_outside_tests(monkeypatch):
    """Under test every chart is validated (conftest sets KVLAB_VALIDATE_CHARTS); a served page asks Altair
    for the same spec without the check."""
    from app_pages import figures

    assert figures.VALIDATE_CHARTS
    seen = []

    class Spy:
        def to_dict(self, *args, **kwargs):
            seen.append(kwargs["validate"])
            return {}

    figures.to_spec(Spy())
    monkeypatch.setattr(figures, "VALIDATE_CHARTS", False)
    figures.to_spec(Spy())
    assert seen == [True, False]


def test_the_app_uses_public_streamlit_only_and_draws_every_chart_through_figures():
    """No module of the app imports from Streamlit's internals (a private name moves without notice), and no
    page calls st.altair_chart, which switches Altair's global data transformer under a lock of Streamlit's
    own: figures.to_spec is then the only code that switches it, under its own lock. Checked on the source."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    files = [root / "app.py", *(root / "app_pages").glob("*.py"), *(root / "core").rglob("*.py")]
    private = re.compile(r"^\s*(from streamlit\.(?!testing)|import streamlit\.)", re.M)
    assert [f.name for f in files if private.search(f.read_text())] == []
    assert [f.name for f in files if "st.altair_chart(" in f.read_text()] == []


def _resolved(spec: dict) -> dict:
    """The spec with every named dataset put in place of its name: two specs that draw the same rows compare
    equal whatever their datasets are called."""
    rows = spec.get("datasets", {})

    def walk(x):
        if isinstance(x, dict):
            if set(x) == {"name"} and x["name"] in rows:
                return {"values": rows[x["name"]]}
            return {k: walk(v) for k, v in x.items() if k != "datasets"}
        return [walk(v) for v in x] if isinstance(x, list) else x

    return walk(spec)


def test_a_figure_carries_arrow_datasets_and_downloads_the_same_rows():
    """figure() hands Streamlit each chart's data as Arrow bytes (as st.altair_chart sends a DataFrame), and
    the download's JSON turns them back into the rows Altair writes, so the PNG, the SVG and the chart on the
    page draw the same data: the KV-cache chart (a hybrid's state line, a NaN-free frame) and the roofline
    (layers sharing one frame)."""
    import json

    from app_pages import figures
    from core.accounting import roofline as rl
    from core.model.gpus import GPUS
    from core.model.presets import load_preset
    from core.view.charts import CONTEXTS, cache_chart, cache_vs_context, roofline_chart, style

    specs = {m: load_preset(m) for m in ("llama-3.1-70b", "qwen3-next-80b-a3b")}
    gpu = GPUS["H200"]
    cases = [
        (cache_chart, (cache_vs_context(specs, CONTEXTS, "bf16", 1), "H200 (141 GB)", 131.0, 4096, "kv")),
        (roofline_chart, (rl.roof(gpu), rl.roofline_points(rl.designs(load_preset), gpu, 4096, 8), "roof")),
    ]
    for builder, args in cases:
        spec = figures._figure(builder.__module__, builder.__qualname__, args, {}, False)
        assert spec["datasets"] and all(isinstance(v, bytes) for v in spec["datasets"].values())
        altair = json.loads(style(builder(*args)).to_json())
        assert _resolved(json.loads(figures._json(spec))) == _resolved(altair)


def test_a_frame_digest_tells_frames_apart():
    import pandas as pd

    from app_pages.figures import _frame_digest

    a = pd.DataFrame({"x": [1, 2], "y": ["p", "q"]})
    assert _frame_digest(a) == _frame_digest(a.copy())
    assert _frame_digest(a) != _frame_digest(a.assign(x=[1, 3]))
    assert _frame_digest(a) != _frame_digest(a.assign(y=["p", "r"]))
    assert _frame_digest(a) != _frame_digest(a.rename(columns={"y": "z"}))
