"""Regressions: each finding's timeline, effect, culprit, bisect steps and
explanation; its alert's triage, with buttons to triage it; the false
alarms a week."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import data
from ttfb.events import TRIAGE_STATUSES, WholeEffect

STAGES = ("CandidateDetected", "RegressionConfirmed", "ImprovementConfirmed",
          "DetectionDismissed")
FILTERS = ("all", "untriaged", *TRIAGE_STATUSES)


def render() -> None:
    st.title("Regressions and improvements")
    findings = data.findings()
    if findings.empty:
        st.info("No detections yet.")
        return
    alarms = data.false_alarms()
    cols = st.columns(3)
    cols[0].metric("false alarms / week", f"{alarms['per_week']:.2f}",
                   help="alerts retracted by their bisect or triaged invalid, per week "
                        "measured")
    cols[1].metric("true findings", alarms["true_findings"])
    cols[2].metric("triaged invalid", alarms["invalid"])
    shown = st.selectbox("triage", FILTERS, index=0)
    alerts = data.current_alerts()
    by_detection: dict[str, list[dict[str, Any]]] = {}
    for row in alerts.to_dict("records") if not alerts.empty else []:
        by_detection.setdefault(str(row["alert_id"]).rsplit(":", 1)[0], []).append(row)
    bisects = data.bisects()
    wanted = st.query_params.get("detection")
    for detection_id, group in reversed(list(findings.groupby("detection_id", sort=False))):
        if wanted and detection_id != wanted:
            continue
        mine = by_detection.get(str(detection_id), [])
        triages = {str(a["triage"]) for a in mine}
        if shown != "all" and (not mine or ("" if shown == "untriaged" else shown)
                               not in triages):
            continue
        _finding(str(detection_id), group, bisects, mine, bool(wanted))


def _finding(detection_id: str, group: pd.DataFrame, bisects: pd.DataFrame,
             alerts: list[dict[str, Any]], wanted: bool) -> None:
    final = group[group["type"] != "CandidateDetected"]
    # a confirmed component heads its detection, whenever another one's
    # verdict came (a clear one is announced at the first look, the others after)
    found = final[final["type"] != "DetectionDismissed"]
    head = (found if not found.empty else final if not final.empty else group).iloc[-1]
    others: list[str] = []
    if len(found) > 1:
        # of several confirmed components, the one that moved TTFB most (a
        # config change confirmed in data, first_step and model was headed
        # by model's +13 %, the last confirmed, beside first_step's +144 %)
        head = found.loc[found["effect_ms"].astype(float).abs().idxmax()]
        others = sorted(set(map(str, found["component"])) - {str(head["component"])})
    verdict = {"RegressionConfirmed": "regression confirmed",
               "ImprovementConfirmed": "improvement confirmed",
               "DetectionDismissed": "dismissed"}.get(head["type"], "suspected")
    bisect = bisects[bisects["detection_id"] == detection_id] if not bisects.empty \
        else pd.DataFrame()
    if not bisect.empty and not bool(bisect.iloc[0]["reproduced"]):
        verdict += ", not reproduced"
    triaged = sorted({f"{a['triage']}" + (f" by {a['triaged_by']}" if a["triaged_by"] else "")
                      for a in alerts if a["triage"]})
    title = (f"{head['scenario']} / {head['component']}: {verdict}, "
             f"{float(head['effect_pct']):+.1f}% at {str(head['commit'])[:10]}"
             + (f" (also {', '.join(others)})" if others else "")
             + (f" [{', '.join(triaged)}]" if triaged else ""))
    with st.expander(title, expanded=wanted or head["type"] != "DetectionDismissed"):
        # one detection's verdicts come per component: say which each row is
        timeline = group[["type", "component", "occurred_at", "effect_pct", "p_value",
                          "runs_spent"]]
        if not bisect.empty:
            timeline = pd.concat([timeline, pd.DataFrame([{
                "type": "BisectCompleted", "component": bisect.iloc[0]["component"],
                "occurred_at": bisect.iloc[0]["occurred_at"],
                "effect_pct": bisect.iloc[0]["effect_pct"],
                "runs_spent": bisect.iloc[0]["runs_spent"]}])])
        st.dataframe(timeline, hide_index=True)
        st.write(f"Effect {float(head['effect_ms']):+,.1f} ms "
                 f"({float(head['effect_pct']):+.1f}%, 95% CI "
                 f"{float(head['ci_low_pct']):+.1f}% to {float(head['ci_high_pct']):+.1f}%), "
                 f"p = {float(head['p_value']):.2g}")
        total = WholeEffect.of(head).whole_text(str(head["direction"]))
        if total:
            st.write(total)
        if not bisect.empty:
            _bisect(bisect.iloc[0])
        for alert in alerts:
            _triage(alert)


def _bisect(b: pd.Series) -> None:
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
    if len(b["steps"]):  # none where the runs handed over named the culprit
        st.dataframe(pd.DataFrame(b["steps"]), hide_index=True)
    if len(b["changed_files"]):
        st.markdown("The culprit changed what the runs import or read: " +
                    ", ".join(f"`{f}`" for f in b["changed_files"]))
    if b["explanation"]:
        moved = "grew" if b["direction"] == "regression" else "shrank"
        st.caption(f"What {moved} most between the culprit's parent and the culprit:")
        st.dataframe(pd.DataFrame(b["explanation"]), hide_index=True)


def _triage(alert: dict[str, Any]) -> None:
    """The alert's triage, and a form to change it."""
    alert_id = str(alert["alert_id"])
    if alert["triage"]:
        note = f": {alert['triage_note']}" if alert["triage_note"] else ""
        by = f" by {alert['triaged_by']}" if alert["triaged_by"] else ""
        st.info(f"Alert `{alert_id}` marked **{alert['triage']}**{by}{note}")
    with st.form(f"triage-{alert_id}"):
        st.caption(f"Triage alert `{alert_id}`: expected makes its level the baseline; "
                   "invalid counts it as a false alarm")
        # nothing chosen until a person chooses (the alert's own status, if it has one): a
        # click on "triage" alone must not mark an alert
        current = TRIAGE_STATUSES.index(alert["triage"]) \
            if alert["triage"] in TRIAGE_STATUSES else None
        status = st.radio("status", TRIAGE_STATUSES, index=current, horizontal=True,
                          key=f"s-{alert_id}")
        by = st.text_input("by", value=str(st.user.get("email") or "")
                           if st.user.get("is_logged_in") else "", key=f"b-{alert_id}")
        note = st.text_input("note", key=f"n-{alert_id}")
        if st.form_submit_button("triage", key=f"t-{alert_id}"):
            if status is None:
                st.error(f"Choose a status first: {', '.join(TRIAGE_STATUSES)}.")
                return
            try:
                where = data.triage(alert_id, str(status), by, note)
            except ValueError as exc:
                st.error(str(exc))
            else:
                st.success(f"marked {status}; recorded in {where}")
