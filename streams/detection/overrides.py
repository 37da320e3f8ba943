"""A team's word in the detection fold: the catalog's threshold overrides
(``ThresholdsSet``) and the triage of alerts (``AlertTriaged``)."""

from __future__ import annotations

import dataclasses

from streams.detection.policy import Policy
from streams.detection.state import ScenarioState, position
from ttfb import events as ev
from ttfb.stats import DetectorConfig, SeriesState


def set_thresholds(state: ScenarioState, event: ev.ThresholdsSet) -> ScenarioState:
    state.thresholds = event.model_dump(
        mode="json", include={"scenario_thresholds", "components", "ignore", "source"})
    return state


def config_for(state: ScenarioState, component: str, cfg: DetectorConfig) -> DetectorConfig:
    """``cfg`` with the overrides of the scenario, then of the component."""
    for level in (state.thresholds.get("scenario_thresholds") or {},
                  (state.thresholds.get("components") or {}).get(component) or {}):
        if level.get("min_effect_pct") is not None:
            cfg = dataclasses.replace(cfg, min_effect_pct=float(level["min_effect_pct"]))
        if level.get("min_effect_ms") is not None:
            cfg = dataclasses.replace(cfg, min_effect_ms=float(level["min_effect_ms"]))
    return cfg


def ignored(state: ScenarioState) -> set[str]:
    """Components the team does not want alerted: tested, never raised."""
    return set(state.thresholds.get("ignore") or [])


def budget(state: ScenarioState, policy: Policy) -> float:
    """False alarms a week the calibration aims at: the catalog's, else the lab's."""
    own = (state.thresholds.get("scenario_thresholds") or {}).get("false_alarms_per_week")
    return float(own) if own is not None else policy.budget_per_week


def triaged(state: ScenarioState, event: ev.AlertTriaged) -> ScenarioState:
    """``expected``: the change was meant, so its level is the baseline at
    once. Each series of the component (on the alert's hardware and branch
    where it names them) keeps only what it saw from the change on (the
    culprit, else the alert's commit); a series that saw nothing since keeps
    what it has. Other statuses change no decision: they are the dashboard's
    and the notifications' to show."""
    if event.status != "expected":
        return state
    start = position(state, event.culprit)
    start = start if start >= 0 else position(state, event.commit)
    if start < 0:
        return state
    since = set(state.arrivals[start:])
    for key, series in list(state.series.items()):
        component, hardware_id, branch = key.split("|", 2)
        if component != event.component or \
                (event.hardware_id and hardware_id != event.hardware_id) or \
                (event.branch and branch != event.branch):
            continue
        kept = tuple(p for p in series.baseline + series.window if p.commit in since)
        if kept:
            state.series[key] = SeriesState(baseline=kept, window=(), seen=series.seen)
    state.changes[event.component] = [event.culprit or event.commit, event.kind]
    return state
