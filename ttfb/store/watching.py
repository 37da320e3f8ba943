"""What the watcher and ``ttfb backfill`` read: commits planned, requests
unanswered, what a scenario imports, how far a repository has got.
Parameterised, as every query of the store."""

from __future__ import annotations

from typing import Any

from ttfb.store import Store


def modules_at(store: Store, request_ids: list[str]) -> tuple[dict[str, list[str]], int]:
    """The repository files each scenario imported or read on the completed runs of
    the requests ``request_ids`` (every one's, together), and how many runs of
    them have come back, completed or failed."""
    if not request_ids:
        return {}, 0
    rows = store.query(
        f"SELECT scenario, groupUniqArrayArrayIf(modules, status = 'completed') AS found,"
        f" count() AS n FROM {store.db}.runs FINAL"
        " WHERE request_id IN {ids:Array(String)} GROUP BY scenario", {"ids": request_ids})
    return ({r["scenario"]: sorted(r["found"]) for r in rows if r["found"]},
            sum(int(r["n"]) for r in rows))


def planned_commits(store: Store, repo: str, branch: str) -> list[str]:
    """Commits the watcher has planned on ``repo``/``branch``, in planning order."""
    rows = store.query(
        f"SELECT commit FROM {store.db}.watch FINAL WHERE type = 'CommitPlanned'"
        " AND repo = {r:String} AND branch = {b:String} ORDER BY occurred_at, event_id",
        {"r": repo, "b": branch})
    return [str(r["commit"]) for r in rows]


def unanswered_requests(store: Store, repo: str, purposes: list[str],
                        since: Any = None) -> list[str]:
    """Payloads of stored run requests of ``repo`` with fewer results than
    runs asked; ``since``: only requests made then or later (and only their
    runs counted: a months-old store's runs are not all grouped each look)."""
    from ttfb.store.rows import ts

    params: dict[str, Any] = {"r": repo, "p": purposes}
    runs_after = asked_after = ""
    if since is not None:
        params["t"] = ts(since)
        runs_after = " AND occurred_at >= {t:DateTime64(6, 'UTC')}"
        asked_after = " AND c.occurred_at >= {t:DateTime64(6, 'UTC')}"
    rows = store.query(
        f"SELECT c.payload AS payload FROM {store.db}.commands AS c FINAL"
        f" LEFT JOIN (SELECT request_id, count() AS n FROM {store.db}.runs FINAL"
        f"  WHERE repo = {{r:String}}{runs_after} GROUP BY request_id) AS r"
        " ON c.request_id = r.request_id"
        " WHERE c.type = 'RunRequested' AND c.repo = {r:String}"
        f" AND c.purpose IN {{p:Array(String)}} AND r.n < c.runs{asked_after}"
        " ORDER BY c.occurred_at", params)
    return [str(r["payload"]) for r in rows]


def event_count(store: Store, scenarios: list[str], since: Any) -> int:
    """Events of ``scenarios`` stored at ``since`` or later: unchanged while
    the lab does nothing for them (agents' heartbeats and other scenarios'
    work aside)."""
    from ttfb.store.rows import ts

    return int(store.query(
        f"SELECT count() AS n FROM {store.db}.events WHERE scenario IN {{s:Array(String)}}"
        " AND occurred_at >= {t:DateTime64(6, 'UTC')}", {"s": scenarios, "t": ts(since)})[0]["n"])


def watch_progress(store: Store, repo: str) -> dict[str, int]:
    """Counts a person follows a watched repository by."""
    one = store.query(
        "SELECT"
        f" (SELECT count() FROM {store.db}.watch FINAL WHERE repo = {{r:String}}"
        "   AND type = 'CommitPlanned') AS planned,"
        f" (SELECT countIf(length(requested) = 0) FROM {store.db}.watch FINAL"
        "   WHERE repo = {r:String} AND type = 'CommitPlanned') AS unaffected,"
        f" (SELECT sum(runs) FROM {store.db}.commands FINAL WHERE type = 'RunRequested'"
        "   AND repo = {r:String}) AS runs_queued,"
        f" (SELECT count() FROM {store.db}.runs FINAL WHERE repo = {{r:String}}) AS runs_done,"
        f" (SELECT uniqExactIf(detection_id, type = 'CandidateDetected')"
        f"   FROM {store.db}.detections FINAL WHERE repo = {{r:String}}) AS candidates,"
        f" (SELECT uniqExactIf(detection_id, type IN ('RegressionConfirmed',"
        "   'ImprovementConfirmed')) FROM"
        f"   {store.db}.detections FINAL WHERE repo = {{r:String}}) AS confirmed,"
        f" (SELECT uniqExact(bisect_id) FROM {store.db}.bisects FINAL) AS bisected,"
        f" (SELECT count() FROM {store.db}.alerts FINAL WHERE culprit != '') AS attributed",
        {"r": repo})
    return {k: int(v or 0) for k, v in one[0].items()} if one else {}


def recent_failures(store: Store, repos: list[str], limit: int = 5) -> list[dict[str, Any]]:
    """The latest failed runs of ``repos``: a crashing or hanging workflow."""
    return store.query(
        f"SELECT run_id, scenario, commit, reason, stderr_tail FROM {store.db}.runs FINAL"
        " WHERE status = 'failed' AND repo IN {r:Array(String)}"
        " ORDER BY occurred_at DESC LIMIT {n:UInt32}", {"r": repos, "n": limit})
