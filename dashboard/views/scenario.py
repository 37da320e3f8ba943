"""Scenario: TTFB over commits by component, baseline band, detections, culprits."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data


def render() -> None:
    overview = data.overview()
    if overview.empty:
        st.info("No scenario has runs yet.")
        return
    names = list(overview["scenario"])
    chosen = st.query_params.get("scenario", names[0])
    scenario = st.selectbox("scenario", names, index=names.index(chosen) if chosen in names else 0)
    filters = data.scenario_filters(scenario)
    c1, c2 = st.columns(2)
    hardware = c1.selectbox("hardware", ["", *filters["hardware"]],
                            format_func=lambda h: h or "all")
    branch = c2.selectbox("branch", ["", *filters["branch"]], format_func=lambda b: b or "all")
    runs = data.scenario_runs(scenario, hardware, branch)
    if runs.empty:
        st.info("No runs for this selection.")
        return
    st.header(f"{scenario}: TTFB over commits")
    order = list(dict.fromkeys(runs.sort_values("occurred_at")["commit"].str[:10]))
    long = data.components_long(runs)
    per_commit = long.groupby(["commit", "component", "order"], as_index=False).agg(
        ms=("ms", "median"), subject=("subject", "first"), author=("author", "first"))
    bars = alt.Chart(per_commit).mark_bar().encode(
        x=alt.X("commit:N", sort=order, title="commit (oldest → newest)"),
        y=alt.Y("sum(ms):Q", title="median ms per component"),
        color=alt.Color("component:N", sort=list(data.COMPONENTS)),
        order=alt.Order("order:Q"),
        tooltip=["commit", "subject", "author", "component", alt.Tooltip("ms:Q", format=",.1f")])
    totals = runs.assign(commit=runs["commit"].str[:10]).groupby("commit")["ttfb_ms"]
    band_rows = pd.DataFrame({"commit": order})
    baseline = totals.median().reindex(order)
    spread = totals.std().reindex(order).fillna(0)
    rolling = baseline.rolling(12, min_periods=1).median().shift(1).bfill()
    band_rows["low"] = (rolling - 3 * spread.rolling(12, min_periods=1).median()).values
    band_rows["high"] = (rolling + 3 * spread.rolling(12, min_periods=1).median()).values
    band = alt.Chart(band_rows).mark_area(opacity=0.15, color="gray").encode(
        x=alt.X("commit:N", sort=order), y="low:Q", y2="high:Q")
    layers = [bars, band]
    findings = data.findings()
    if not findings.empty:
        marks = findings[(findings["scenario"] == scenario)
                         & findings["commit"].str[:10].isin(order)].assign(
            commit=lambda f: f["commit"].str[:10])
        if not marks.empty:
            layers.append(alt.Chart(marks).mark_rule(color="red", strokeDash=[4, 2]).encode(
                x=alt.X("commit:N", sort=order), tooltip=["type", "component", "effect_pct"]))
    st.altair_chart(alt.layer(*layers), width="stretch")
    st.caption("Gray band: rolling baseline median ± 3σ of the run-to-run spread; "
               "red dashed rules: detections.")
    st.subheader("Distribution per commit")
    dist = runs.assign(commit=runs["commit"].str[:10])
    st.altair_chart(alt.Chart(dist).mark_boxplot().encode(
        x=alt.X("commit:N", sort=order), y=alt.Y("ttfb_ms:Q", title="TTFB (ms)",
                                                  scale=alt.Scale(zero=False))),
        width="stretch")
