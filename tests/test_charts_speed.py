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


SPEC = """
import json, sys
sys.path.insert(0, {root!r})
if {patched}:
    import core.view.charts as ch
else:
    import importlib, types
import altair as alt, pandas as pd
df = pd.DataFrame({{"x": [1, 2, 3], "y": [3, 1, 2], "m": ["a", "b", "a"]}})
c = alt.Chart(df).mark_line().encode(x="x:Q", y=alt.Y("y:Q", title="y"), color="m:N", tooltip=["x", "y"])
c = alt.layer(c, alt.Chart(df).mark_rule().encode(x=alt.value(3)))
print(json.dumps(c.to_dict(), sort_keys=True))
"""


def test_a_chart_spec_is_the_same_with_and_without_the_cache():
    out = [
        subprocess.run(
            [sys.executable, "-c", SPEC.format(root=str(ROOT), patched=p)], capture_output=True, text=True, check=True
        ).stdout
        for p in (True, False)
    ]
    assert out[0] == out[1] and len(out[0]) > 200


def test_pages_skip_the_schema_check_only_outside_tests():
    """Under test every chart is validated (conftest sets KVLAB_VALIDATE_CHARTS); a served page passes a view
    of the same chart that asks Altair not to validate, and whose spec is identical."""
    import altair as alt
    import pandas as pd

    from pages import common

    assert common.VALIDATE_CHARTS
    c = alt.Chart(pd.DataFrame({"x": [1, 2]})).mark_point().encode(x="x:Q")
    assert common._Unvalidated(c).to_dict() == c.to_dict()

    class Spy:
        def to_dict(self, *args, **kwargs):
            return kwargs

    assert common._Unvalidated(Spy()).to_dict(format="vega-lite") == {"format": "vega-lite", "validate": False}
