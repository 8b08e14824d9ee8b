"""The Overview page renders without exceptions at defaults, at every widget's extremes, and from
shared links (good and hostile); the numbers it shows follow the widgets."""

import pytest
from apptest import assert_clean, open_page, unescaped
from streamlit.testing.v1 import AppTest

from core.model.dtypes import CACHE_DTYPES
from core.model.gpus import GPUS


def run(query: dict | None = None) -> AppTest:
    return open_page("app_pages/overview.py", query)


ok = assert_clean


def test_defaults_render_chart_table_and_claims():
    at = run()
    ok(at)
    assert at.title[0].value.startswith("Why the KV cache")
    assert len(at.get("vega_lite_chart")) == 1
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 4  # four default models
    labels = [m.label for m in at.metric]
    assert "V4-Pro KV cache / V3.2" in labels and "V4-Pro FLOPs / V3.2" in labels
    # bf16: 8.7x smaller cache (vLLM's figure); production: 9.5x (the paper's)
    values = [m.value for m in at.metric]
    assert values[0] == "11.5%" and values[2] == "10.5%"


@pytest.mark.parametrize("context", [1, 2**20])
def test_context_slider_extremes(context):
    at = run()
    at.select_slider(key="overview.context").set_value(context).run()
    ok(at)
    assert at.query_params["context"] == str(context)


def test_every_gpu_and_dtype_and_batch_extremes():
    at = run()
    for gpu in GPUS:
        at.selectbox(key="overview.gpu").set_value(gpu).run()
        ok(at)
    for kv in CACHE_DTYPES:
        at.selectbox(key="overview.kv").set_value(kv).run()
        ok(at)
    for b in (1, 4096):
        at.number_input(key="overview.batch").set_value(b).run()
        ok(at)


def test_cache_column_follows_context():
    at = run()
    col = [c for c in at.dataframe[0].value.columns if c.startswith("KV cache at")][0]
    assert "128K" in col
    at.select_slider(key="overview.context").set_value(1024).run()
    col = [c for c in at.dataframe[0].value.columns if c.startswith("KV cache at")][0]
    assert "1K" in col
    llama = at.dataframe[0].value.set_index("model").loc["llama-3.1-70b", col]
    assert llama == "320 MiB"  # 327,680 B/token x 1,024 tokens


def test_every_preset_can_be_shown():
    from core.model.presets import preset_names

    names = preset_names()
    for i in range(0, len(names), 6):
        at = run({"models": ",".join(names[i : i + 6]), "context": "1048576"})
        ok(at)


def test_shared_link_reproduces_view():
    at = run({"models": "gpt2,deepseek-v4-flash", "context": "4096", "gpu": "RTX 4090", "kv": "int4", "batch": "8"})
    ok(at)
    assert at.multiselect(key="overview.models").value == ["gpt2", "deepseek-v4-flash"]
    assert at.select_slider(key="overview.context").value == 4096
    assert at.selectbox(key="overview.gpu").value == "RTX 4090"
    assert at.selectbox(key="overview.kv").value == "int4"
    assert at.number_input(key="overview.batch").value == 8


def test_hostile_link_gives_notices_not_errors():
    at = run({"models": "nope,<script>", "context": "1e99", "gpu": "X" * 500, "batch": "-3", "zzz": "1"})
    assert not at.exception
    warnings = " ".join(unescaped(w.value) for w in at.warning)
    assert "unknown link parameter" in warnings and "context" in warnings and "GPU" in warnings
    assert len(at.get("vega_lite_chart")) == 1
