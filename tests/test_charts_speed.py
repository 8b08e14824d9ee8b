"""Serving charts cheaply (app_pages/figures.py): pages skip the schema check only outside tests, a figure's
datasets travel as Arrow bytes and download as the same rows, and a frame's cache digest tells frames apart.
(The Altair speed-ups themselves: tests/test_altair_speedups.py.)"""


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
    from core.view.compute_charts import roofline_chart
    from core.view.frames import CONTEXTS, cache_vs_context
    from core.view.memory_charts import cache_chart
    from core.view.theme import style

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
