"""Retention: a commit's raw runs and measurements expire a set number of
days after its last run; what they said stays as per-commit aggregates
(runs, mean, median, min and max per component and in total). Detections,
bisects, alerts, triage, calibrations and experiments are kept. Agents'
heartbeats past the age go too, each agent's newest excepted (the overview
still says when it was last heard of).

A commit expires whole, once its newest run is past the age, so its
aggregate is taken over all its runs at once and never replaced by a part.
The raw events of the same runs leave the event log too: a rebuild of the
decision state from the log then sees only the history that is kept.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ttfb.store import IN_CHUNK, Store
from ttfb.store.backends import Backend
from ttfb.store.rows import ts

RAW_TYPES = ("ComponentMeasured", "RunCompleted", "RunFailed")


def expire(store: Store, days: float, now: datetime | None = None) -> dict[str, Any]:
    """Aggregate, then delete, the raw runs of every commit whose newest run
    is older than ``days``; what was done. ``days`` 0: nothing."""
    if days <= 0:
        return {"commits": 0}
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    db = store.db
    cut = {"cut": ts(cutoff)}
    with store.backend.transaction() as tx:
        tx.command(
            f"ALTER TABLE {db}.events DELETE WHERE type = 'AgentHeartbeat'"
            " AND occurred_at < {cut:DateTime64(6, 'UTC')} AND event_id NOT IN ("
            f"  SELECT argMax(event_id, occurred_at) FROM {db}.events"
            "   WHERE type = 'AgentHeartbeat' GROUP BY JSONExtractString(payload, 'agent_id'))"
            " SETTINGS mutations_sync = 2", cut)
        rows = tx.query(f"SELECT scenario, commit FROM {db}.runs FINAL GROUP BY scenario, commit"
                        " HAVING max(occurred_at) < {cut:DateTime64(6, 'UTC')}", cut)
        if not rows:
            return {"commits": 0}
        # the set fixed first: each statement below removes what the next would read;
        # a chunk of commits at a time (chDB is slow over a long ``IN`` list)
        keys = [f"{r['scenario']}/{r['commit']}" for r in rows]
        removed = {"runs": 0, "measurements": 0}
        for i in range(0, len(keys), IN_CHUNK):
            for table, n in _expire_commits(tx, db, keys[i:i + IN_CHUNK]).items():
                removed[table] += n
    return {"commits": len(rows), **removed}


def _expire_commits(tx: Backend, db: str, keys: list[str]) -> dict[str, int]:
    """Aggregate, then delete, the raw runs of the commits ``keys``
    (``scenario/commit``); how many rows each raw table lost."""
    pairs = {"keys": keys, "raw": list(RAW_TYPES)}
    expiring = "{keys:Array(String)}"
    tx.command(f"""
        INSERT INTO {db}.commit_aggregates
        SELECT scenario, any(repo), branch, hardware_id, commit, purpose, component,
               count(), avg(ms), median(ms), min(ms), max(ms), min(occurred_at),
               max(occurred_at), now64(6)
        FROM (
            SELECT scenario, repo, branch, hardware_id, commit, purpose, occurred_at,
                   arrayJoin(arrayConcat(mapKeys(components), ['ttfb'])) AS component,
                   if(component = 'ttfb', ttfb_ms, components[component]) AS ms
            FROM {db}.runs FINAL
            WHERE status = 'completed' AND concat(scenario, '/', commit) IN {expiring})
        GROUP BY scenario, branch, hardware_id, commit, purpose, component""", pairs)
    removed = {}
    for table in ("runs", "measurements"):
        removed[table] = int(tx.query(
            f"SELECT count() AS n FROM {db}.{table} FINAL"
            f" WHERE concat(scenario, '/', commit) IN {expiring}", pairs)[0]["n"])
        tx.command(f"ALTER TABLE {db}.{table} DELETE WHERE concat(scenario, '/', commit)"
                   f" IN {expiring} SETTINGS mutations_sync = 2", pairs)
    tx.command(
        f"ALTER TABLE {db}.events DELETE WHERE type IN {{raw:Array(String)}}"
        f" AND concat(scenario, '/', JSONExtractString(payload, 'commit')) IN {expiring}"
        " SETTINGS mutations_sync = 2", pairs)
    return removed
