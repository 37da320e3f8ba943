"""Overview: every scenario at a glance, and the lab's own health."""

from __future__ import annotations

import streamlit as st

from dashboard import data

STATUS_LABEL = {"healthy": "healthy", "suspected": "SUSPECTED", "confirmed": "CONFIRMED",
                "bisecting": "REGRESSED, bisecting", "attributed": "REGRESSED, attributed",
                "broken": "BROKEN: every run fails"}


def render() -> None:
    st.title("ttfb-lab: time to first batch")
    frame = data.overview()
    if frame.empty:
        st.info("No runs in the store yet: the agent is measuring, refresh in a few seconds.")
    else:
        table = frame.assign(status=[STATUS_LABEL.get(s, s) for s in frame["status"]])
        st.dataframe(
            table[["scenario", "status", "latest_ms", "baseline_ms", "change_pct", "recent"]],
            hide_index=True, width="stretch",
            column_config={
                "latest_ms": st.column_config.NumberColumn("latest TTFB (ms)", format="%.0f"),
                "baseline_ms": st.column_config.NumberColumn("baseline (ms)", format="%.0f"),
                "change_pct": st.column_config.NumberColumn("change", format="%+.1f%%"),
                "recent": st.column_config.LineChartColumn("last 30 runs"),
            })
    health = data.health()
    cols = st.columns(5)
    cols[0].metric("events / s (5 min)", f"{float(health.get('eps', 0)):.2f}")
    cols[1].metric("dead letters", int(health.get("dead_letters", 0)))
    cols[2].metric("refused commands", int(health.get("refused", 0)))
    cols[3].metric("agents alive (5 min)", int(health.get("agents", 0)))
    cols[4].metric("runs in the last hour", int(health.get("runs_last_hour", 0)))
    agents = data.agents()
    st.subheader("Agents")
    if agents.empty:
        st.caption("No agent has announced itself yet.")
    else:
        st.dataframe(
            agents[["agent_id", "state", "hardware_class", "slots", "running", "queued",
                    "completed_last_hour", "failed_last_hour", "last_seen"]],
            hide_index=True, width="stretch",
            column_config={"completed_last_hour": "runs (1 h)",
                           "failed_last_hour": "failed (1 h)", "last_seen": "last heard"})
    lag, problem = data.lag()
    st.subheader("Consumer lag")
    if problem:
        st.caption(f"Consumer lag unknown: {problem}.")
    elif lag.empty:
        st.caption("No consumer group of this lab has committed an offset yet.")
    else:
        st.dataframe(lag, hide_index=True, width="stretch",
                     column_config={"lag": "messages behind", "end": "messages on the topic"})
    skips = data.skips()
    if not skips.empty:
        with st.expander(f"Skipped as unaffected: {len(skips)} scenario-commits"):
            st.dataframe(skips, hide_index=True)
