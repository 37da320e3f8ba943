"""Calibration: per series the ROC points, the chosen operating point, the
budget; the operating point in force and where it came from (calibrated, or
set in the catalog); the false alarms the alerts have cost so far."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data


def _overrides(name: str, set_: dict[str, Any]) -> str:
    parts = []
    levels = [("", set_.get("scenario_thresholds") or {}),
              *((f"{c}: ", t) for c, t in (set_.get("components") or {}).items())]
    for prefix, level in levels:
        said = [f"min effect {level['min_effect_pct']:g}%"
                if level.get("min_effect_pct") is not None else "",
                f"min effect {level['min_effect_ms']:g} ms"
                if level.get("min_effect_ms") is not None else "",
                f"budget {level['false_alarms_per_week']:g} false alarms/week"
                if level.get("false_alarms_per_week") is not None else ""]
        said = [s for s in said if s]
        if said:
            parts.append(prefix + ", ".join(said))
    if set_.get("ignore"):
        parts.append(f"never alerted: {', '.join(set_['ignore'])}")
    return f"{name}: set in {set_.get('source')}: " + "; ".join(parts)


def render() -> None:
    st.title("Detector calibration")
    alarms = data.false_alarms()
    st.caption(f"Alerts so far: {alarms['true_findings']} true findings, "
               f"{alarms['false_alarms']} false alarms ({alarms['invalid']} triaged invalid, "
               f"{alarms['retracted']} retracted): {alarms['per_week']:.2f} a week")
    overrides = data.thresholds()
    if overrides:
        st.subheader("Set by the team (catalog)")
        for name, set_ in sorted(overrides.items()):
            st.markdown("- " + _overrides(name, set_))
    frame = data.calibrations()
    if frame.empty:
        st.info("No calibration yet: thresholds are calibrated as history grows.")
        return
    for row in frame.itertuples():
        points = pd.DataFrame([{**{k: v for k, v in p.items() if k != "power"},
                                **{f"power {k}": v for k, v in p["power"].items()}}
                               for p in row.points])
        st.subheader(f"{row.scenario} / {row.series}")
        budget_source = "set in the catalog" if (overrides.get(row.scenario, {}).get(
            "scenario_thresholds") or {}).get("false_alarms_per_week") is not None \
            else "the lab's default"
        st.caption(f"budget {row.budget_per_week:g} false alarms/week ({budget_source}) over "
                   f"{row.tests_per_week:,.0f} tests/week; chosen threshold "
                   f"{row.chosen_threshold:g} (FPR {row.chosen_fpr:.4f})")
        st.markdown(f"**In force**: calibrated, alpha {row.chosen_threshold:g}"
                    + (f"; minimum effects and ignored components set in "
                       f"{overrides[row.scenario]['source']}" if row.scenario in overrides
                       else ""))
        power_cols = [c for c in points.columns if c.startswith("power")]
        long = points.melt(id_vars=["threshold", "false_positive_rate"], value_vars=power_cols,
                           var_name="shift", value_name="power")
        st.altair_chart(alt.Chart(long).mark_line(point=True).encode(
            x=alt.X("false_positive_rate:Q", title="false-positive rate per test"),
            y="power:Q", color="shift:N"), width="stretch")
        st.dataframe(points, hide_index=True)
