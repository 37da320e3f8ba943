"""ClickHouse reads the measurements topic itself (the cluster deployment).

With ``TTFB_CLICKHOUSE_KAFKA_INGEST`` set, ``producers.init`` creates a
Kafka engine table on the measurements topic and materialised views that
write the bulk of the lab's events (runs, per-phase measurements, agents'
heartbeats: ``INGESTED``) into the very tables and rows the Python sink
would (``ttfb.store.rows``), so the sink no longer writes them:

    measurements topic -> ingest_queue (Kafka engine, one JSON document a message)
      -> ingest_check (view: a valid event of an ingested type?) -> ingest_valid (Null)
      -> ingest_events / ingest_runs / ingest_measurements (views) -> events, runs, measurements

The sink still reads the topic: it dead-letters whatever is not a valid
event, writes every other type, and writes an ingested event itself when its
bytes are not the canonical encoding the lab's producers send (the views'
checks are written for that form; a duplicate row collapses, as a replayed
one does). The checks hold the events' own constraints (types, fields and
their types, ranges, names), generated from the event models where they can
be, so a message the codec refuses is refused here too.
"""

from __future__ import annotations

import typing

from ttfb import events as ev
from ttfb.events.base import MAX_TIMING_MS, SCHEMA_VERSION, Component, Fingerprint, Purpose
from ttfb.settings import Settings
from ttfb.store import Store

INGESTED = ("RunCompleted", "RunFailed", "ComponentMeasured", "AgentHeartbeat")
VIEWS = ("ingest_check", "ingest_events", "ingest_runs", "ingest_measurements")
TABLES = ("ingest_queue", "ingest_valid")


def quoted(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _set(values: typing.Iterable[str]) -> str:
    return "(" + ", ".join(quoted(v) for v in values) + ")"


def _string(field: str, low: int = 0, high: int | None = None) -> str:
    text = f"JSONType(raw, {quoted(field)}) = 'String'"
    size = f"lengthUTF8(JSONExtractString(raw, {quoted(field)}))"
    if low:
        text += f" AND {size} >= {low}"
    if high is not None:
        text += f" AND {size} <= {high}"
    return text


def _int(field: str, low: int) -> str:
    return (f"JSONType(raw, {quoted(field)}) IN ('Int64', 'UInt64')"
            f" AND JSONExtractInt(raw, {quoted(field)}) >= {low}")


def _timing(field: str) -> str:
    return (f"JSONType(raw, {quoted(field)}) IN ('Int64', 'UInt64', 'Double')"
            f" AND JSONExtractFloat(raw, {quoted(field)}) BETWEEN 0 AND {MAX_TIMING_MS}")


def _optional(field: str, check: str) -> str:
    return f"(NOT JSONHas(raw, {quoted(field)}) OR ({check}))"


def _keys(kind: str) -> str:
    """No field the event's model does not have (the codec forbids extras)."""
    fields = ev.EVENT_TYPES[kind].model_fields
    return f"arrayAll(k -> k IN {_set(fields)}, JSONExtractKeys(raw))"


_FINGERPRINT = (
    "(NOT JSONHas(raw, 'fingerprint') OR (JSONType(raw, 'fingerprint') = 'Object'"
    f" AND arrayAll(k -> k IN {_set(Fingerprint.model_fields)},"
    " JSONExtractKeys(raw, 'fingerprint'))"
    " AND arrayAll(k -> JSONType(raw, 'fingerprint', k) = 'String',"
    " JSONExtractKeys(raw, 'fingerprint'))"
    " AND lengthUTF8(JSONExtractString(raw, 'fingerprint', 'hardware_class')) <= 64))")

_RUN = " AND ".join([
    _FINGERPRINT,
    _optional("run_id", _string("run_id")),
    _optional("request_id", _string("request_id")),
    _string("scenario", 1, 200), _string("repo"), _string("commit", 1, 200),
    _optional("branch", _string("branch")),
    _optional("purpose", f"JSONExtractString(raw, 'purpose') IN {_set(typing.get_args(Purpose))}"
              " AND JSONType(raw, 'purpose') = 'String'"),
    _optional("arm", _string("arm")),
    _optional("repetition", _int("repetition", 0)),
    _optional("runs_total", _int("runs_total", 1)),
    _optional("correlation_id", _string("correlation_id")),
])

_COMPONENTS = set(typing.get_args(Component))
_BY_TYPE = {
    "RunCompleted": " AND ".join([
        _RUN, _timing("ttfb_ms"),
        "JSONType(raw, 'components') = 'Object'",
        f"arrayAll(k -> k IN {_set(sorted(_COMPONENTS))}"
        " AND JSONType(raw, 'components', k) IN ('Int64', 'UInt64', 'Double')"
        f" AND JSONExtractFloat(raw, 'components', k) BETWEEN 0 AND {MAX_TIMING_MS},"
        " JSONExtractKeys(raw, 'components'))",
        *(_optional(f, f"JSONType(raw, {quoted(f)}) = 'Array'"
                    f" AND arrayAll(x -> JSONType(x) = 'String', JSONExtractArrayRaw(raw,"
                    f" {quoted(f)}))") for f in ("phases", "modules")),
        _optional("author", _string("author")), _optional("subject", _string("subject")),
        _optional("profile", "JSONType(raw, 'profile') = 'Object'"),
    ]),
    "RunFailed": " AND ".join([
        _RUN, _string("reason"), _optional("stderr_tail", _string("stderr_tail")),
        _optional("exit_code", "JSONType(raw, 'exit_code') IN ('Int64', 'UInt64', 'Null')"),
    ]),
    "ComponentMeasured": " AND ".join([
        _RUN, _timing("ms"), "JSONType(raw, 'component') = 'String'",
        f"JSONExtractString(raw, 'component') IN {_set(sorted(_COMPONENTS))}",
    ]),
    "AgentHeartbeat": " AND ".join([
        _string("agent_id", 1, 200), _optional("hardware_class", _string("hardware_class", 0, 64)),
        _optional("slots", _int("slots", 1)), _optional("running", _int("running", 0)),
        _optional("queued", _int("queued", 0)),
    ]),
}


def check(max_bytes: int) -> str:
    """The view's test of one message ``raw``: a valid event of an ingested type."""
    by_type = " ".join(f"WHEN {quoted(kind)} THEN {_keys(kind)} AND {rule}"
                       for kind, rule in _BY_TYPE.items())
    return (
        f"length(raw) BETWEEN 1 AND {max_bytes} AND isValidJSON(raw)"
        " AND JSONType(raw) = 'Object'"
        f" AND JSONType(raw, 'schema_version') IN ('Int64', 'UInt64')"
        f" AND JSONExtractInt(raw, 'schema_version') = {SCHEMA_VERSION}"
        f" AND {_string('event_id', 8, 64)}"
        f" AND {_optional('producer', _string('producer', 0, 200))}"
        " AND JSONType(raw, 'occurred_at') = 'String'"
        " AND parseDateTime64BestEffortOrNull(JSONExtractString(raw, 'occurred_at'), 6, 'UTC')"
        " IS NOT NULL"
        f" AND (CASE JSONExtractString(raw, 'type') {by_type} ELSE false END)"
    )


_HARDWARE_ID = (
    "substring(lower(hex(SHA256(concat(fp('cpu'), '|', fp('gpu'), '|', fp('python'), '|',"
    " fp('torch'), '|', fp('driver'), '|', if(JSONHas(raw, 'fingerprint', 'device'),"
    " fp('device'), 'cpu'), if(fp('hardware_class') = '', '', concat('|',"
    " fp('hardware_class'))))))), 1, 12)")


def _fp(sql: str) -> str:
    """``fp('x')``: the fingerprint's field x (a view cannot define functions)."""
    import re

    return re.sub(r"fp\('(\w+)'\)", r"JSONExtractString(raw, 'fingerprint', '\1')", sql)


_RUN_FIELDS = f"""
    event_id, occurred_at,
    JSONExtractString(raw, 'run_id') AS run_id,
    JSONExtractString(raw, 'scenario') AS scenario,
    JSONExtractString(raw, 'commit') AS commit,
    if(JSONHas(raw, 'branch'), JSONExtractString(raw, 'branch'), 'main') AS branch,
    if(JSONHas(raw, 'purpose'), JSONExtractString(raw, 'purpose'), 'adhoc') AS purpose,
    if(JSONHas(raw, 'arm'), JSONExtractString(raw, 'arm'), 'default') AS arm,
    {_fp(_HARDWARE_ID)} AS hardware_id"""


def ddl(settings: Settings, broker: str = "") -> list[str]:
    """The statements that make ClickHouse ingest the measurements topic, in order."""
    db = settings.clickhouse_database
    kafka = {
        "kafka_broker_list": broker or settings.clickhouse_kafka_broker
        or settings.kafka_bootstrap,
        "kafka_topic_list": settings.topic("measurements"),
        "kafka_group_name": f"{settings.topic_prefix}-clickhouse",
        "kafka_format": "JSONAsString",
        "kafka_handle_error_mode": "stream",
    }
    if settings.kafka_security_protocol != "PLAINTEXT":
        kafka |= {"kafka_security_protocol": settings.kafka_security_protocol.lower(),
                  "kafka_sasl_mechanism": settings.kafka_sasl_mechanism,
                  "kafka_sasl_username": settings.kafka_sasl_username,
                  "kafka_sasl_password": settings.kafka_sasl_password.get_secret_value()}
    options = ", ".join(f"{k} = {quoted(v)}" for k, v in kafka.items())
    consumers = max(1, min(settings.partitions, settings.clickhouse_kafka_consumers))
    return [
        f"CREATE TABLE IF NOT EXISTS {db}.ingest_queue (raw String) ENGINE = Kafka"
        f" SETTINGS {options}, kafka_num_consumers = {consumers},"
        " kafka_flush_interval_ms = 500",
        f"CREATE TABLE IF NOT EXISTS {db}.ingest_valid (raw String, topic String,"
        " type String, event_id String, occurred_at DateTime64(6, 'UTC')) ENGINE = Null",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_check TO {db}.ingest_valid AS"
        " SELECT raw, _topic AS topic, JSONExtractString(raw, 'type') AS type,"
        " JSONExtractString(raw, 'event_id') AS event_id,"
        " parseDateTime64BestEffort(JSONExtractString(raw, 'occurred_at'), 6, 'UTC')"
        f" AS occurred_at FROM {db}.ingest_queue"
        f" WHERE _error = '' AND {check(settings.max_event_bytes)}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_events TO {db}.events AS"
        " SELECT event_id, type, occurred_at, JSONExtractString(raw, 'scenario') AS scenario,"
        f" topic, raw AS payload FROM {db}.ingest_valid",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_runs TO {db}.runs AS SELECT"
        f" {_RUN_FIELDS},"
        " JSONExtractString(raw, 'request_id') AS request_id,"
        " JSONExtractString(raw, 'repo') AS repo,"
        " toUInt32(JSONExtractUInt(raw, 'repetition')) AS repetition,"
        " JSONExtractString(raw, 'correlation_id') AS correlation_id,"
        " JSONExtractRaw(raw, 'fingerprint') AS fingerprint,"
        " if(type = 'RunCompleted', 'completed', 'failed') AS status,"
        " JSONExtractFloat(raw, 'ttfb_ms') AS ttfb_ms,"
        " JSONExtract(raw, 'components', 'Map(String, Float64)') AS components,"
        " JSONExtractString(raw, 'reason') AS reason,"
        " JSONExtract(raw, 'exit_code', 'Nullable(Int32)') AS exit_code,"
        " JSONExtractString(raw, 'stderr_tail') AS stderr_tail,"
        " JSONExtract(raw, 'modules', 'Array(String)') AS modules,"
        " JSONExtract(raw, 'phases', 'Array(String)') AS phases,"
        " JSONExtractString(raw, 'author') AS author,"
        " JSONExtractString(raw, 'subject') AS subject,"
        " if(JSONHas(raw, 'profile'), JSONExtractRaw(raw, 'profile'), '{}') AS profile"
        f" FROM {db}.ingest_valid WHERE type IN ('RunCompleted', 'RunFailed')",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_measurements TO {db}.measurements"
        f" AS SELECT {_RUN_FIELDS},"
        " JSONExtractString(raw, 'component') AS component, JSONExtractFloat(raw, 'ms') AS ms"
        f" FROM {db}.ingest_valid WHERE type = 'ComponentMeasured'",
    ]


def drop_ddl(settings: Settings) -> list[str]:
    """The statements that stop it: the queue first, so nothing is read half-routed."""
    db = settings.clickhouse_database
    return [f"DROP TABLE IF EXISTS {db}.ingest_queue",
            *(f"DROP VIEW IF EXISTS {db}.{view}" for view in VIEWS),
            f"DROP TABLE IF EXISTS {db}.ingest_valid"]


def missing(store: Store, settings: Settings) -> str:
    """Why the sink must not leave events to ClickHouse: the setting is on
    but the store has no ingest views (``producers.init`` made none); empty
    when it may, or when the setting is off."""
    if not settings.clickhouse_kafka_ingest:
        return ""
    found = {r["name"] for r in store.query(
        "SELECT name FROM system.tables WHERE database = {db:String}",
        {"db": settings.clickhouse_database})}
    absent = [name for name in (*TABLES, *VIEWS) if name not in found]
    if not absent:
        return ""
    return (f"TTFB_CLICKHOUSE_KAFKA_INGEST is set but the store has no {', '.join(absent)}: "
            "run `python -m producers.init` with the same settings first, or the runs "
            "would be stored by nobody")


def left_to_the_sink(topic: str, event: ev.Event, raw: bytes | None,
                     measurements_topic: str) -> bool:
    """Whether the sink writes this event itself while ClickHouse ingests:
    every type it does not ingest, and an ingested event whose bytes are not
    the canonical form the views' checks are written for."""
    if topic != measurements_topic or getattr(event, "type", "") not in INGESTED:
        return True
    return raw is None or raw != ev.encode(event)
