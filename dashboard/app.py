"""ttfb-lab dashboard (read only): ``streamlit run dashboard/app.py``."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import data

st.set_page_config(page_title="ttfb-lab", layout="wide")
st.title("ttfb-lab: time to first batch")

runs = data.recent_runs()
if runs.empty:
    st.info("No runs in the store yet: the agent is measuring, refresh in a few seconds.")
else:
    st.caption(f"{len(runs)} recent runs across {runs['scenario'].nunique()} scenarios")
    long = data.components_long(runs)
    for scenario, group in long.groupby("scenario"):
        latest = runs[runs["scenario"] == scenario].iloc[0]
        st.subheader(f"{scenario}: latest TTFB {float(latest['ttfb_ms']):,.0f} ms")
        chart = alt.Chart(group).mark_bar().encode(
            x=alt.X("run:N", sort=alt.SortField("when"), title="run (oldest → newest)"),
            y=alt.Y("sum(ms):Q", title="ms"),
            color=alt.Color("component:N", sort=list(data.COMPONENTS)),
            order=alt.Order("order:Q"),
            tooltip=["run", "commit", "component", alt.Tooltip("ms:Q", format=",.1f")],
        )
        st.altair_chart(chart, use_container_width=True)

letters = data.dead_letters()
st.subheader(f"Dead letters: {len(letters)}")
if not letters.empty:
    st.dataframe(letters[["occurred_at", "source_topic", "reason", "refused_command"]],
                 hide_index=True)
