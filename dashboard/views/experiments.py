"""Experiments: A/B results with per-component deltas and confidence intervals."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data


def render() -> None:
    st.title("Experiments (A/B)")
    frame = data.experiments()
    if frame.empty:
        st.info("No experiments yet: run `ttfb ab ...`.")
        return
    for row in frame.itertuples():
        st.subheader(f"{row.scenario}: {row.arm_a} vs {row.arm_b} → {row.verdict} "
                     f"({row.runs_spent} runs)")
        comps = pd.DataFrame(row.components)
        st.dataframe(comps, hide_index=True)
        st.altair_chart(alt.Chart(comps).mark_errorbar().encode(
            y="component:N", x=alt.X("ci_low_pct:Q", title="delta % (95% CI)"),
            x2="ci_high_pct:Q") + alt.Chart(comps).mark_point().encode(
            y="component:N", x="delta_pct:Q"), width="stretch")
