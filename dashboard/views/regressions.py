"""Regressions: each finding's timeline, effect, culprit, bisect steps and explanation."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data

STAGES = ("CandidateDetected", "RegressionConfirmed", "ImprovementConfirmed",
          "DetectionDismissed")


def render() -> None:
    st.title("Regressions and improvements")
    findings = data.findings()
    if findings.empty:
        st.info("No detections yet.")
        return
    bisects = data.bisects()
    wanted = st.query_params.get("detection")
    for detection_id, group in reversed(list(findings.groupby("detection_id", sort=False))):
        if wanted and detection_id != wanted:
            continue
        final = group[group["type"] != "CandidateDetected"]
        head = (final if not final.empty else group).iloc[-1]
        verdict = {"RegressionConfirmed": "regression confirmed",
                   "ImprovementConfirmed": "improvement confirmed",
                   "DetectionDismissed": "dismissed"}.get(head["type"], "suspected")
        bisect = bisects[bisects["detection_id"] == detection_id] if not bisects.empty \
            else pd.DataFrame()
        if not bisect.empty and not bool(bisect.iloc[0]["reproduced"]):
            verdict += ", not reproduced"
        title = (f"{head['scenario']} / {head['component']}: {verdict}, "
                 f"{float(head['effect_pct']):+.1f}% at {str(head['commit'])[:10]}")
        with st.expander(title, expanded=bool(wanted) or head["type"] != "DetectionDismissed"):
            timeline = group[["type", "occurred_at", "effect_pct", "p_value", "runs_spent"]]
            if not bisect.empty:
                timeline = pd.concat([timeline, pd.DataFrame([{
                    "type": "BisectCompleted", "occurred_at": bisect.iloc[0]["occurred_at"],
                    "effect_pct": bisect.iloc[0]["effect_pct"],
                    "runs_spent": bisect.iloc[0]["runs_spent"]}])])
            st.dataframe(timeline, hide_index=True)
            st.write(f"Effect {float(head['effect_ms']):+,.1f} ms "
                     f"({float(head['effect_pct']):+.1f}%, 95% CI "
                     f"{float(head['ci_low_pct']):+.1f}% to {float(head['ci_high_pct']):+.1f}%), "
                     f"p = {float(head['p_value']):.2g}")
            if not bisect.empty:
                b = bisect.iloc[0]
                if not bool(b["reproduced"]):
                    st.warning(f"Not reproduced: the bisect ran both ends again and they no "
                               f"longer differ ({float(b['effect_pct']):+.1f}%, 95% CI "
                               f"{float(b['ci_low_pct']):+.1f}% to "
                               f"{float(b['ci_high_pct']):+.1f}%, {int(b['runs_spent'])} runs); "
                               f"the alert is retracted and no commit is blamed.")
                else:
                    st.markdown(f"**Culprit** `{str(b['culprit'])[:12]}` by {b['author']}: "
                                f"*{b['subject']}* (confidence {float(b['confidence']):.3f}, "
                                f"{int(b['runs_spent'])} runs)")
                if b["error"]:
                    st.error(b["error"])
                st.dataframe(pd.DataFrame(b["steps"]), hide_index=True)
                if b["explanation"]:
                    st.caption("What grew most between the culprit's parent and the culprit:")
                    st.dataframe(pd.DataFrame(b["explanation"]), hide_index=True)
