"""The one codec: every event type by its tag, bytes in and out, dead letters."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from ttfb.events.base import DEFAULT_MAX_EVENT_BYTES, SCHEMA_VERSION, Event
from ttfb.events.commands import CommitRangeRequested, RunRequested
from ttfb.events.decisions import (
    Alert,
    AlertTriaged,
    BisectCompleted,
    BisectProgressed,
    CalibrationRequested,
    CandidateDetected,
    CommitTested,
    DetectionDismissed,
    ExperimentCompleted,
    ImprovementConfirmed,
    RegressionConfirmed,
    ScenarioBroken,
    ThresholdCalibrated,
    ThresholdsSet,
)
from ttfb.events.measurements import (
    AgentAnnounced,
    AgentHeartbeat,
    CommitPlanned,
    CommitRangeListed,
    ComponentMeasured,
    RunCompleted,
    RunFailed,
    ScenarioSkipped,
    WatchNoted,
)


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
    | AgentHeartbeat
    | CommitTested
    | CandidateDetected
    | RegressionConfirmed
    | ImprovementConfirmed
    | DetectionDismissed
    | CalibrationRequested
    | ThresholdCalibrated
    | BisectCompleted
    | BisectProgressed
    | Alert
    | AlertTriaged
    | ScenarioBroken
    | ThresholdsSet
    | ExperimentCompleted
    | DeadLettered,
    Field(discriminator="type"),
]
EVENT_TYPES: dict[str, type[Event]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        RunRequested, CommitRangeRequested, ComponentMeasured, RunCompleted, RunFailed,
        CommitRangeListed, ScenarioSkipped, CommitPlanned, WatchNoted, AgentAnnounced,
        AgentHeartbeat, CommitTested, CandidateDetected,
        RegressionConfirmed,
        ImprovementConfirmed, DetectionDismissed, CalibrationRequested, ThresholdCalibrated,
        BisectCompleted, BisectProgressed,
        Alert, AlertTriaged, ScenarioBroken, ThresholdsSet, ExperimentCompleted,
        DeadLettered,
    )
}
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyEvent)


class EventRejected(ValueError):
    """Bytes that are not a valid event; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(event: Event) -> bytes:
    """Canonical JSON bytes of an event (sorted keys, compact)."""
    return json.dumps(event.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()


def compact(event: Event) -> bytes:
    """JSON bytes of an event as pydantic-core writes them (fields in their
    declared order, no spaces): a fifth of ``encode``'s time, for what a
    stream processor sends by the thousand. ``decode`` reads both forms to
    the same event; where the exact bytes matter (a signature covers
    ``encode``'s form, which the receiver makes again; ClickHouse's ingest
    views check it), ``encode``."""
    return event.model_dump_json().encode()


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
    # JSON's non-finite constants, which pydantic-core's parser would take into
    # an ``Any`` field: bytes holding them (even inside a string) take the checked path
    if b"NaN" not in raw and b"Infinity" not in raw:
        # parsed and validated in one pass (pydantic-core): what it accepts is
        # what the path below accepts, and it is half the cost; bytes it
        # refuses go the path below, which says why
        try:
            return _ADAPTER.validate_json(raw)  # type: ignore[no-any-return]
        except ValidationError:
            pass
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
