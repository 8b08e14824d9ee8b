"""Page furniture every page shares: tables sized to their rows and the closing takeaways."""

from __future__ import annotations

import streamlit as st
from pandas.io.formats.style import Styler


def takeaways(lines: list[str]) -> None:
    """The page's takeaways: two or three sentences with the current view's numbers, at the end of the page."""
    if not lines:
        return
    st.subheader("Takeaways")
    st.markdown("\n".join(f"- {line}" for line in lines))


TABLE_ROW_PX = 35  # st.dataframe's row height, and its header's
TABLE_MAX_ROWS = 40  # a longer table scrolls inside a box this many rows high


def table(df, **kw) -> None:
    """st.dataframe sized to its rows, so nothing scrolls inside it and no row is cut off on a projector or in a
    screenshot (up to TABLE_MAX_ROWS rows; a longer one scrolls in a box that high). `df` is a DataFrame or its
    Styler; the index is hidden and the table fills the width unless `kw` says otherwise."""
    n = len(df.data if isinstance(df, Styler) else df)
    kw.setdefault("hide_index", True)
    kw.setdefault("width", "stretch")
    kw.setdefault("row_height", TABLE_ROW_PX)
    kw.setdefault("height", kw["row_height"] * (min(n, TABLE_MAX_ROWS) + 1) + 3)  # + the frame's borders
    st.dataframe(df, **kw)
