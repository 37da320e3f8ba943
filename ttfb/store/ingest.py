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
from ttfb.store.backends import Backend, quoted

INGESTED = ("RunCompleted", "RunFailed", "ComponentMeasured", "AgentHeartbeat")
VIEWS = ("ingest_check", "ingest_events", "ingest_runs", "ingest_measurements")
TABLES = ("ingest_queue", "ingest_valid")


def _set(values: typing.Iterable[str]) -> str:
    return "(" + ", ".join(quoted(v) for v in values) + ")"


# Each message is parsed once, into ``m``: its top-level fields, as raw JSON
# text by name. Every check and every column reads those small texts (a
# ClickHouse JSON function on the whole message parses all of it again).
def _f(field: str) -> str:
    return f"m[{quoted(field)}]"


def _has(field: str) -> str:
    return f"mapContains(m, {quoted(field)})"


def _unique(pairs: str) -> str:
    """No key twice (the codec keeps a repeated key's last value, these
    functions its first: refused, the sink stores such a message itself)."""
    return f"length(arrayDistinct(arrayMap(x -> x.1, {pairs}))) = length({pairs})"


def _string(field: str, low: int = 0, high: int | None = None) -> str:
    text = f"JSONType({_f(field)}) = 'String'"
    size = f"lengthUTF8(JSONExtractString({_f(field)}))"
    if low:
        text += f" AND {size} >= {low}"
    if high is not None:
        text += f" AND {size} <= {high}"
    return text


def _int(field: str, low: int) -> str:
    return (f"JSONType({_f(field)}) IN ('Int64', 'UInt64')"
            f" AND JSONExtractInt({_f(field)}) >= {low}")


def _number(raw: str) -> str:
    return (f"JSONType({raw}) IN ('Int64', 'UInt64', 'Double')"
            f" AND JSONExtractFloat({raw}) BETWEEN 0 AND {MAX_TIMING_MS}")


def _optional(field: str, check: str) -> str:
    return f"(NOT {_has(field)} OR ({check}))"


def _keys(kind: str) -> str:
    """No field the event's model does not have (the codec forbids extras)."""
    return f"arrayAll(k -> k IN {_set(ev.EVENT_TYPES[kind].model_fields)}, mapKeys(m))"


_FP = f"JSONExtractKeysAndValuesRaw({_f('fingerprint')})"
_FINGERPRINT = _optional("fingerprint", " AND ".join([
    f"JSONType({_f('fingerprint')}) = 'Object'", _unique(_FP),
    f"arrayAll(x -> x.1 IN {_set(Fingerprint.model_fields)} AND JSONType(x.2) = 'String',"
    f" {_FP})",
    f"lengthUTF8(JSONExtractString({_f('fingerprint')}, 'hardware_class')) <= 64"]))

_RUN = " AND ".join([
    _FINGERPRINT,
    _optional("run_id", _string("run_id")),
    _optional("request_id", _string("request_id")),
    _string("scenario", 1, 200), _string("repo"), _string("commit", 1, 200),
    _optional("branch", _string("branch")),
    _optional("purpose", f"{_string('purpose')} AND JSONExtractString({_f('purpose')})"
              f" IN {_set(typing.get_args(Purpose))}"),
    _optional("arm", _string("arm")),
    _optional("repetition", _int("repetition", 0)),
    _optional("runs_total", _int("runs_total", 1)),
    _optional("correlation_id", _string("correlation_id")),
])

_COMPONENTS = sorted(typing.get_args(Component))
_COMPS = f"JSONExtractKeysAndValuesRaw({_f('components')})"
_BY_TYPE = {
    "RunCompleted": " AND ".join([
        _RUN, _has("ttfb_ms"), _number(_f("ttfb_ms")),
        f"JSONType({_f('components')}) = 'Object'", _unique(_COMPS),
        f"arrayAll(x -> x.1 IN {_set(_COMPONENTS)} AND {_number('x.2')}, {_COMPS})",
        *(_optional(f, f"JSONType({_f(f)}) = 'Array' AND arrayAll(x -> JSONType(x) ="
                    f" 'String', JSONExtractArrayRaw({_f(f)}))") for f in ("phases", "modules")),
        _optional("author", _string("author")), _optional("subject", _string("subject")),
        _optional("profile", f"JSONType({_f('profile')}) = 'Object'"),
    ]),
    "RunFailed": " AND ".join([
        _RUN, _string("reason"), _optional("stderr_tail", _string("stderr_tail")),
        _optional("exit_code", f"JSONType({_f('exit_code')}) IN ('Int64', 'UInt64', 'Null')"),
    ]),
    "ComponentMeasured": " AND ".join([
        _RUN, _has("ms"), _number(_f("ms")), _string("component"),
        f"JSONExtractString({_f('component')}) IN {_set(_COMPONENTS)}",
    ]),
    "AgentHeartbeat": " AND ".join([
        _string("agent_id", 1, 200), _optional("hardware_class", _string("hardware_class", 0, 64)),
        _optional("slots", _int("slots", 1)), _optional("running", _int("running", 0)),
        _optional("queued", _int("queued", 0)),
    ]),
}

# the message's fields, parsed once: ``kv`` (name, raw JSON) pairs, ``m`` by name
_PARSED = ("WITH JSONExtractKeysAndValuesRaw(raw) AS kv,"
           " mapFromArrays(arrayMap(x -> x.1, kv), arrayMap(x -> x.2, kv)) AS m")


def check(max_bytes: int) -> str:
    """The view's test of one message ``raw`` (``m``: its fields): a valid
    event of an ingested type."""
    by_type = " ".join(f"WHEN {quoted(kind)} THEN {_keys(kind)} AND {rule}"
                       for kind, rule in _BY_TYPE.items())
    return (
        f"length(raw) BETWEEN 1 AND {max_bytes} AND isValidJSON(raw)"
        f" AND JSONType(raw) = 'Object' AND {_unique('kv')}"
        f" AND JSONType({_f('schema_version')}) IN ('Int64', 'UInt64')"
        f" AND JSONExtractInt({_f('schema_version')}) = {SCHEMA_VERSION}"
        f" AND {_string('event_id', 8, 64)}"
        f" AND {_optional('producer', _string('producer', 0, 200))}"
        f" AND {_string('occurred_at')}"
        f" AND parseDateTime64BestEffortOrNull(JSONExtractString({_f('occurred_at')}), 6, 'UTC')"
        " IS NOT NULL"
        f" AND (CASE JSONExtractString({_f('type')}) {by_type} ELSE false END)"
    )


def _field(name: str) -> str:
    """A checked message's field as text, from the parsed fields ``fields``."""
    return f"JSONExtractString(fields[{quoted(name)}])"


def _fp(name: str) -> str:
    return f"JSONExtractString(fields['fingerprint'], {quoted(name)})"


_HARDWARE_ID = (
    f"substring(lower(hex(SHA256(concat({_fp('cpu')}, '|', {_fp('gpu')}, '|',"
    f" {_fp('python')}, '|', {_fp('torch')}, '|', {_fp('driver')}, '|',"
    f" if(JSONHas(fields['fingerprint'], 'device'), {_fp('device')}, 'cpu'),"
    f" if({_fp('hardware_class')} = '', '', concat('|', {_fp('hardware_class')})))))), 1, 12)")

_RUN_FIELDS = (
    f"event_id, occurred_at, {_field('run_id')} AS run_id, {_field('scenario')} AS scenario,"
    f" {_field('commit')} AS commit,"
    f" if(mapContains(fields, 'branch'), {_field('branch')}, 'main') AS branch,"
    f" if(mapContains(fields, 'purpose'), {_field('purpose')}, 'adhoc') AS purpose,"
    f" if(mapContains(fields, 'arm'), {_field('arm')}, 'default') AS arm,"
    f" {_HARDWARE_ID} AS hardware_id")


def ddl(settings: Settings, broker: str = "") -> list[str]:
    """The statements that make ClickHouse ingest the measurements topic, in order."""
    db = settings.clickhouse_database
    kafka = {
        "kafka_broker_list": broker or settings.clickhouse_kafka_broker
        or settings.kafka_bootstrap,
        "kafka_topic_list": settings.topic("measurements"),
        "kafka_group_name": settings.clickhouse_group,
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
        " type String, event_id String, occurred_at DateTime64(6, 'UTC'),"
        " fields Map(String, String)) ENGINE = Null",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_check TO {db}.ingest_valid AS"
        f" {_PARSED} SELECT raw, _topic AS topic, JSONExtractString({_f('type')}) AS type,"
        f" JSONExtractString({_f('event_id')}) AS event_id,"
        f" parseDateTime64BestEffort(JSONExtractString({_f('occurred_at')}), 6, 'UTC')"
        f" AS occurred_at, m AS fields FROM {db}.ingest_queue"
        f" WHERE _error = '' AND {check(settings.max_event_bytes)}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_events TO {db}.events AS"
        f" SELECT event_id, type, occurred_at, {_field('scenario')} AS scenario,"
        f" topic, raw AS payload FROM {db}.ingest_valid",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_runs TO {db}.runs AS SELECT"
        f" {_RUN_FIELDS}, {_field('request_id')} AS request_id, {_field('repo')} AS repo,"
        " toUInt32(JSONExtractUInt(fields['repetition'])) AS repetition,"
        f" {_field('correlation_id')} AS correlation_id,"
        " fields['fingerprint'] AS fingerprint,"
        " if(type = 'RunCompleted', 'completed', 'failed') AS status,"
        " JSONExtractFloat(fields['ttfb_ms']) AS ttfb_ms,"
        " JSONExtract(fields['components'], 'Map(String, Float64)') AS components,"
        f" {_field('reason')} AS reason,"
        " JSONExtract(fields['exit_code'], 'Nullable(Int32)') AS exit_code,"
        f" {_field('stderr_tail')} AS stderr_tail,"
        " JSONExtract(fields['modules'], 'Array(String)') AS modules,"
        " JSONExtract(fields['phases'], 'Array(String)') AS phases,"
        f" {_field('author')} AS author, {_field('subject')} AS subject,"
        " if(mapContains(fields, 'profile'), fields['profile'], '{}') AS profile"
        f" FROM {db}.ingest_valid WHERE type IN ('RunCompleted', 'RunFailed')",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_measurements TO {db}.measurements"
        f" AS SELECT {_RUN_FIELDS}, {_field('component')} AS component,"
        " JSONExtractFloat(fields['ms']) AS ms"
        f" FROM {db}.ingest_valid WHERE type = 'ComponentMeasured'",
    ]


def drop_ddl(settings: Settings) -> list[str]:
    """The statements that stop it: the queue first, so nothing is read half-routed."""
    db = settings.clickhouse_database
    return [f"DROP TABLE IF EXISTS {db}.ingest_queue",
            *(f"DROP VIEW IF EXISTS {db}.{view}" for view in VIEWS),
            f"DROP TABLE IF EXISTS {db}.ingest_valid"]


def install(backend: Backend, settings: Settings, broker: str = "") -> None:
    """Make the queue and views again (``ddl``), those of an earlier build gone
    first (``drop_ddl``). chDB, unlike the server, answers the Kafka table's
    creation with "Shutdown was called" yet makes it and runs it: that answer
    passes only where the table then exists."""
    for sql in drop_ddl(settings) + ddl(settings, broker):
        try:
            backend.command(sql)
        except Exception as exc:
            if "ENGINE = Kafka" not in sql or "Shutdown was called" not in str(exc):
                raise
            made = backend.query(f"EXISTS TABLE {settings.clickhouse_database}.ingest_queue")
            if not made or not int(next(iter(made[0].values()))):
                raise


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


def views_missing(settings: Settings) -> str:
    """``missing`` of the configured store, or why it could not be asked: a
    sentence for a process about to leave runs to ClickHouse, not a traceback."""
    if not settings.clickhouse_kafka_ingest:
        return ""
    from ttfb.store import open_store

    try:
        store = open_store(settings, migrate=False)
        try:
            return missing(store, settings)
        finally:
            store.close()
    except Exception as exc:  # the server down or refusing
        return f"could not look for ClickHouse's ingest views: {exc}"


def left_to_the_sink(topic: str, event: ev.Event, raw: bytes | None,
                     measurements_topic: str) -> bool:
    """Whether the sink writes this event itself while ClickHouse ingests:
    every type it does not ingest, and an ingested event whose bytes are not
    the canonical form the views' checks are written for."""
    if topic != measurements_topic or getattr(event, "type", "") not in INGESTED:
        return True
    return raw is None or raw != ev.encode(event)
