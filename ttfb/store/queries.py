"""Named, parameterised queries: the only SQL the CLI and dashboard run.

Values always travel as query parameters (``{name:Type}``), never as text
spliced into SQL.
"""

from __future__ import annotations

from typing import Any

from ttfb.store import Store


def runs_for_requests(store: Store, request_ids: list[str]) -> list[dict[str, Any]]:
    """Completed runs of the given requests, oldest first."""
    return store.query(
        f"SELECT run_id, scenario, commit, ttfb_ms, components, occurred_at"
        f" FROM {store.db}.runs FINAL"
        " WHERE request_id IN {ids:Array(String)} AND status = 'completed'"
        " ORDER BY occurred_at", {"ids": request_ids})


def recent_runs(store: Store, per_scenario: int = 20) -> list[dict[str, Any]]:
    """The latest completed runs of every scenario, with their components."""
    return store.query(
        f"SELECT scenario, run_id, commit, purpose, ttfb_ms, components, occurred_at"
        f" FROM {store.db}.runs FINAL WHERE status = 'completed'"
        " ORDER BY scenario, occurred_at DESC LIMIT {n:UInt32} BY scenario",
        {"n": per_scenario})


def failed_runs(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    return store.query(
        f"SELECT scenario, commit, reason, exit_code, stderr_tail, occurred_at"
        f" FROM {store.db}.runs FINAL WHERE status = 'failed'"
        " ORDER BY occurred_at DESC LIMIT {n:UInt32}", {"n": limit})


def dead_letters(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    return store.query(
        f"SELECT occurred_at, source_topic, reason, refused_command, producer, raw_b64"
        f" FROM {store.db}.dead_letters FINAL ORDER BY occurred_at DESC LIMIT {{n:UInt32}}",
        {"n": limit})


def latest_modules(store: Store) -> dict[str, list[str]]:
    """The repository modules each scenario imported on its latest completed run."""
    rows = store.query(
        f"SELECT scenario, argMax(modules, occurred_at) AS modules FROM {store.db}.runs FINAL"
        " WHERE status = 'completed' AND length(modules) > 0 GROUP BY scenario")
    return {r["scenario"]: list(r["modules"]) for r in rows}


def findings(store: Store, types: list[str] | None = None) -> list[dict[str, Any]]:
    """Detection events (candidates, confirmations, dismissals), oldest first."""
    types = types or ["CandidateDetected", "RegressionConfirmed", "ImprovementConfirmed",
                      "DetectionDismissed"]
    return store.query(
        f"SELECT type, detection_id, scenario, component, commit, good_commit, direction,"
        f" effect_ms, effect_pct, ci_low_pct, ci_high_pct, p_value, runs_spent, occurred_at"
        f" FROM {store.db}.detections FINAL WHERE type IN {{types:Array(String)}}"
        " ORDER BY occurred_at", {"types": types})


def alerts(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    return store.query(
        f"SELECT alert_id, kind, status, scenario, component, commit, effect_ms, effect_pct,"
        f" ci_low_pct, ci_high_pct, culprit, author, subject, link, occurred_at"
        f" FROM {store.db}.alerts FINAL ORDER BY occurred_at LIMIT {{n:UInt32}}", {"n": limit})


def runs_spent(store: Store) -> dict[str, int]:
    """Completed and failed runs per purpose."""
    rows = store.query(f"SELECT purpose, count() AS n FROM {store.db}.runs FINAL GROUP BY purpose")
    return {r["purpose"]: int(r["n"]) for r in rows}


def skips(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    return store.query(
        f"SELECT scenario, commit, reason, occurred_at FROM {store.db}.skips FINAL"
        " ORDER BY occurred_at DESC LIMIT {n:UInt32}", {"n": limit})
