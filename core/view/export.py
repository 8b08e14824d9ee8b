"""A chart (or its Vega-Lite JSON) as a PNG, SVG or PDF file's content, rendered offline by vl-convert."""

from __future__ import annotations

import altair as alt


def to_png(chart: alt.TopLevelMixin | str, scale: float = 2.0) -> bytes:
    """PNG of a chart (or of its Vega-Lite JSON), rendered offline by vl-convert."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(chart if isinstance(chart, str) else chart.to_json(), scale=scale)


def to_svg(chart: alt.TopLevelMixin | str) -> str:
    """SVG of a chart (or of its Vega-Lite JSON), rendered offline by vl-convert."""
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart if isinstance(chart, str) else chart.to_json())


def to_pdf(chart: alt.TopLevelMixin | str) -> bytes:
    """PDF of a chart (or of its Vega-Lite JSON), rendered offline by vl-convert."""
    import vl_convert as vlc

    return vlc.vegalite_to_pdf(chart if isinstance(chart, str) else chart.to_json())
