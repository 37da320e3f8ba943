"""Calibration: per series the ROC points, the chosen operating point, the budget."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data


def render() -> None:
    st.title("Detector calibration")
    frame = data.calibrations()
    if frame.empty:
        st.info("No calibration yet: thresholds are calibrated as history grows.")
        return
    for row in frame.itertuples():
        points = pd.DataFrame([{**{k: v for k, v in p.items() if k != "power"},
                                **{f"power {k}": v for k, v in p["power"].items()}}
                               for p in row.points])
        st.subheader(f"{row.scenario} / {row.series}")
        st.caption(f"budget {row.budget_per_week:g} false alarms/week over "
                   f"{row.tests_per_week:,.0f} tests/week; chosen threshold "
                   f"{row.chosen_threshold:g} (FPR {row.chosen_fpr:.4f})")
        power_cols = [c for c in points.columns if c.startswith("power")]
        long = points.melt(id_vars=["threshold", "false_positive_rate"], value_vars=power_cols,
                           var_name="shift", value_name="power")
        st.altair_chart(alt.Chart(long).mark_line(point=True).encode(
            x=alt.X("false_positive_rate:Q", title="false-positive rate per test"),
            y="power:Q", color="shift:N"), width="stretch")
        st.dataframe(points, hide_index=True)
