"""What agents and the watcher report: runs, their components, ranges, plans."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator

from ttfb.events.base import (
    MAX_TIMING_MS,
    Component,
    Event,
    Fingerprint,
    Purpose,
    new_id,
)


class RunFields(Event):
    run_id: str = Field(default_factory=new_id)
    request_id: str = ""
    scenario: str = Field(min_length=1, max_length=200)
    repo: str
    commit: str = Field(min_length=1, max_length=200)
    branch: str = "main"
    purpose: Purpose = "adhoc"
    arm: str = "default"
    repetition: int = Field(0, ge=0)
    runs_total: int = Field(1, ge=1, description="repetitions the request asked for")
    correlation_id: str = ""
    fingerprint: Fingerprint = Field(default_factory=Fingerprint)


class ComponentMeasured(RunFields):
    type: Literal["ComponentMeasured"] = "ComponentMeasured"
    component: Component
    ms: float = Field(ge=0.0, le=MAX_TIMING_MS)


class RunCompleted(RunFields):
    type: Literal["RunCompleted"] = "RunCompleted"
    ttfb_ms: float = Field(ge=0.0, le=MAX_TIMING_MS)
    components: dict[Component, float]
    phases: list[str] = Field(default_factory=list)
    modules: list[str] = Field(
        default_factory=list,
        description="repository files the run imported or read (modules, configs, data)")
    author: str = ""
    subject: str = ""
    profile: dict[str, Any] = Field(default_factory=dict)

    @field_validator("components")
    @classmethod
    def _components_sane(cls, value: dict[str, float]) -> dict[str, float]:
        for name, ms in value.items():
            if not (0.0 <= ms <= MAX_TIMING_MS) or math.isnan(ms):
                raise ValueError(f"component {name} has absurd timing {ms!r} ms")
        return value


def failure_summary(reason: str, stderr_tail: str, width: int = 300) -> str:
    """A failed run's reason and, where the workflow's own error is not in
    it, the last line the workflow wrote to stderr (its exception)."""
    lines = [line.strip() for line in stderr_tail.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if not last or last in reason:
        return reason
    return f"{reason}: {last[:width]}"


class RunFailed(RunFields):
    type: Literal["RunFailed"] = "RunFailed"
    reason: str
    exit_code: int | None = None
    stderr_tail: str = ""


class CommitRangeListed(Event):
    type: Literal["CommitRangeListed"] = "CommitRangeListed"
    request_id: str
    scenario: str
    repo: str
    correlation_id: str = ""
    commits: list[str] = Field(default_factory=list, description="oldest first, good..bad")
    authors: list[str] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list)
    affected: list[bool] = Field(
        default_factory=list, description="per commit: it changes the code (not only "
        "comments or docstrings) of a file the scenario imported or read on the agent's latest "
        "run of it; empty when the agent has not run it")
    error: str = ""


class ScenarioSkipped(Event):
    type: Literal["ScenarioSkipped"] = "ScenarioSkipped"
    scenario: str
    repo: str
    commit: str
    branch: str = "main"
    reason: str = "unaffected"


class CommitPlanned(Event):
    """The watcher planned one commit of a watched branch: which scenarios it
    requested runs of and which it skipped. Written to the store before the
    commit's commands go on the bus: a restarted watcher plans every commit
    whose plan is not stored, and none whose plan is."""

    type: Literal["CommitPlanned"] = "CommitPlanned"
    repo: str = Field(min_length=1, max_length=200)
    branch: str = Field(min_length=1, max_length=200)
    commit: str = Field(min_length=1, max_length=200)
    requested: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    purpose: Literal["monitor", "backfill"] = "monitor"


class AgentAnnounced(Event):
    """An agent joined the lab: what it is and what it will take."""

    type: Literal["AgentAnnounced"] = "AgentAnnounced"
    agent_id: str = Field(min_length=1, max_length=200)
    hardware_class: str = Field("", max_length=64)
    fingerprint: Fingerprint = Field(default_factory=Fingerprint)
    slots: int = Field(1, ge=1)
    scenarios: list[str] = Field(default_factory=list)
    repos: list[str] = Field(default_factory=list)


class AgentHeartbeat(Event):
    """An agent is alive (every ``TTFB_AGENT_HEARTBEAT_S``): what it is
    running and holding now. The dashboard's overview tells a silent agent
    from an idle one by these."""

    type: Literal["AgentHeartbeat"] = "AgentHeartbeat"
    agent_id: str = Field(min_length=1, max_length=200)
    hardware_class: str = Field("", max_length=64)
    slots: int = Field(1, ge=1)
    running: int = Field(0, ge=0)
    queued: int = Field(0, ge=0)


class WatchNoted(Event):
    """Something the watcher saw that a person should know: a branch rewritten
    by a force-push (``vanished`` lists planned commits no longer on it), or a
    repository or branch it could not read (``problem``)."""

    type: Literal["WatchNoted"] = "WatchNoted"
    repo: str = Field(min_length=1, max_length=200)
    branch: str = ""
    kind: Literal["rewritten", "problem"]
    detail: str = Field("", max_length=2000)
    vanished: list[str] = Field(default_factory=list)
