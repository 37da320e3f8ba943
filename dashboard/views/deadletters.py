"""Dead letters and refused commands: what was rejected, why, when."""

from __future__ import annotations

import streamlit as st

from dashboard import data


def render() -> None:
    st.title("Dead letters and refused commands")
    frame = data.dead_letters()
    if frame.empty:
        st.success("Nothing rejected.")
        return
    refused = frame[frame["refused_command"].astype(bool)]
    c1, c2 = st.columns(2)
    c1.metric("dead letters", len(frame))
    c2.metric("refused commands", len(refused))
    st.dataframe(frame[["occurred_at", "source_topic", "reason", "refused_command", "producer"]],
                 hide_index=True, width="stretch")
