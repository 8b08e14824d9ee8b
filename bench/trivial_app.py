"""The yardstick of bench/pages.py: the least a Streamlit page with one slider and one chart costs."""

import altair as alt
import pandas as pd
import streamlit as st

st.title("Trivial app")
n = st.slider("Points", 1, 100, 50)
df = pd.DataFrame({"x": range(n), "y": [i * i for i in range(n)]})
st.altair_chart(alt.Chart(df).mark_line().encode(x="x:Q", y="y:Q"), width="stretch")
