"""The event contract: one frozen pydantic model per event, and the one codec.

Producers, agents, streams, the sink and the dashboard all import these
definitions; nothing redefines them. Every event carries ``type`` (the tag),
``schema_version``, ``event_id`` (consumers are idempotent on it),
``occurred_at`` and ``producer``.

This module imports no I/O library.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

SCHEMA_VERSION = 1
COMPONENTS = ("queue", "startup", "imports", "config", "data", "model", "first_step")
Component = Literal["queue", "startup", "imports", "config", "data", "model", "first_step"]
Purpose = Literal["adhoc", "monitor", "confirm", "bisect", "ab", "demo", "explain"]
Direction = Literal["regression", "improvement"]
MAX_TIMING_MS = 6 * 3600 * 1000.0  # a component longer than six hours is not a measurement
DEFAULT_MAX_EVENT_BYTES = 1_000_000


def new_id() -> str:
    return uuid.uuid4().hex


_DERIVED = uuid.UUID("5f0c3c1e-7d1b-4e0e-9a59-74746662d1ab")


def derived_id(*parts: str) -> str:
    """A stable id from its parts: a stream processor that re-processes an input
    after a crash emits the same ids again, so the duplicates collapse."""
    return uuid.uuid5(_DERIVED, "\x1f".join(parts)).hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    """Frozen, strict-about-extras, finite-floats-only base for every payload."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Event(Model):
    """Fields every event carries."""

    schema_version: Literal[1] = 1
    event_id: str = Field(default_factory=new_id, min_length=8, max_length=64)
    occurred_at: datetime = Field(default_factory=utcnow)
    producer: str = Field("unknown", max_length=200)

    @property
    def key(self) -> str:
        """Partition key: all of one scenario's events land on one partition."""
        return str(getattr(self, "scenario", "") or self.event_id)


class Fingerprint(Model):
    """Hardware and software identity of the machine that measured a run."""

    host: str = ""
    cpu: str = ""
    gpu: str = ""
    python: str = ""
    torch: str = ""
    driver: str = ""
    device: str = "cpu"
    hardware_class: str = Field("", max_length=64, description="the agent's class (its series)")

    @property
    def hardware_id(self) -> str:
        """Stable short id of everything that makes timings comparable."""
        import hashlib

        raw = "|".join([self.cpu, self.gpu, self.python, self.torch, self.driver, self.device,
                        *([self.hardware_class] if self.hardware_class else [])])
        return hashlib.sha256(raw.encode()).hexdigest()[:12]


class Arm(Model):
    """Overrides of one side of an A/B: interpreter and environment variables."""

    label: str = "default"
    python: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class Signed(Event):
    """Commands are signed (HMAC-SHA256) so agents can refuse forged ones."""

    signed_at: float = 0.0
    signature: str = ""


# --------------------------------------------------------------------------- commands


class RunRequested(Signed):
    type: Literal["RunRequested"] = "RunRequested"
    request_id: str = Field(default_factory=new_id)
    scenario: str = Field(min_length=1, max_length=200)
    repo: str = Field("demo", min_length=1, max_length=200)
    commit: str = Field(min_length=1, max_length=200)
    branch: str = "main"
    runs: int = Field(1, ge=1, le=1000)
    purpose: Purpose = "adhoc"
    arm: Arm = Field(default_factory=Arm)
    correlation_id: str = ""
    profile: bool = False
    # the agents that may run it: "" any that can run the scenario's device
    hardware_class: str = Field("", max_length=64)


class CommitRangeRequested(Signed):
    type: Literal["CommitRangeRequested"] = "CommitRangeRequested"
    request_id: str = Field(default_factory=new_id)
    scenario: str
    repo: str
    good: str
    bad: str
    correlation_id: str = ""


# --------------------------------------------------------------------------- measurements


class RunFields(Event):
    run_id: str = Field(default_factory=new_id)
    request_id: str = ""
    scenario: str = Field(min_length=1, max_length=200)
    repo: str = "demo"
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
    modules: list[str] = Field(default_factory=list, description="repository modules imported")
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
        "comments or docstrings) of a file the scenario imported on the agent's latest "
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


# --------------------------------------------------------------------------- decisions


class Finding(Event):
    detection_id: str = Field(default_factory=new_id)
    scenario: str
    repo: str = "demo"
    component: str
    hardware_id: str = ""
    hardware_class: str = ""
    branch: str = "main"
    commit: str
    good_commit: str = ""
    direction: Direction
    effect_ms: float = 0.0
    effect_pct: float = 0.0
    ci_low_pct: float = 0.0
    ci_high_pct: float = 0.0
    p_value: float = 1.0
    threshold: float = 0.0
    runs_spent: int = 0
    evidence_before: list[float] = Field(default_factory=list, description="fresh runs, ms")
    evidence_after: list[float] = Field(default_factory=list)


class CandidateDetected(Finding):
    type: Literal["CandidateDetected"] = "CandidateDetected"


class RegressionConfirmed(Finding):
    type: Literal["RegressionConfirmed"] = "RegressionConfirmed"


class ImprovementConfirmed(Finding):
    type: Literal["ImprovementConfirmed"] = "ImprovementConfirmed"


class DetectionDismissed(Finding):
    type: Literal["DetectionDismissed"] = "DetectionDismissed"
    known_at: str = Field("", description="the fresh runs show a change of this component "
                          "and direction already confirmed at this commit, inside this "
                          "range: not alerted or bisected again")


class RocPoint(Model):
    threshold: float
    false_positive_rate: float
    power: dict[str, float] = Field(default_factory=dict)


class CalibrationRequested(Event):
    """The detection fold asks for a ROC calibration on a scenario's history.

    Calibrating takes seconds of CPU; the fold emits this instead of doing it
    inline, a calibration agent answers with ``ThresholdCalibrated``, and the
    fold takes the chosen operating point from that answer."""

    type: Literal["CalibrationRequested"] = "CalibrationRequested"
    scenario: str
    history: list[list[float]] = Field(max_length=1024)  # total TTFB runs per accepted commit
    accepted: int = Field(ge=0)  # commits accepted so far (the calibration's seed)


class ThresholdCalibrated(Event):
    type: Literal["ThresholdCalibrated"] = "ThresholdCalibrated"
    scenario: str
    series: str
    tests_per_week: float
    budget_per_week: float
    points: list[RocPoint]
    chosen: RocPoint
    chosen_k: float = Field(1.0, ge=0)  # the chosen point's minimum shift in sigmas
    accepted: int = Field(0, ge=0)  # the history it was calibrated on, in accepted commits


class BisectStep(Model):
    commit: str
    runs: int
    decision: Literal["good", "bad", "skipped", "inconclusive"]
    mean_ms: float = 0.0


class BisectCompleted(Event):
    type: Literal["BisectCompleted"] = "BisectCompleted"
    bisect_id: str
    detection_id: str = ""
    scenario: str
    component: str
    direction: Direction = "regression"
    good: str
    bad: str
    culprit: str = ""
    culprits: list[str] = Field(default_factory=list)
    author: str = ""
    subject: str = ""
    effect_ms: float = 0.0
    effect_pct: float = 0.0
    ci_low_pct: float = 0.0  # 95 % CI of effect_pct, from the endpoints' runs
    ci_high_pct: float = 0.0
    confidence: float = 0.0
    steps: list[BisectStep] = Field(default_factory=list)
    runs_spent: int = 0
    error: str = ""
    explanation: list[dict[str, Any]] = Field(default_factory=list)
    # false: the endpoints, run again by the bisect, no longer show the
    # confirmed change (no culprit is named, the alert is retracted)
    reproduced: bool = True


BISECT_STOP = 0.99  # a bisect ends when one commit holds this much of its posterior


class Alert(Event):
    type: Literal["Alert"] = "Alert"
    alert_id: str
    kind: Direction
    scenario: str
    component: str
    commit: str
    effect_ms: float
    effect_pct: float
    ci_low_pct: float = 0.0
    ci_high_pct: float = 0.0
    culprit: str = ""
    # the bisect's posterior mass on the culprit: below the bisect's stop
    # (BISECT_STOP) the run budget ended the search and the culprit is a best guess
    culprit_confidence: float = 0.0
    author: str = ""
    subject: str = ""
    link: str = ""
    # not_reproduced: the bisect's runs of the endpoints no longer show the
    # change; the alert is retracted and no culprit is named
    status: Literal["confirmed", "attributed", "not_reproduced"] = "confirmed"


class ComponentDelta(Model):
    component: str
    mean_a_ms: float
    mean_b_ms: float
    delta_ms: float
    delta_pct: float
    ci_low_pct: float
    ci_high_pct: float
    p_value: float
    verdict: Literal["improvement", "regression", "no change"]


class ExperimentCompleted(Event):
    type: Literal["ExperimentCompleted"] = "ExperimentCompleted"
    experiment_id: str
    scenario: str
    arm_a: str
    arm_b: str
    verdict: Literal["improvement", "regression", "no change"]
    components: list[ComponentDelta]
    runs_spent: int


class DeadLettered(Event):
    type: Literal["DeadLettered"] = "DeadLettered"
    source_topic: str = ""
    reason: str
    raw_b64: str = Field("", description="the rejected bytes, base64")
    refused_command: bool = False


AnyEvent = Annotated[
    RunRequested
    | CommitRangeRequested
    | ComponentMeasured
    | RunCompleted
    | RunFailed
    | CommitRangeListed
    | ScenarioSkipped
    | CommitPlanned
    | WatchNoted
    | AgentAnnounced
    | CandidateDetected
    | RegressionConfirmed
    | ImprovementConfirmed
    | DetectionDismissed
    | CalibrationRequested
    | ThresholdCalibrated
    | BisectCompleted
    | Alert
    | ExperimentCompleted
    | DeadLettered,
    Field(discriminator="type"),
]
EVENT_TYPES: dict[str, type[Event]] = {
    cls.model_fields["type"].default: cls  # type: ignore[misc]
    for cls in (
        RunRequested, CommitRangeRequested, ComponentMeasured, RunCompleted, RunFailed,
        CommitRangeListed, ScenarioSkipped, CommitPlanned, WatchNoted, AgentAnnounced,
        CandidateDetected,
        RegressionConfirmed,
        ImprovementConfirmed, DetectionDismissed, CalibrationRequested, ThresholdCalibrated,
        BisectCompleted,
        Alert, ExperimentCompleted, DeadLettered,
    )
}
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyEvent)


# --------------------------------------------------------------------------- codec


class EventRejected(ValueError):
    """Bytes that are not a valid event; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(event: Event) -> bytes:
    """Canonical JSON bytes of an event (sorted keys, compact)."""
    return json.dumps(event.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} is not allowed")


def decode(raw: bytes | str, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> Event:
    """Parse and validate bytes into an event, or raise ``EventRejected``."""
    if isinstance(raw, str):
        raw = raw.encode()
    if raw is None or len(raw) == 0:
        raise EventRejected("empty payload")
    if len(raw) > max_bytes:
        raise EventRejected(f"oversized payload: {len(raw)} bytes > {max_bytes}")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventRejected(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventRejected(f"expected a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if kind not in EVENT_TYPES:
        raise EventRejected(f"unknown event type {kind!r}")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise EventRejected(
            f"unsupported schema_version {data.get('schema_version')!r} for {kind}"
            f" (this build reads {SCHEMA_VERSION})"
        )
    try:
        return _ADAPTER.validate_python(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "event"
        raise EventRejected(f"invalid {kind}: {where}: {first['msg']}") from None


def dead_letter(raw: bytes, reason: str, source_topic: str, producer: str,
                refused_command: bool = False) -> DeadLettered:
    """Wrap rejected bytes, keeping them whole, in a ``DeadLettered`` event."""
    return DeadLettered(
        source_topic=source_topic,
        reason=reason[:2000],
        raw_b64=base64.b64encode(raw or b"").decode(),
        producer=producer,
        refused_command=refused_command,
    )


def decode_or_dead_letter(raw: bytes, source_topic: str, producer: str,
                          max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> Event:
    """Decode bytes; anything invalid becomes a ``DeadLettered`` event instead."""
    try:
        return decode(raw, max_bytes=max_bytes)
    except EventRejected as exc:
        return dead_letter(raw, exc.reason, source_topic, producer)
