"""Map each event to the rows it adds: one in ``events``, plus its typed table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ttfb import events as ev

Row = dict[str, Any]


def ts(moment: datetime) -> str:
    """DateTime64(6) text ClickHouse parses in JSONEachRow, always UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _base(event: ev.Event) -> Row:
    return {"event_id": event.event_id, "occurred_at": ts(event.occurred_at)}


def _run_fields(event: ev.RunFields) -> Row:
    return {
        **_base(event), "run_id": event.run_id, "scenario": event.scenario,
        "commit": event.commit, "branch": event.branch, "purpose": event.purpose,
        "arm": event.arm, "hardware_id": event.fingerprint.hardware_id,
    }


def _run_row(event: ev.RunCompleted | ev.RunFailed) -> Row:
    completed = isinstance(event, ev.RunCompleted)
    return {
        **_run_fields(event), "request_id": event.request_id, "repo": event.repo,
        "repetition": event.repetition, "correlation_id": event.correlation_id,
        "fingerprint": event.fingerprint.model_dump_json(),
        "status": "completed" if completed else "failed",
        "ttfb_ms": event.ttfb_ms if isinstance(event, ev.RunCompleted) else 0.0,
        "components": dict(event.components) if isinstance(event, ev.RunCompleted) else {},
        "reason": event.reason if isinstance(event, ev.RunFailed) else "",
        "exit_code": event.exit_code if isinstance(event, ev.RunFailed) else None,
        "stderr_tail": event.stderr_tail if isinstance(event, ev.RunFailed) else "",
        "modules": event.modules if isinstance(event, ev.RunCompleted) else [],
        "phases": event.phases if isinstance(event, ev.RunCompleted) else [],
        "author": event.author if isinstance(event, ev.RunCompleted) else "",
        "subject": event.subject if isinstance(event, ev.RunCompleted) else "",
        "profile": json.dumps(event.profile) if isinstance(event, ev.RunCompleted) else "{}",
    }


def _command_row(event: ev.RunRequested | ev.CommitRangeRequested) -> Row:
    return {
        **_base(event), "type": event.type, "scenario": event.scenario, "repo": event.repo,
        "commit": event.commit if isinstance(event, ev.RunRequested) else event.bad,
        "purpose": event.purpose if isinstance(event, ev.RunRequested) else "bisect",
        "request_id": event.request_id, "correlation_id": event.correlation_id,
        "runs": event.runs if isinstance(event, ev.RunRequested) else 0,
        "payload": ev.encode(event).decode(),
    }


def _finding_row(event: ev.Finding) -> Row:
    fields = event.model_dump(exclude={"schema_version", "producer", "occurred_at",
                                       "evidence_before", "evidence_after",
                                       "bisect_max_runs"})
    return {**fields, **_base(event)}


def _watch_row(event: ev.CommitPlanned | ev.WatchNoted) -> Row:
    row: Row = {**_base(event), "type": event.type, "repo": event.repo, "branch": event.branch,
                "commit": "", "purpose": "", "requested": [], "skipped": [], "kind": "",
                "detail": "", "vanished": []}
    if isinstance(event, ev.CommitPlanned):
        row.update(commit=event.commit, purpose=event.purpose, requested=event.requested,
                   skipped=event.skipped)
    else:
        row.update(kind=event.kind, detail=event.detail, vanished=event.vanished)
    return row


def _typed_row(event: ev.Event) -> tuple[str, Row] | None:  # noqa: C901 - one branch per type
    if isinstance(event, ev.ComponentMeasured):
        return "measurements", {**_run_fields(event), "component": event.component,
                                "ms": event.ms}
    if isinstance(event, (ev.RunCompleted, ev.RunFailed)):
        return "runs", _run_row(event)
    if isinstance(event, (ev.RunRequested, ev.CommitRangeRequested)):
        return "commands", _command_row(event)
    if isinstance(event, ev.DeadLettered):
        return "dead_letters", {**_base(event), "source_topic": event.source_topic,
                                "reason": event.reason, "raw_b64": event.raw_b64,
                                "refused_command": event.refused_command,
                                "producer": event.producer}
    if isinstance(event, ev.Finding):
        return "detections", _finding_row(event)
    if isinstance(event, ev.ThresholdCalibrated):
        return "calibration", {
            **_base(event), "scenario": event.scenario, "series": event.series,
            "tests_per_week": event.tests_per_week, "budget_per_week": event.budget_per_week,
            "chosen_threshold": event.chosen.threshold,
            "chosen_fpr": event.chosen.false_positive_rate,
            "points": json.dumps([p.model_dump() for p in event.points]),
        }
    if isinstance(event, ev.BisectCompleted):
        fields = event.model_dump(exclude={"schema_version", "producer", "occurred_at", "type"})
        fields["steps"] = json.dumps(fields["steps"])
        fields["explanation"] = json.dumps(fields["explanation"])
        return "bisects", {**fields, **_base(event)}
    if isinstance(event, ev.Alert):
        fields = event.model_dump(exclude={"schema_version", "producer", "occurred_at", "type"})
        return "alerts", {**fields, **_base(event)}
    if isinstance(event, ev.AlertTriaged):
        return "triage", {**_base(event), "alert_id": event.alert_id, "scenario": event.scenario,
                          "component": event.component, "kind": event.kind,
                          "status": event.status, "by": event.by, "note": event.note}
    if isinstance(event, ev.ExperimentCompleted):
        return "experiments", {
            **_base(event), "experiment_id": event.experiment_id, "scenario": event.scenario,
            "arm_a": event.arm_a, "arm_b": event.arm_b, "verdict": event.verdict,
            "runs_spent": event.runs_spent,
            "components": json.dumps([c.model_dump() for c in event.components]),
        }
    if isinstance(event, (ev.CommitPlanned, ev.WatchNoted)):
        return "watch", _watch_row(event)
    if isinstance(event, ev.ScenarioSkipped):
        return "skips", {**_base(event), "scenario": event.scenario, "repo": event.repo,
                         "commit": event.commit, "branch": event.branch, "reason": event.reason}
    return None


def rows_for(event: ev.Event, topic: str = "", raw: bytes | None = None) -> dict[str, Row]:
    """The rows one event adds, keyed by table; ``raw``, the bytes it came as,
    is its payload (else it is encoded)."""
    out: dict[str, Row] = {"events": {
        **_base(event), "type": getattr(event, "type", ""),
        "scenario": str(getattr(event, "scenario", "")), "topic": topic,
        "payload": (raw if raw is not None else ev.encode(event)).decode(),
    }}
    typed = _typed_row(event)
    if typed is not None:
        out[typed[0]] = typed[1]
    return out
