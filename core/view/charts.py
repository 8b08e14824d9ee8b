"""Chart builders (pure: data in, alt.Chart out) and offline export to PNG/SVG (vl-convert)."""

from __future__ import annotations

import altair as alt
import pandas as pd
from altair.utils import schemapi

from core.accounting import totals as acc
from core.model.specs import ModelSpec

# Heatmaps and sweeps are built from computed data of a known, bounded size; Altair's default limit of
# 5,000 rows would refuse a 104 x 104 causal map. Our largest chart is about 33,000 rows.
alt.data_transformers.disable_max_rows()

GIB = 2**30


def _memoize_altair_class_table() -> None:
    """Altair builds, on every `from_dict` (each shorthand encoding such as "gib:Q", each alt.value), a
    table of all its ~600 schema classes keyed by a JSON hash of each schema: 6 ms a time, over half of
    what building a chart costs. The table depends only on the set of classes, so build it once per set.
    A pure cache: `tests/test_charts_speed.py` checks that it equals Altair's own."""
    original = schemapi._FromDict.__init__
    if getattr(original, "memoized", False):
        return
    tables: dict[tuple, dict] = {}

    def init(self, wrapper_classes, /) -> None:
        key = tuple(wrapper_classes)
        if key not in tables:
            original(self, key)
            tables[key] = self.class_dict
        self.class_dict = tables[key]

    init.memoized = True
    init.original = original
    schemapi._FromDict.__init__ = init


_memoize_altair_class_table()
GPU_COLOR = "#a855f7"  # the memory line: purple, a colour no model line uses, visible on dark and light
MODEL_COLORS = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#06b6d4", "#ec4899"]
FONT = 14  # large enough to read when the chart is pasted into a slide
# 1, 4, ..., 256, 1K, 4K, ..., 1M (binary K and M, as context lengths are written)
TOKENS_LABEL = (
    "datum.value >= 1048576 ? datum.value / 1048576 + 'M' : "
    "datum.value >= 1024 ? datum.value / 1024 + 'K' : datum.value"
)


CONTEXTS = [2**k for k in range(21)]  # the context grid of every page: 1, 2, 4, ..., 1M tokens


def token_label(n: int) -> str:
    """1,000 -> "1,000"; 4,096 -> "4K"; 1,048,576 -> "1M" (exact multiples only)."""
    if n >= 2**20 and n % 2**20 == 0:
        return f"{n // 2**20}M"
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else f"{n:,}"


def context_x(field: str = "context") -> alt.X:
    """The log-2 context axis every context chart shares: 1, 4, ..., 1K, 4K, ..., 1M."""
    return alt.X(
        f"{field}:Q",
        scale=alt.Scale(type="log", base=2),
        axis=alt.Axis(title="context (tokens, log scale)", values=[4**k for k in range(11)], labelExpr=TOKENS_LABEL),
    )


def _grid(df: pd.DataFrame) -> tuple[int, int]:
    """(n, cell size in px) of a square query-by-position heatmap: at most ~560 px wide."""
    n = int(df["query"].max()) + 1
    return n, max(4, min(12, 560 // max(n, 1)))


def cache_vs_context(
    models: dict[str, ModelSpec], contexts: list[int], kv_dtype: str = "bf16", batch: int = 1, layout: str = "latent"
) -> pd.DataFrame:
    """Long table: model, design, context, part ("KV cache", or "fixed state" for models with linear-attention
    or Mamba layers: the same at every context), bytes and GiB (columns kv_bytes, kv_gib)."""
    rows = []
    for label, spec in models.items():
        state = acc.state_bytes(spec, batch)
        for n in contexts:
            b = acc.kv_cache_bytes(spec, n, batch, kv_dtype, layout)
            rows.append(
                {
                    "model": label,
                    "design": spec.design,
                    "context": n,
                    "part": "KV cache",
                    "kv_bytes": b,
                    "kv_gib": b / GIB,
                }
            )
            if state:
                rows.append(
                    {
                        "model": label,
                        "design": spec.design,
                        "context": n,
                        "part": "fixed state",
                        "kv_bytes": state,
                        "kv_gib": state / GIB,
                    }
                )
    return pd.DataFrame(rows)


def style(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """Fonts and legend placement for the page and for slides; apply once, to the outermost chart."""
    return chart.configure(  # one configure: each configure_* call copies the chart again
        axis=alt.AxisConfig(labelFontSize=FONT, titleFontSize=FONT),
        legend=alt.LegendConfig(labelFontSize=FONT, titleFontSize=FONT, labelLimit=400, orient="bottom", columns=2),
        title=alt.TitleConfig(fontSize=FONT + 2),
    )


def cache_chart(  # unstyled: wrap in style() before showing
    df: pd.DataFrame, gpu_label: str, gpu_gib: float, context: int, title: str = "KV cache vs context"
) -> alt.Chart:
    """Log-log KV cache (GiB) vs context, a line per model, the GPU's memory as a dashed rule and the
    chosen context as a vertical rule. Models with a fixed-size state (linear attention, Mamba) get a
    second, dotted line in their colour for the state, which does not grow."""
    x = context_x().scale(type="log", base=2, domain=[int(df.context.min()), int(df.context.max())])
    stateful = "part" in df and (df["part"] == "fixed state").any()
    y_title = "KV cache and fixed state (GiB, log scale)" if stateful else "KV cache (GiB, log scale)"
    y = alt.Y("kv_gib:Q", scale=alt.Scale(type="log"), axis=alt.Axis(title=y_title, format="~g"))
    encoding = dict(
        x=x,
        y=y,
        color=alt.Color("model:N", title=None, scale=alt.Scale(range=MODEL_COLORS)),
        tooltip=[
            "model",
            "design",
            *(["part"] if stateful else []),
            alt.Tooltip("context:Q", format=","),
            alt.Tooltip("kv_gib:Q", format=".3~f", title="GiB"),
        ],
    )
    if stateful:
        encoding["strokeDash"] = alt.StrokeDash(
            "part:N",
            title=None,
            scale=alt.Scale(domain=["KV cache", "fixed state"], range=[[1, 0], [2, 3]]),
        )
        encoding["detail"] = "part:N"
    lines = alt.Chart(df).mark_line(strokeWidth=3).encode(**encoding)
    gpu = pd.DataFrame({"gib": [gpu_gib], "label": [f"{gpu_label}: {gpu_gib:.1f} GiB"]})
    rule = alt.Chart(gpu).mark_rule(strokeDash=[8, 4], color=GPU_COLOR, strokeWidth=2).encode(y="gib:Q")
    text = (
        alt.Chart(gpu)
        .mark_text(align="left", dx=6, dy=-8, color=GPU_COLOR, fontSize=FONT, fontWeight="bold")
        .encode(y="gib:Q", x=alt.value(0), text="label:N")
    )
    now = alt.Chart(pd.DataFrame({"context": [context]})).mark_rule(color="#6b7280").encode(x="context:Q")
    return alt.layer(lines, rule, text, now).properties(width=720, height=420, title=title)


def to_png(chart: alt.TopLevelMixin | str, scale: float = 2.0) -> bytes:
    """PNG of a chart (or of its Vega-Lite JSON), rendered offline by vl-convert."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(chart if isinstance(chart, str) else chart.to_json(), scale=scale)


def to_svg(chart: alt.TopLevelMixin | str) -> str:
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart if isinstance(chart, str) else chart.to_json())


# ----------------------------------------------------------------------------- memory planner

PART_COLORS = {
    "weights": "#64748b",
    "KV cache": "#2563eb",
    "fixed state": "#7c3aed",
    "reserved": "#f59e0b",
    "free": "#10b981",
    "over capacity": "#dc2626",
}


def memory_parts(plans: dict) -> pd.DataFrame:
    """Long table, one bar per model and pipeline stage, for ONE GPU of that stage: weights, KV cache
    (this GPU's share of its requests), fixed state (linear attention, Mamba; only where there is some),
    reserved, free or over (GiB). `plans` maps a model label to a core.accounting.planner.Plan."""
    rows = []
    for label, p in plans.items():
        for k, st in enumerate(p.stages):
            a, b = st.layers
            name = label if len(p.stages) == 1 else f"{label}, stage {k + 1} (layers {a}-{b - 1})"
            n = p.requests_per_group
            parts = {"weights": st.weights.total, "KV cache": n * (st.request_bytes - st.state_bytes)}
            if st.state_bytes:
                parts["fixed state"] = n * st.state_bytes
            parts["reserved"] = p.reserved_bytes
            free = st.weights.total + p.reserved_bytes + st.kv_budget_bytes - sum(parts.values())
            parts["free" if free >= 0 else "over capacity"] = abs(free)
            for order, (part, v) in enumerate(parts.items()):
                rows.append({"model": name, "part": part, "order": order, "bytes": v, "gib": v / GIB})
    return pd.DataFrame(rows)


def memory_chart(df: pd.DataFrame, usable_gib: float, label: str, title: str = "Memory on the GPUs") -> alt.Chart:
    """Horizontal stacked bars per model; the usable memory as a dashed rule."""
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("model:N", title=None, sort=None, axis=alt.Axis(labelLimit=300)),
            x=alt.X("sum(gib):Q", title="GiB", stack="zero"),
            color=alt.Color(
                "part:N",
                title=None,
                scale=alt.Scale(domain=list(PART_COLORS), range=list(PART_COLORS.values())),
                legend=alt.Legend(orient="top", columns=5),
            ),
            order=alt.Order("order:Q"),
            tooltip=["model", "part", alt.Tooltip("gib:Q", format=",.2f", title="GiB")],
        )
    )
    cap = pd.DataFrame({"gib": [usable_gib], "label": [label]})
    rule = alt.Chart(cap).mark_rule(strokeDash=[8, 4], color=GPU_COLOR, strokeWidth=2).encode(x="gib:Q")
    text = (
        alt.Chart(cap)
        .mark_text(align="right", dx=-6, dy=-6, color=GPU_COLOR, fontSize=FONT, fontWeight="bold", baseline="bottom")
        .encode(x="gib:Q", y=alt.value(0), text="label:N")
    )
    return alt.layer(bars, rule, text).properties(width=720, height=alt.Step(48), title=title)


def breakdown_table(specs: dict[str, ModelSpec], context: int, batch: int, kv_dtype: str, layout: str) -> pd.DataFrame:
    """Cache by layer type and tensor, per model (GiB), then the fixed-size state (linear attention, Mamba),
    whose rows do not depend on the context."""
    rows = []
    for label, spec in specs.items():
        terms = acc.kv_cache(spec, context, batch, kv_dtype, layout).terms + acc.state(spec, batch).terms
        for t in terms:
            rows.append(
                {
                    "model": label,
                    "layer type": t.layer_kind,
                    "tensor": t.tensor,
                    "part": f"{t.layer_kind} {t.tensor}",
                    "layers": t.n_layers,
                    "rows per layer": t.rows,
                    "bytes per row": t.bytes_per_row,
                    "bytes": t.bytes,
                    "gib": t.bytes / GIB,
                }
            )
    return pd.DataFrame(rows)


def breakdown_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Share of each layer type and tensor in each model's cache (normalised bars)."""
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("model:N", title=None, sort=None, axis=alt.Axis(labelLimit=300)),
            x=alt.X("sum(bytes):Q", stack="normalize", title="share of what is kept", axis=alt.Axis(format="%")),
            color=alt.Color("part:N", title=None, scale=alt.Scale(scheme="tableau20")),
            tooltip=[
                "model",
                "part",
                "layers",
                alt.Tooltip("rows per layer:Q", format=","),
                alt.Tooltip("gib:Q", format=",.3f", title="GiB"),
            ],
        )
        .properties(width=720, height=alt.Step(40), title=title)
    )


def review_card(
    title: str, inputs: list[str], table: pd.DataFrame, chart: alt.TopLevelMixin, footer: str
) -> alt.TopLevelMixin:
    """One image for a slide: title, the inputs, the comparison table (as text), the main chart, and a
    footer with the app version and date. Render with to_png."""

    def text_block(lines: list[str], size: int, weight: str = "normal", color: str = "#111827") -> alt.Chart:
        df = pd.DataFrame({"line": lines, "i": range(len(lines))})
        return (
            alt.Chart(df)
            .mark_text(align="left", baseline="top", fontSize=size, fontWeight=weight, color=color)
            .encode(x=alt.value(0), y=alt.Y("i:O", axis=None), text="line:N")
            .properties(width=900, height=(size + 8) * len(lines))
        )

    cols = list(table.columns)
    cells = []
    for r, row in enumerate([dict(zip(cols, cols, strict=True)), *table.astype(str).to_dict("records")]):
        for c, col in enumerate(cols):
            cells.append({"r": r, "c": c, "text": str(row[col]), "head": r == 0})
    base = alt.Chart(pd.DataFrame(cells)).encode(
        x=alt.X("c:O", axis=None, scale=alt.Scale(align=0)), y=alt.Y("r:O", axis=None), text="text:N"
    )
    grid = alt.layer(
        base.transform_filter("datum.head").mark_text(align="left", baseline="middle", fontSize=13, fontWeight="bold"),
        base.transform_filter("!datum.head").mark_text(align="left", baseline="middle", fontSize=13),
    ).properties(width=min(1100, 150 * len(cols)), height=24 * (len(table) + 1))
    return (
        alt.vconcat(
            text_block([title], 22, "bold"),
            text_block(inputs, 13, color="#374151"),
            grid,
            chart,
            text_block([footer], 11, color="#6b7280"),
            spacing=14,
        )
        .configure_view(stroke=None)
        .configure_axis(labelFontSize=FONT, titleFontSize=FONT)
        .configure_legend(labelFontSize=FONT, labelLimit=400, orient="bottom", columns=3)
        .configure_title(fontSize=FONT + 2)
        .properties(background="white", padding=24)
    )


# ----------------------------------------------------------------------------- inside MLA


def heatmap_frame(probs, head: int, max_side: int = 128, block: int = 1) -> pd.DataFrame:
    """Long table (query, key, p) of one head's attention probabilities (H, T, S) array. Longer maps
    are averaged over square blocks so at most max_side x max_side cells reach the browser (query
    and key then index blocks: the first position of each block). `block`: the maps were already
    averaged over blocks of that many positions (core.lab.inside.block_average)."""
    p = probs[head]
    t, s = p.shape
    if block > 1:
        q_idx = [i * block for i in range(t) for _ in range(s)]
        k_idx = [j * block for _ in range(t) for j in range(s)]
        return pd.DataFrame({"query": q_idx, "key": k_idx, "p": [float(v) for v in p.reshape(-1)]})
    f = -(-max(t, s) // max_side)
    if f > 1:
        import numpy as np

        tt, ss = -(-t // f) * f, -(-s // f) * f
        padded = np.zeros((tt, ss), dtype=p.dtype)
        padded[:t, :s] = p
        p = padded.reshape(tt // f, f, ss // f, f).mean(axis=(1, 3))
        t, s = p.shape
        q_idx = [i * f for i in range(t) for _ in range(s)]
        k_idx = [j * f for _ in range(t) for j in range(s)]
        return pd.DataFrame({"query": q_idx, "key": k_idx, "p": [float(v) for v in p.reshape(-1)]})
    q_idx, k_idx = [i for i in range(t) for _ in range(s)], [j for _ in range(t) for j in range(s)]
    return pd.DataFrame({"query": q_idx, "key": k_idx, "p": [float(v) for v in p.reshape(-1)]})


def attention_heatmap(df: pd.DataFrame, title: str) -> alt.Chart:
    """Query x key heatmap of attention probabilities (causal: the upper triangle is zero)."""
    n, size = _grid(df)
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("key:O", title="key position (attended token)", axis=alt.Axis(labelAngle=0, values=_ticks(n))),
            y=alt.Y("query:O", title="query position", axis=alt.Axis(values=_ticks(n))),
            color=alt.Color(
                "p:Q", title="probability", scale=alt.Scale(type="sqrt", domain=[0, 1], range=["#ffffff", "#1e3a8a"])
            ),
            tooltip=["query", "key", alt.Tooltip("p:Q", format=".3f")],
        )
        .properties(width=size * n, height=size * n, title=title)
    )


def _ticks(n: int) -> list[int]:
    step = max(1, n // 8)
    return list(range(0, n, step))


def flops_chart(df: pd.DataFrame, title: str) -> alt.TopLevelMixin:
    """Measured FLOPs per design, one panel per step (prefill, decode), each on its own linear scale."""
    panels = []
    for step, color in zip(df["step"].unique(), ("#2563eb", "#f59e0b"), strict=False):
        panels.append(
            alt.Chart(df[df["step"] == step])
            .mark_bar(color=color)
            .encode(
                x=alt.X("design:N", title=None, sort=None, axis=alt.Axis(labelAngle=0)),
                y=alt.Y("flops:Q", title="FLOPs (measured)", axis=alt.Axis(format="~s")),
                tooltip=["design", "step", alt.Tooltip("flops:Q", format=",")],
            )
            .properties(width=330, height=300, title=step)
        )
    return alt.hconcat(*panels).properties(title=title)


# ----------------------------------------------------------------------------- latent rank


def _rank_rule(rank: int) -> alt.Chart:
    return (
        alt.Chart(pd.DataFrame({"rank": [rank], "label": [f"d_c = {rank}"]}))
        .mark_rule(color=GPU_COLOR, strokeDash=[6, 4], strokeWidth=2)
        .encode(x="rank:Q")
    )


def spectra_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Singular values (log) vs index, one line per matrix (columns: index, value, matrix)."""
    return (
        alt.Chart(df)
        .mark_line(strokeWidth=2.5)
        .encode(
            x=alt.X("index:Q", title="singular direction (largest first)"),
            y=alt.Y("value:Q", title="singular value (log scale)", scale=alt.Scale(type="log")),
            color=alt.Color("matrix:N", title=None, scale=alt.Scale(range=MODEL_COLORS)),
            tooltip=["matrix", "index", alt.Tooltip("value:Q", format=".4g")],
        )
        .properties(width=720, height=320, title=title)
    )


def energy_chart(df: pd.DataFrame, rank: int, title: str) -> alt.Chart:
    """Cumulative energy share vs rank, one line per matrix, the chosen rank marked."""
    lines = (
        alt.Chart(df)
        .mark_line(strokeWidth=2.5)
        .encode(
            x=alt.X("rank:Q", title="latent rank d_c (directions kept)"),
            y=alt.Y("energy:Q", title="energy captured", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("matrix:N", title=None, scale=alt.Scale(range=MODEL_COLORS)),
            tooltip=["matrix", "rank", alt.Tooltip("energy:Q", format=".1%")],
        )
    )
    return alt.layer(lines, _rank_rule(rank)).properties(width=720, height=320, title=title)


ERROR_LABELS = {
    "k_error": "keys",
    "v_error": "values",
    "scores_error": "attention scores",
    "probs_tv": "attention probabilities (TV)",
    "out_error": "layer output",
}


def errors_chart(sweep: pd.DataFrame, rank: int, title: str) -> alt.Chart:
    """Relative errors of the converted layer vs rank (K, V, scores, probabilities, output)."""
    long = sweep.melt(id_vars=["rank"], value_vars=list(ERROR_LABELS), var_name="what", value_name="error")
    long["what"] = long["what"].map(ERROR_LABELS)
    lines = (
        alt.Chart(long)
        .mark_line(point=True, strokeWidth=2.5)
        .encode(
            x=alt.X("rank:Q", title="latent rank d_c"),
            y=alt.Y("error:Q", title="relative error (TV for probabilities)"),
            color=alt.Color(
                "what:N", title=None, sort=list(ERROR_LABELS.values()), scale=alt.Scale(range=MODEL_COLORS)
            ),
            tooltip=["what", "rank", alt.Tooltip("error:Q", format=".4f")],
        )
    )
    return alt.layer(lines, _rank_rule(rank)).properties(width=720, height=340, title=title)


# ----------------------------------------------------------------------------- sparse and compressed

HOW_COLORS = {
    "raw (window)": "#1d4ed8",
    "in a selected entry": "#10b981",
    "in an entry not selected": "#e5e7eb",
}


def selection_heatmap(df: pd.DataFrame, title: str) -> alt.Chart:
    """Query x key: the indexer's score in grey, the top-k tokens each query keeps in blue."""
    n, size = _grid(df)
    x = alt.X("key:O", title="key position", axis=alt.Axis(labelAngle=0, values=_ticks(n)))
    y = alt.Y("query:O", title="query position", axis=alt.Axis(values=_ticks(n)))
    base = alt.Chart(df).encode(x=x, y=y, tooltip=["query", "key", alt.Tooltip("score:Q", format=".3f"), "selected"])
    scores = base.mark_rect().encode(
        color=alt.Color("score:Q", title="indexer score", scale=alt.Scale(range=["#f9fafb", "#9ca3af"]))
    )
    chosen = base.transform_filter("datum.selected").mark_rect(color="#1d4ed8")
    return alt.layer(scores, chosen).properties(width=size * n, height=size * n, title=title)


def visibility_heatmap(df: pd.DataFrame, title: str) -> alt.Chart:
    """Query x original token: seen raw, through a selected entry, or compressed but not selected."""
    n, size = _grid(df)
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("token:O", title="original token", axis=alt.Axis(labelAngle=0, values=_ticks(n))),
            y=alt.Y("query:O", title="query position", axis=alt.Axis(values=_ticks(n))),
            color=alt.Color(
                "how:N", title=None, scale=alt.Scale(domain=list(HOW_COLORS), range=list(HOW_COLORS.values()))
            ),
            tooltip=["query", "token", "how"],
        )
        .properties(width=size * n, height=size * n, title=title)
    )


def parts_vs_context(df: pd.DataFrame, title: str) -> alt.Chart:
    """FLOPs per decoded token by part vs context (log-log), one line style per model. Zero values (no
    indexer yet below one compressed entry) are left out: a log axis has no zero."""
    return (
        alt.Chart(df[df["flops"] > 0])
        .mark_line(strokeWidth=2.5)
        .encode(
            x=context_x(),
            y=alt.Y(
                "flops:Q",
                title="FLOPs per decoded token (log scale)",
                scale=alt.Scale(type="log"),
                axis=alt.Axis(format="~s"),
            ),
            color=alt.Color("part:N", title=None, scale=alt.Scale(range=MODEL_COLORS)),
            strokeDash=alt.StrokeDash("model:N", title=None),
            tooltip=["model", "part", alt.Tooltip("context:Q", format=","), alt.Tooltip("flops:Q", format=".3s")],
        )
        .properties(width=720, height=400, title=title)
    )


# ----------------------------------------------------------------------------- quantized caches


def pareto_frontier(df: pd.DataFrame, x: str, y: str) -> pd.Series:
    """True for the rows no other row beats on both x (smaller) and y (smaller)."""
    keep = []
    for _, r in df.iterrows():
        beaten = ((df[x] <= r[x]) & (df[y] <= r[y]) & ((df[x] < r[x]) | (df[y] < r[y]))).any()
        keep.append(not beaten)
    return pd.Series(keep, index=df.index)


def pareto_chart(df: pd.DataFrame, x: str, y: str, title: str) -> alt.Chart:
    """Bytes per token vs error, one labelled point per scheme, the Pareto frontier as a line."""
    front_mask = pareto_frontier(df, x, y)
    d = df.assign(frontier=front_mask, kind=front_mask.map({True: "on the Pareto frontier", False: "dominated"}))
    base = alt.Chart(d).encode(
        x=alt.X(f"{x}:Q", title=f"{x} (log scale)", scale=alt.Scale(type="log", nice=False, padding=20)),
        y=alt.Y(f"{y}:Q", title=y, axis=alt.Axis(format="%")),
    )
    pts = base.mark_circle(size=90).encode(
        color=alt.Color(
            "kind:N",
            title=None,
            scale=alt.Scale(domain=["on the Pareto frontier", "dominated"], range=["#2563eb", "#9ca3af"]),
        ),
        tooltip=["scheme", alt.Tooltip(f"{x}:Q", format=",.1f"), alt.Tooltip(f"{y}:Q", format=".2%")],
    )
    labels = base.mark_text(align="left", dx=7, dy=-6, fontSize=12).encode(text="scheme:N")
    front = base.transform_filter("datum.frontier").mark_line(color="#2563eb", strokeDash=[4, 3])
    return alt.layer(front, pts, labels).properties(width=720, height=420, title=title)


def bias_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Estimated / true inner products (ratio) by bits and estimator; 1 is unbiased."""
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("bits:O", title="bits per coordinate (codebook)"),
            xOffset="estimator:N",
            y=alt.Y("ratio:Q", title="estimate / truth (least-squares slope)", scale=alt.Scale(domain=[0, 1.1])),
            color=alt.Color("estimator:N", title=None, scale=alt.Scale(range=["#f59e0b", "#2563eb"])),
            tooltip=[
                "bits",
                "estimator",
                alt.Tooltip("ratio:Q", format=".3f"),
                alt.Tooltip("relative error:Q", format=".3f"),
            ],
        )
    )
    one = alt.Chart(pd.DataFrame({"y": [1.0]})).mark_rule(color="#111827", strokeDash=[6, 4]).encode(y="y:Q")
    return alt.layer(bars, one).properties(width=480, height=320, title=title)


def rotation_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Per-channel RMS of the keys, channels sorted by RMS, before and after a random rotation."""
    d = df.copy()
    d["order"] = d.groupby("when")["rms"].rank(ascending=False, method="first")
    return (
        alt.Chart(d)
        .mark_line(strokeWidth=2.5)
        .encode(
            x=alt.X("order:Q", title="channels, sorted by RMS"),
            y=alt.Y("rms:Q", title="channel RMS"),
            color=alt.Color("when:N", title=None, scale=alt.Scale(range=["#2563eb", "#ef4444"])),
            tooltip=["when", "channel", alt.Tooltip("rms:Q", format=".3f")],
        )
        .properties(width=720, height=320, title=title)
    )


# ----------------------------------------------------------------------------- compute and roofline


def roofline_chart(roof: pd.DataFrame, points: pd.DataFrame, title: str) -> alt.Chart:
    """Log-log roofline: the roof of one GPU, and each design's decode (whole step: filled; attention core
    alone: hollow) at its arithmetic intensity."""
    x = alt.X("intensity:Q", title="arithmetic intensity (FLOP per byte, log scale)", scale=alt.Scale(type="log"))
    y = alt.Y("attainable_tflops:Q", title="attainable TFLOP/s (log scale)", scale=alt.Scale(type="log"))
    line = alt.Chart(roof).mark_line(color="#111827", strokeWidth=2).encode(x=x, y=y)
    pts = (
        alt.Chart(points)
        .mark_point(size=140, strokeWidth=2.5)
        .encode(
            x=x,
            y=y,
            color=alt.Color("design:N", title=None, scale=alt.Scale(range=MODEL_COLORS + ["#84cc16"])),
            shape=alt.Shape("what:N", title=None),
            fill=alt.condition("datum.what == 'whole decode step'", alt.Color("design:N"), alt.value("transparent")),
            tooltip=[
                "design",
                "what",
                alt.Tooltip("intensity:Q", format=".1f"),
                "bound",
                alt.Tooltip("step_ms:Q", format=".2f", title="step ms"),
                alt.Tooltip("tokens_per_s:Q", format=",.0f", title="tokens/s"),
            ],
        )
    )
    return alt.layer(line, pts).properties(width=720, height=440, title=title)


def per_token_chart(df: pd.DataFrame, quantity: str, title: str) -> alt.Chart:
    """One quantity per decoded token vs context (log-log), a line per design."""
    d = df[(df["quantity"] == quantity) & (df["value"] > 0)]
    unit = "bytes" if "bytes" in quantity else "FLOPs"
    return (
        alt.Chart(d)
        .mark_line(strokeWidth=2.5)
        .encode(
            x=context_x(),
            y=alt.Y(
                "value:Q",
                title=f"{quantity} ({unit}, log scale)",
                scale=alt.Scale(type="log"),
                axis=alt.Axis(format="~s"),
            ),
            color=alt.Color("design:N", title=None, scale=alt.Scale(range=MODEL_COLORS + ["#84cc16"])),
            tooltip=["design", alt.Tooltip("context:Q", format=","), alt.Tooltip("value:Q", format=".3s")],
        )
        .properties(width=720, height=400, title=title)
    )


# ----------------------------------------------------------------------------- needle in a haystack


def needle_heatmap(df: pd.DataFrame, title: str) -> alt.Chart:
    """Context length x needle depth -> retrieval accuracy, the classic picture."""
    base = alt.Chart(df).encode(
        x=alt.X("depth:O", title="needle depth (0: start of the context, 1: just before the question)"),
        y=alt.Y("length:O", title="context length (tokens)", sort="descending"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color(
            "accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1], range=["#dc2626", "#fde68a", "#16a34a"])
        ),
        tooltip=["length", "depth", alt.Tooltip("accuracy:Q", format=".0%"), alt.Tooltip("cache_bytes:Q", format=",")],
    )
    text = base.mark_text(fontSize=FONT, color="#111827").encode(text=alt.Text("accuracy:Q", format=".0%"))
    return alt.layer(rect, text).properties(width=520, height=300, title=title)


def needle_summary_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Accuracy vs cache bytes per sequence, a line through the strengths of each method."""
    base = alt.Chart(df).encode(
        x=alt.X("cache_bytes:Q", title="cache bytes per sequence (log scale)", scale=alt.Scale(type="log")),
        y=alt.Y("accuracy:Q", title="retrieval accuracy", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1.02])),
        color=alt.Color("method:N", title=None, scale=alt.Scale(range=MODEL_COLORS + ["#84cc16", "#64748b"])),
        tooltip=["label", alt.Tooltip("cache_bytes:Q", format=","), alt.Tooltip("accuracy:Q", format=".0%")],
    )
    return alt.layer(base.mark_line(strokeWidth=2.5), base.mark_point(size=70, filled=True)).properties(
        width=720, height=420, title=title
    )


# ----------------------------------------------------------------------------- hybrid models

HOLDS_COLORS = {"attention (GQA)": "#2563eb", "Gated DeltaNet": "#7c3aed", "Mamba-2": "#10b981"}


def held_chart(
    df: pd.DataFrame, value: str, measured: str, title: str, y_title: str, axis_format: str = "~g"
) -> alt.Chart:
    """Log-log: what each layer holds (or computes) vs context; the accounting as a line, the measurement
    as points on it (core.lab.hybrid.run's table)."""
    x = context_x().scale(type="log", base=2, domain=[1, int(df.context.max())])
    color = alt.Color(
        "layer:N", title=None, scale=alt.Scale(domain=list(HOLDS_COLORS), range=list(HOLDS_COLORS.values()))
    )
    y = alt.Y(f"{value}:Q", scale=alt.Scale(type="log"), axis=alt.Axis(title=y_title, format=axis_format))
    tip = ["layer", "holds", alt.Tooltip("context:Q", format=","), alt.Tooltip(f"{measured}:Q", format=",.6~g")]
    line = alt.Chart(df).mark_line(strokeWidth=3).encode(x=x, y=y, color=color, tooltip=tip)
    points = (
        alt.Chart(df)
        .mark_point(size=90, filled=True, stroke="white", strokeWidth=1)
        .encode(x=x, y=alt.Y(f"{measured}:Q"), color=color, tooltip=tip)
    )
    return alt.layer(line, points).properties(width=720, height=340, title=title)
