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
