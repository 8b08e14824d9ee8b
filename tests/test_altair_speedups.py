"""core.view.altair_speedups: the installed Altair still has every internal the speed-ups rely on (this fails on an
upgrade that breaks them), apply() installs them and remove() gives Altair its own back, apply() changes nothing
where an internal is missing, the memoised class table equals Altair's own, the kept class listing follows new
classes, and real charts' specs are the same with and without the speed-ups."""

import json
import subprocess
import sys
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import pytest
from altair.utils import schemapi

from core.accounting import planner as pl
from core.accounting import roofline as rl
from core.model.gpus import GPUS
from core.model.presets import load_preset
from core.view import altair_speedups
from core.view.attention_charts import attention_heatmap, errors_chart
from core.view.compute_charts import flops_chart, roofline_chart
from core.view.frames import CONTEXTS, breakdown_table, cache_vs_context, heatmap_frame, memory_parts
from core.view.memory_charts import breakdown_chart, cache_chart, memory_chart
from core.view.quality_charts import needle_heatmap, pareto_chart
from core.view.review import DEFAULT_CANDIDATES, review
from core.view.sheet_chart import sheet_chart
from core.view.theme import style

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pristine():
    """Altair's own internals for the test (an AppTest earlier in this process ran app.py, which applies the
    speed-ups), and the state found put back after it."""
    was = altair_speedups.applied()
    altair_speedups.remove()
    yield
    altair_speedups.remove()
    if was:
        assert altair_speedups.apply()


def test_the_installed_altair_has_what_the_speedups_rely_on():
    """Fails when an Altair upgrade renames, removes or reshapes an internal the speed-ups patch: then apply()
    declines and the app runs at Altair's own speed, so look again at core/view/altair_speedups.py (adapt it,
    or delete it if Altair is now fast on its own)."""
    assert altair_speedups.missing() == []


def test_apply_installs_and_remove_restores(pristine):
    own = (schemapi._FromDict.__init__, schemapi._deep_copy, schemapi.SchemaBase.__dict__["_default_wrapper_classes"])
    assert not altair_speedups.applied()
    assert altair_speedups.apply() and altair_speedups.applied()
    assert schemapi._FromDict.__init__ is not own[0] and schemapi._deep_copy is not own[1]
    assert altair_speedups.apply()  # a second call only answers
    altair_speedups.remove()
    assert not altair_speedups.applied()
    assert (schemapi._FromDict.__init__, schemapi._deep_copy) == own[:2]
    assert schemapi.SchemaBase.__dict__["_default_wrapper_classes"] is own[2]
    assert "__init_subclass__" not in schemapi.SchemaBase.__dict__


@pytest.mark.parametrize("gone", ["_deep_copy", "_subclasses", "_FromDict"])
def test_apply_does_nothing_where_an_internal_is_missing(pristine, monkeypatch, gone):
    monkeypatch.delattr(schemapi, gone)
    init, copy = schemapi.__dict__.get("_FromDict"), schemapi.__dict__.get("_deep_copy")
    assert altair_speedups.missing()
    assert altair_speedups.apply() is False and not altair_speedups.applied()
    assert (schemapi.__dict__.get("_FromDict"), schemapi.__dict__.get("_deep_copy")) == (init, copy)
    if init is not None:
        assert init.__init__.__qualname__ == "_FromDict.__init__"  # Altair's own, not the memoised one


def test_apply_does_nothing_where_an_internal_has_another_shape(pristine, monkeypatch):
    monkeypatch.setattr(schemapi, "_deep_copy", lambda obj: obj)  # a different signature
    assert any("_deep_copy" in m for m in altair_speedups.missing())
    assert altair_speedups.apply() is False and not altair_speedups.applied()


def test_apply_backs_out_when_a_spec_would_change(pristine, monkeypatch):
    """The self-check: if the patched Altair gave a different spec, apply() removes what it installed."""
    probes = iter([{"a": 1}, {"a": 2}])
    monkeypatch.setattr(altair_speedups, "_probe", lambda: next(probes))
    own = schemapi._deep_copy
    assert altair_speedups.apply() is False and not altair_speedups.applied()
    assert schemapi._deep_copy is own


def test_memoized_class_table_equals_altairs_own(pristine):
    classes = list(schemapi._subclasses(schemapi.SchemaBase))
    fresh = schemapi._FromDict(classes)  # Altair's own
    assert altair_speedups.apply()
    cached = schemapi._FromDict(classes)
    assert dict(cached.class_dict) == dict(fresh.class_dict)
    assert schemapi._FromDict(classes).class_dict is cached.class_dict  # built once


LISTING = """
import sys
sys.path.insert(0, {root!r})
import altair as alt
from altair.utils import schemapi
from core.view import altair_speedups
assert altair_speedups.apply()
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


def real_charts() -> dict[str, alt.TopLevelMixin]:
    """Charts of the pages, built from the pages' kind of data: layers, labels, conditions, concats, a card."""
    gpu = GPUS["H200"]
    specs = {m: load_preset(m) for m in ("llama-3.1-70b", "deepseek-v3", "qwen3-next-80b-a3b")}
    hw = pl.Hardware("H200", gpu.memory_bytes, 4.8e12, n_gpus=8)
    plans = {m: pl.plan(s, hw, 131_072) for m, s in specs.items()}
    kv = cache_chart(cache_vs_context(specs, CONTEXTS, "bf16", 1), "H200", 131.0, 4096, "kv")
    steps = ["prefill", "prefill", "decode", "decode"]
    flops = pd.DataFrame({"design": ["MHA", "GQA", "MHA", "GQA"], "step": steps, "flops": [9, 5, 3, 2]})
    quant = pd.DataFrame(
        {"scheme": ["fp8", "int4", "int2", "nf4"], "bytes": [64, 32, 16, 34], "error": [0.01, 0.05, 0.3, 0.04]}
    )
    errors = ("k_error", "v_error", "scores_error", "probs_tv", "out_error")
    sweep = pd.DataFrame({"rank": [8, 16], **{c: [0.5, 0.2] for c in errors}})
    needle = pd.DataFrame(
        {
            "length": [64, 64, 128, 128],
            "depth": [0, 1, 0, 1],
            "accuracy": [1, 0.5, 0.9, 0.2],
            "cache_bytes": [1, 2, 3, 4],
        }
    )
    probs = np.tril(np.ones((1, 12, 12))) / np.arange(1, 13)[None, :, None]  # uniform causal attention
    return {
        "kv": kv,
        "roofline": roofline_chart(rl.roof(gpu), rl.roofline_points(rl.designs(load_preset), gpu, 4096, 8), "roof"),
        "memory": memory_chart(memory_parts(plans), 120.0, "usable", "memory"),
        "breakdown": breakdown_chart(breakdown_table(specs, 4096, 1, "bf16", "latent"), "where"),
        "flops": flops_chart(flops, "flops"),
        "pareto": pareto_chart(quant, "bytes", "error", "pareto"),
        "errors": errors_chart(sweep, 16, "errors"),
        "needle": needle_heatmap(needle, "needle"),
        "heatmap": attention_heatmap(heatmap_frame(probs, 0), "head 0"),
        "sheet": sheet_chart(
            review(DEFAULT_CANDIDATES, {"deepseek-v3": load_preset("deepseek-v3")}, 4096, 90, "d", "v")
        ),
    }


def specs() -> str:
    out = {}
    for name, chart in real_charts().items():
        chart = chart if name == "sheet" else style(chart)  # the sheet carries its own configuration
        out[name] = chart.to_dict()
    return json.dumps(out, sort_keys=True)


def test_real_charts_specs_are_the_same_with_and_without_the_speedups(pristine):
    """Ten builders of the pages, styled as the pages show them: Altair's own spec, the spec with the speed-ups,
    and with the speed-ups and debug mode off (as the served app builds them) are one and the same."""
    own = specs()
    assert altair_speedups.apply()
    fast = specs()
    with schemapi.debug_mode(False):
        served = specs()
    assert own == fast == served and len(own) > 20_000
