"""Dashboard data access: store queries, cached with a short TTL.

The dashboard reads only through ``ttfb.store.queries``; its one write is a
triage, sent as the event ``ttfb alerts triage`` sends.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from ttfb.events import COMPONENTS
from ttfb.settings import Settings
from ttfb.store import Store, open_store, queries

TTL_S = 5


@st.cache_resource
def store() -> Store:
    return open_store(Settings())


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


@st.cache_data(ttl=TTL_S)
def recent_runs(per_scenario: int = 20) -> pd.DataFrame:
    return _frame(queries.recent_runs(store(), per_scenario))


@st.cache_data(ttl=TTL_S)
def overview() -> pd.DataFrame:
    frame = _frame(queries.scenario_overview(store()))
    if frame.empty:
        return frame
    status = queries.scenario_status(store())
    frame["status"] = [status.get(s, "healthy") for s in frame["scenario"]]
    frame["change_pct"] = [
        (latest / base - 1) * 100 if base else None
        for latest, base in zip(frame["latest_ms"], frame["baseline_ms"], strict=False)]
    frame["recent"] = [list(reversed(r)) for r in frame["recent"]]
    return frame


@st.cache_data(ttl=TTL_S)
def health() -> dict[str, Any]:
    return queries.system_health(store())


@st.cache_data(ttl=TTL_S)
def agents() -> pd.DataFrame:
    """Every agent with its state: running, idle, or silent (no heartbeat for
    three of its intervals)."""
    frame = _frame(queries.agents(store()))
    if frame.empty:
        return frame
    silent = 3 * Settings().agent_heartbeat_s
    frame["state"] = ["silent" if s > silent else "running" if r else "idle"
                      for s, r in zip(frame["silent_s"], frame["running"], strict=True)]
    return frame


@st.cache_data(ttl=2 * TTL_S)
def lag() -> tuple[pd.DataFrame, str]:
    """The lab's consumer groups' lag per topic, from the broker; or why not."""
    import asyncio

    from ttfb.bus import consumer_lag
    from ttfb.labinfo import running_bus

    settings = Settings()
    bootstrap = running_bus(settings)
    if not bootstrap:
        return _frame([]), "no lab is running here, so there is no bus to ask"
    try:
        rows = asyncio.run(asyncio.wait_for(
            consumer_lag(settings.model_copy(update={"kafka_bootstrap": bootstrap})), 10))
    except Exception as exc:  # a dashboard page must render without the bus
        return _frame([]), f"the bus at {bootstrap} did not answer ({type(exc).__name__})"
    return _frame(rows), ""


@st.cache_data(ttl=TTL_S)
def scenario_runs(scenario: str, hardware: str = "", branch: str = "") -> pd.DataFrame:
    return _frame(queries.scenario_runs(store(), scenario, hardware, branch))


@st.cache_data(ttl=TTL_S)
def scenario_filters(scenario: str) -> dict[str, list[str]]:
    return queries.scenario_filters(store(), scenario)


@st.cache_data(ttl=TTL_S)
def baseline_bands(scenario: str, hardware: str = "", branch: str = "") -> pd.DataFrame:
    return _frame(queries.baseline_bands(store(), scenario, "ttfb", hardware, branch))


@st.cache_data(ttl=TTL_S)
def findings() -> pd.DataFrame:
    return _frame(queries.findings(store()))


@st.cache_data(ttl=TTL_S)
def bisects() -> pd.DataFrame:
    frame = _frame(queries.bisects(store()))
    for column in ("steps", "explanation"):
        if column in frame:
            frame[column] = [json.loads(v) if v else [] for v in frame[column]]
    return frame


@st.cache_data(ttl=TTL_S)
def current_alerts() -> pd.DataFrame:
    return _frame(queries.current_alerts(store()))


@st.cache_data(ttl=TTL_S)
def false_alarms() -> dict[str, Any]:
    return queries.false_alarms(store())


@st.cache_data(ttl=TTL_S)
def thresholds() -> dict[str, dict[str, Any]]:
    return queries.thresholds(store())


def triage(alert_id: str, status: str, by: str, note: str) -> str:
    """Record a person's triage of an alert (the one write the dashboard
    makes: an event, as ``ttfb alerts triage`` sends it); where it went."""
    from producers.alerts import record_triage, triage_event

    where = record_triage(Settings(), triage_event(store(), alert_id, status, by, note))
    st.cache_data.clear()
    return where


@st.cache_data(ttl=TTL_S)
def experiments() -> pd.DataFrame:
    frame = _frame(queries.experiments(store()))
    if "components" in frame:
        frame["components"] = [json.loads(v) for v in frame["components"]]
    return frame


@st.cache_data(ttl=TTL_S)
def calibrations() -> pd.DataFrame:
    frame = _frame(queries.calibrations(store()))
    if "points" in frame:
        frame["points"] = [json.loads(v) for v in frame["points"]]
    return frame


@st.cache_data(ttl=TTL_S)
def dead_letters(limit: int = 200) -> pd.DataFrame:
    return _frame(queries.dead_letters(store(), limit))


@st.cache_data(ttl=TTL_S)
def skips() -> pd.DataFrame:
    return _frame(queries.skips(store()))


def components_long(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, component) for stacked bars, components in TTFB order."""
    rows: list[dict[str, Any]] = []
    for run in runs.itertuples():
        for order, name in enumerate(COMPONENTS):
            rows.append({"scenario": getattr(run, "scenario", ""), "run": str(run.run_id)[:8],
                         "when": run.occurred_at, "commit": str(run.commit)[:10],
                         "subject": getattr(run, "subject", ""),
                         "author": getattr(run, "author", ""),
                         "component": name, "order": order,
                         "ms": float(run.components.get(name, 0.0))})
    return pd.DataFrame(rows)
