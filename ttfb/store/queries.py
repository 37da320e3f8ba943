"""Named, parameterised queries: the only SQL the CLI and dashboard run.

Values always travel as query parameters (``{name:Type}``), never as text
spliced into SQL.
"""

from __future__ import annotations

import json
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
    """The repository files each scenario imported or read on its latest completed run."""
    rows = store.query(
        f"SELECT scenario, argMax(modules, occurred_at) AS latest FROM {store.db}.runs FINAL"
        " WHERE status = 'completed' AND length(modules) > 0 GROUP BY scenario")
    return {r["scenario"]: list(r["latest"]) for r in rows}


def findings(store: Store, types: list[str] | None = None) -> list[dict[str, Any]]:
    """Detection events (candidates, confirmations, dismissals), oldest first."""
    types = types or ["CandidateDetected", "RegressionConfirmed", "ImprovementConfirmed",
                      "DetectionDismissed"]
    return store.query(
        f"SELECT type, detection_id, scenario, component, commit, good_commit, direction,"
        f" effect_ms, effect_pct, ci_low_pct, ci_high_pct, p_value, runs_spent,"
        f" ttfb_effect_ms, ttfb_effect_pct, ttfb_ci_low_pct, ttfb_ci_high_pct, occurred_at"
        f" FROM {store.db}.detections FINAL WHERE type IN {{types:Array(String)}}"
        " ORDER BY occurred_at", {"types": types})


def alerts(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    return store.query(
        f"SELECT alert_id, kind, status, scenario, component, commit, effect_ms, effect_pct,"
        f" ci_low_pct, ci_high_pct, culprit, culprit_confidence, author, subject, link,"
        f" occurred_at FROM {store.db}.alerts FINAL ORDER BY occurred_at LIMIT {{n:UInt32}}",
        {"n": limit})


_CURRENT_ALERTS = """
    SELECT a.alert_id AS alert_id, a.kind AS kind, a.status AS status, a.scenario AS scenario,
           a.component AS component, a.commit AS commit, a.effect_ms AS effect_ms,
           a.effect_pct AS effect_pct, a.ci_low_pct AS ci_low_pct,
           a.ci_high_pct AS ci_high_pct, a.culprit AS culprit,
           a.culprit_confidence AS culprit_confidence, a.author AS author,
           a.subject AS subject, a.changed_files AS changed_files, a.link AS link,
           a.ttfb_effect_ms AS ttfb_effect_ms, a.ttfb_effect_pct AS ttfb_effect_pct,
           a.ttfb_ci_low_pct AS ttfb_ci_low_pct, a.ttfb_ci_high_pct AS ttfb_ci_high_pct,
           a.raised_at AS raised_at,
           a.updated_at AS occurred_at, t.status AS triage, t.by AS triaged_by,
           t.note AS triage_note, d.hardware_id AS hardware_id, d.branch AS branch
    FROM (
        SELECT alert_id, argMax(kind, occurred_at) AS kind, argMax(status, occurred_at) AS status,
               any(scenario) AS scenario, any(component) AS component,
               argMax(commit, occurred_at) AS commit, argMax(effect_ms, occurred_at) AS effect_ms,
               argMax(effect_pct, occurred_at) AS effect_pct,
               argMax(ci_low_pct, occurred_at) AS ci_low_pct,
               argMax(ci_high_pct, occurred_at) AS ci_high_pct,
               argMax(culprit, occurred_at) AS culprit,
               argMax(culprit_confidence, occurred_at) AS culprit_confidence,
               argMax(author, occurred_at) AS author, argMax(subject, occurred_at) AS subject,
               argMax(changed_files, occurred_at) AS changed_files,
               argMax(ttfb_effect_ms, occurred_at) AS ttfb_effect_ms,
               argMax(ttfb_effect_pct, occurred_at) AS ttfb_effect_pct,
               argMax(ttfb_ci_low_pct, occurred_at) AS ttfb_ci_low_pct,
               argMax(ttfb_ci_high_pct, occurred_at) AS ttfb_ci_high_pct,
               argMax(link, occurred_at) AS link, min(occurred_at) AS raised_at,
               max(occurred_at) AS updated_at
        FROM {db}.alerts FINAL GROUP BY alert_id) AS a
    LEFT JOIN (
        SELECT alert_id, argMax(status, occurred_at) AS status, argMax(by, occurred_at) AS by,
               argMax(note, occurred_at) AS note
        FROM {db}.triage FINAL GROUP BY alert_id) AS t ON t.alert_id = a.alert_id
    LEFT JOIN (
        SELECT concat(detection_id, ':', component) AS alert_id,
               any(hardware_id) AS hardware_id, any(branch) AS branch
        FROM {db}.detections FINAL WHERE type IN ('RegressionConfirmed', 'ImprovementConfirmed')
        GROUP BY alert_id) AS d ON d.alert_id = a.alert_id
"""


def current_alerts(store: Store, triage: str | None = None, scenario: str | None = None,
                   limit: int = 500, since: Any = None) -> list[dict[str, Any]]:
    """One row per alert, as it stands: its latest status (confirmed,
    attributed, not_reproduced) and its latest triage ('' when untriaged),
    newest first; ``triage`` filters by the latter ('untriaged' for '');
    ``since``: only alerts first raised then or later."""
    from ttfb.store.rows import ts

    where: list[str] = []
    params: dict[str, Any] = {"n": limit}
    if since is not None:
        where.append("raised_at >= {since:DateTime64(6, 'UTC')}")
        params["since"] = ts(since)
    if triage is not None:
        where.append("triage = {t:String}")
        params["t"] = "" if triage == "untriaged" else triage
    if scenario:
        where.append("scenario = {s:String}")
        params["s"] = scenario
    sql = _CURRENT_ALERTS.format(db=store.db) + (
        f" WHERE {' AND '.join(where)}" if where else "") + \
        " ORDER BY raised_at DESC LIMIT {n:UInt32}"
    return store.query(sql, params)


def alert(store: Store, alert_id: str) -> dict[str, Any] | None:
    rows = store.query(_CURRENT_ALERTS.format(db=store.db) + " WHERE alert_id = {a:String}",
                       {"a": alert_id})
    return rows[0] if rows else None


def false_alarms(store: Store) -> dict[str, Any]:
    """Confirmed alerts that were not real: retracted by their bisect
    (not reproduced) or triaged invalid; per week over the weeks the lab has
    measured (at least one). ``true``: the other alerts."""
    rows = store.query(
        f"SELECT countIf(status = 'not_reproduced' OR triage = 'invalid') AS false_alarms,"
        f" countIf(status != 'not_reproduced' AND triage != 'invalid') AS true_findings,"
        f" countIf(triage = 'invalid') AS invalid, countIf(status = 'not_reproduced')"
        f" AS retracted FROM ({_CURRENT_ALERTS.format(db=store.db)})")
    span = store.query(
        f"SELECT dateDiff('second', min(occurred_at), max(occurred_at)) AS s"
        f" FROM {store.db}.runs FINAL WHERE purpose IN ('monitor', 'demo')")
    seconds = float(span[0]["s"] or 0) if span else 0.0
    weeks = max(seconds / (7 * 86400), 1.0)
    out = {k: int(v) for k, v in rows[0].items()} if rows else \
        {"false_alarms": 0, "true_findings": 0, "invalid": 0, "retracted": 0}
    return {**out, "weeks": weeks, "per_week": out["false_alarms"] / weeks}


def thresholds(store: Store) -> dict[str, dict[str, Any]]:
    """The catalog's threshold overrides in force, per scenario (the latest
    ``ThresholdsSet``; a scenario without overrides is left out)."""
    rows = store.query(
        f"SELECT scenario, argMax(payload, occurred_at) AS payload FROM {store.db}.events"
        " WHERE type = 'ThresholdsSet' GROUP BY scenario")
    out = {}
    for r in rows:
        data = json.loads(r["payload"])
        if data.get("source"):
            out[r["scenario"]] = {k: data[k] for k in
                                  ("scenario_thresholds", "components", "ignore", "source")}
    return out


def runs_spent(store: Store) -> dict[str, int]:
    """Completed and failed runs per purpose."""
    rows = store.query(f"SELECT purpose, count() AS n FROM {store.db}.runs FINAL GROUP BY purpose")
    return {r["purpose"]: int(r["n"]) for r in rows}


def skips(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    return store.query(
        f"SELECT scenario, commit, reason, occurred_at FROM {store.db}.skips FINAL"
        " ORDER BY occurred_at DESC LIMIT {n:UInt32}", {"n": limit})


def scenario_overview(store: Store) -> list[dict[str, Any]]:
    """Per scenario: latest TTFB, its baseline (median of the 12 runs before) and status."""
    return store.query(f"""
        WITH ranked AS (
            SELECT scenario, ttfb_ms, occurred_at,
                   row_number() OVER (PARTITION BY scenario ORDER BY occurred_at DESC) AS rn
            FROM {store.db}.runs FINAL
            WHERE status = 'completed' AND purpose IN ('monitor', 'demo', 'adhoc'))
        SELECT scenario,
               anyIf(ttfb_ms, rn = 1) AS latest_ms,
               quantileExactIf(0.5)(ttfb_ms, rn > 1 AND rn <= 13) AS baseline_ms,
               groupArrayIf(ttfb_ms, rn <= 30) AS recent,
               max(occurred_at) AS last_run
        FROM ranked GROUP BY scenario ORDER BY scenario""")


def scenario_status(store: Store) -> dict[str, str]:
    """The latest finding's stage: healthy (after a bisect that did not reproduce it, or runs
    completing after a break; a dismissal beside a confirmed change is not), ..., broken."""
    rows = store.query(f"""
        SELECT scenario, argMax(type, occurred_at) AS last_type
        FROM (SELECT scenario, type, occurred_at FROM {store.db}.detections FINAL
              WHERE type != 'DetectionDismissed' OR detection_id NOT IN (SELECT detection_id
                  FROM {store.db}.detections FINAL WHERE type LIKE '%Confirmed')
              UNION ALL
              SELECT scenario, if(reproduced, 'BisectCompleted', 'NotReproduced') AS type,
                     occurred_at FROM {store.db}.bisects FINAL WHERE culprit != '' OR NOT reproduced
              UNION ALL
              SELECT scenario, if(JSONExtractString(payload, 'status') = 'broken', 'Broken',
                     'Working'), occurred_at FROM {store.db}.events WHERE type = 'ScenarioBroken')
        GROUP BY scenario""")
    stage = {"CandidateDetected": "suspected", "RegressionConfirmed": "bisecting",
             "ImprovementConfirmed": "confirmed", "DetectionDismissed": "healthy",
             "BisectCompleted": "attributed", "NotReproduced": "healthy", "Broken": "broken"}
    return {r["scenario"]: stage.get(r["last_type"], "healthy") for r in rows}


def system_health(store: Store, window_s: int = 300) -> dict[str, Any]:
    """Events per second, dead letters and agents seen over the last ``window_s``."""
    rows = store.query(f"""
        SELECT
          (SELECT count() FROM {store.db}.events
           WHERE occurred_at > now64() - toIntervalSecond({{w:UInt32}})) / {{w:UInt32}} AS eps,
          (SELECT count() FROM {store.db}.dead_letters FINAL) AS dead_letters,
          (SELECT countIf(refused_command) FROM {store.db}.dead_letters FINAL) AS refused,
          (SELECT uniqExact(JSONExtractString(fingerprint, 'host'))
           FROM {store.db}.runs FINAL
           WHERE occurred_at > now64() - toIntervalSecond({{w:UInt32}})) AS agents,
          (SELECT count() FROM {store.db}.runs FINAL
           WHERE occurred_at > now64() - toIntervalSecond(3600)) AS runs_last_hour""",
        {"w": window_s})
    return rows[0] if rows else {}


def agents(store: Store) -> list[dict[str, Any]]:
    """Every agent that announced itself or beat (``AgentHeartbeat``, ``AgentAnnounced``):
    class, slots, when last heard of, what it ran and held then, its runs of the hour."""
    return store.query(f"""
        SELECT agent_id, hardware_class, slots, last_seen, running, queued,
               ifNull(completed, 0) AS completed_last_hour, ifNull(failed, 0) AS failed_last_hour,
               dateDiff('second', last_seen, now64()) AS silent_s
        FROM (
          SELECT JSONExtractString(payload, 'agent_id') AS agent_id,
                 argMax(JSONExtractString(payload, 'hardware_class'), occurred_at)
                   AS hardware_class,
                 argMax(JSONExtractUInt(payload, 'slots'), occurred_at) AS slots,
                 max(occurred_at) AS last_seen,
                 argMax(JSONExtractUInt(payload, 'running'), occurred_at) AS running,
                 argMax(JSONExtractUInt(payload, 'queued'), occurred_at) AS queued
          FROM {store.db}.events
          WHERE type IN ('AgentHeartbeat', 'AgentAnnounced')
          GROUP BY agent_id) AS seen
        LEFT JOIN (
          SELECT JSONExtractString(payload, 'producer') AS agent_id,
                 countIf(type = 'RunCompleted') AS completed, countIf(type = 'RunFailed') AS failed
          FROM {store.db}.events
          WHERE type IN ('RunCompleted', 'RunFailed')
            AND occurred_at > now64() - toIntervalSecond(3600)
          GROUP BY agent_id) AS runs USING (agent_id)
        ORDER BY agent_id""")


def scenario_runs(store: Store, scenario: str, hardware_id: str = "", branch: str = "",
                  limit: int = 2000) -> list[dict[str, Any]]:
    """Completed monitoring runs of a scenario (optionally one hardware / branch)."""
    return store.query(
        f"SELECT run_id, commit, branch, hardware_id, ttfb_ms, components, author, subject,"
        f" occurred_at FROM {store.db}.runs FINAL"
        " WHERE scenario = {s:String} AND status = 'completed'"
        " AND purpose IN ('monitor', 'demo', 'adhoc')"
        " AND ({h:String} = '' OR hardware_id = {h:String})"
        " AND ({b:String} = '' OR branch = {b:String})"
        " ORDER BY occurred_at DESC LIMIT {n:UInt32}",
        {"s": scenario, "h": hardware_id, "b": branch, "n": limit})


def baseline_bands(store: Store, scenario: str, component: str = "ttfb", hardware_id: str = "",
                   branch: str = "") -> list[dict[str, Any]]:
    """What the detector tested each commit of a scenario against, in one
    series (``ttfb``: the total): commit, low, level and high in ms, and
    whether the series raised a candidate there (``CommitTested``)."""
    rows = store.query(
        f"SELECT JSONExtractString(payload, 'commit') AS commit,"
        " JSONExtract(payload, 'bands', {c:String}, 'Array(Float64)') AS band,"
        " has(JSONExtract(payload, 'candidates', 'Array(String)'), {c:String}) AS candidate,"
        f" occurred_at FROM {store.db}.events FINAL"
        " WHERE type = 'CommitTested' AND scenario = {s:String}"
        " AND ({h:String} = '' OR JSONExtractString(payload, 'hardware_id') = {h:String})"
        " AND ({b:String} = '' OR JSONExtractString(payload, 'branch') = {b:String})"
        " ORDER BY occurred_at", {"s": scenario, "c": component, "h": hardware_id, "b": branch})
    return [{"commit": r["commit"], "low": r["band"][0], "level": r["band"][1],
             "high": r["band"][2], "candidate": bool(r["candidate"])}
            for r in rows if len(r["band"]) == 3]


def scenario_filters(store: Store, scenario: str) -> dict[str, list[str]]:
    rows = store.query(
        f"SELECT groupUniqArray(hardware_id) AS hw, groupUniqArray(branch) AS br"
        f" FROM {store.db}.runs FINAL WHERE scenario = {{s:String}}", {"s": scenario})
    return {"hardware": sorted(rows[0]["hw"]), "branch": sorted(rows[0]["br"])} if rows \
        else {"hardware": [], "branch": []}


def bisects(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    return store.query(
        f"SELECT bisect_id, detection_id, scenario, component, direction, good, bad, culprit,"
        f" culprits,"
        f" author, subject, effect_ms, effect_pct, ci_low_pct, ci_high_pct, confidence,"
        f" runs_spent, steps, explanation, changed_files,"
        f" error, reproduced, inconclusive, likely_after, likely_last, likely_mass,"
        f" occurred_at FROM {store.db}.bisects FINAL"
        " ORDER BY occurred_at DESC LIMIT {n:UInt32}", {"n": limit})


def bisect_progress(store: Store, scenario: str, detection_id: str) -> dict[str, Any] | None:
    """The latest ``BisectProgressed`` of the bisect a detection started."""
    rows = store.query(
        f"SELECT payload FROM {store.db}.events"
        " WHERE type = 'BisectProgressed' AND scenario = {s:String}"
        " AND JSONExtractString(payload, 'detection_id') = {d:String}"
        " ORDER BY occurred_at DESC LIMIT 1", {"s": scenario, "d": detection_id})
    return json.loads(rows[0]["payload"]) if rows else None


def experiments(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    return store.query(
        f"SELECT experiment_id, scenario, arm_a, arm_b, verdict, runs_spent, components,"
        f" occurred_at FROM {store.db}.experiments FINAL"
        " ORDER BY occurred_at DESC LIMIT {n:UInt32}", {"n": limit})


def calibrations(store: Store) -> list[dict[str, Any]]:
    """The latest calibration of every series."""
    return store.query(
        f"SELECT scenario, series, argMax(points, occurred_at) AS points,"
        f" argMax(chosen_threshold, occurred_at) AS chosen_threshold,"
        f" argMax(chosen_fpr, occurred_at) AS chosen_fpr,"
        f" argMax(tests_per_week, occurred_at) AS tests_per_week,"
        f" argMax(budget_per_week, occurred_at) AS budget_per_week"
        f" FROM {store.db}.calibration FINAL GROUP BY scenario, series ORDER BY scenario, series")


def runs_since(store: Store, scenario: str, purposes: list[str], since: Any) -> int:
    """Runs of ``scenario`` for ``purposes`` that occurred after ``since``."""
    from ttfb.store.rows import ts

    rows = store.query(
        f"SELECT count() AS n FROM {store.db}.runs FINAL WHERE scenario = {{s:String}}"
        " AND purpose IN {p:Array(String)} AND occurred_at >= {t:DateTime64(6, 'UTC')}",
        {"s": scenario, "p": purposes, "t": ts(since)})
    return int(rows[0]["n"])
