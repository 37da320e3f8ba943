"""Scenario: TTFB over commits by component, baseline band, detections, culprits."""

from __future__ import annotations

import altair as alt
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
    layers = [bars]
    bands = data.baseline_bands(scenario, hardware, branch)
    if not bands.empty:  # the detector's own: what each commit was tested against
        bands = bands.assign(commit=bands["commit"].str[:10]).drop_duplicates(
            "commit", keep="last")
        bands = bands[bands["commit"].isin(order)]
        layers.append(alt.Chart(bands).mark_area(opacity=0.15, color="gray").encode(
            x=alt.X("commit:N", sort=order), y="low:Q", y2="high:Q",
            tooltip=["commit", alt.Tooltip("level:Q", format=",.0f"), "candidate"]))
    findings = data.findings()
    if not findings.empty:
        marks = findings[(findings["scenario"] == scenario)
                         & findings["commit"].str[:10].isin(order)].assign(
            commit=lambda f: f["commit"].str[:10])
        if not marks.empty:
            layers.append(alt.Chart(marks).mark_rule(color="red", strokeDash=[4, 2]).encode(
                x=alt.X("commit:N", sort=order), tooltip=["type", "component", "effect_pct"]))
    st.altair_chart(alt.layer(*layers), width="stretch")
    st.caption("Gray band: the detector's baseline for each commit's total TTFB, widened "
               "by the smallest shift that can raise a candidate (inside it, none is raised; "
               "outside it, the t-test decides); red dashed rules: detections.")
    st.subheader("Distribution per commit")
    dist = runs.assign(commit=runs["commit"].str[:10])
    st.altair_chart(alt.Chart(dist).mark_boxplot().encode(
        x=alt.X("commit:N", sort=order), y=alt.Y("ttfb_ms:Q", title="TTFB (ms)",
                                                  scale=alt.Scale(zero=False))),
        width="stretch")
