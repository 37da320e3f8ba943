"""ClickHouse reads the measurements topic itself (``ttfb.store.ingest``):
its views store what the sink would, refuse what the codec refuses, and
take the topic through a real Kafka engine (chDB's, on Tansu)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from streams.sink import DecodedBatch, decode_batch, leave_to_clickhouse
from tests.integration.conftest import clean_settings, wait_until
from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.store import Store, ingest, open_store

TOPIC = "ttfb.measurements"
NAMES = ("queue", "startup", "imports", "config", "data", "model", "first_step")


def events(seed: int, count: int) -> list[ev.Event]:
    """Seeded runs, failures, measurements and heartbeats, with the awkward
    values real ones carry: quotes, backslashes, newlines, non-ASCII, no
    exit code, an empty or nested profile, hardware classes or none."""
    rng = np.random.default_rng(seed)
    words = ['plain', 'it\'s "quoted"', "back\\slash", "new\nline", "żółw 🐢", "tab\there"]
    out: list[ev.Event] = []
    for i in range(count):
        fp = ev.Fingerprint(cpu=str(rng.choice(words)), python="3.11.7", torch="2.13.0",
                            device=str(rng.choice(["cpu", "cuda"])),
                            hardware_class=str(rng.choice(["", "a100", "cpu"])))
        common: dict[str, Any] = {
            "scenario": f"s{i % 3}", "repo": "demo", "commit": f"{i:040x}",
            "branch": str(rng.choice(["main", "feature/x"])),
            "purpose": str(rng.choice(["monitor", "confirm", "bisect"])),
            "repetition": int(rng.integers(0, 5)), "runs_total": 5, "fingerprint": fp,
            "correlation_id": str(rng.choice(["", "d1"]))}
        kind = i % 4
        if kind == 0:
            comps = {n: float(rng.lognormal(5, 1)) for n in NAMES if rng.random() < 0.8}
            out.append(ev.RunCompleted(
                **common, ttfb_ms=sum(comps.values()), components=comps,  # type: ignore[arg-type]
                modules=[str(rng.choice(words))], phases=["config", "data"],
                author=str(rng.choice(words)), subject=str(rng.choice(words)),
                profile={} if rng.random() < 0.5 else {"top": [["f.py:1:g", 1.5]],
                                                        "note": str(rng.choice(words))}))
        elif kind == 1:
            out.append(ev.RunFailed(**common, reason=str(rng.choice(words)),
                                    exit_code=None if rng.random() < 0.5 else int(
                                        rng.integers(-9, 2)),
                                    stderr_tail=str(rng.choice(words))))
        elif kind == 2:
            out.append(ev.ComponentMeasured(**common, component=str(rng.choice(NAMES)),  # type: ignore[arg-type]
                                            ms=float(rng.choice([0.0, rng.lognormal(5, 1)]))))
        else:
            out.append(ev.AgentHeartbeat(agent_id=str(rng.choice(words)),
                                         hardware_class=str(rng.choice(["", "a100"])),
                                         slots=int(rng.integers(1, 4)),
                                         running=int(rng.integers(0, 3)), queued=0))
    return out


def with_views(settings: Settings) -> Store:
    """A store whose ingest views read a plain table standing in for the
    Kafka queue (same columns, the Kafka engine's virtual ones made real)."""
    store = open_store(settings)
    statements = ingest.ddl(settings, broker="127.0.0.1:9")
    assert statements[0].startswith(f"CREATE TABLE IF NOT EXISTS {store.db}.ingest_queue")
    statements[0] = (f"CREATE TABLE {store.db}.ingest_queue (raw String, _topic String,"
                     " _error String) ENGINE = Null")
    with store.backend.transaction() as tx:
        for sql in statements:
            tx.command(sql)
    return store


def queued(store: Store, messages: list[bytes]) -> None:
    store.backend.insert(f"{store.db}.ingest_queue", [
        {"raw": m.decode(), "_topic": TOPIC, "_error": ""} for m in messages])


def table(store: Store, name: str) -> list[dict[str, Any]]:
    # every column but when the row was stored
    rows = store.query(f"SELECT * EXCEPT (stored_at) FROM {store.db}.{name} ORDER BY event_id"
                       if name == "events" else
                       f"SELECT * FROM {store.db}.{name} ORDER BY event_id")
    for row in rows:  # JSON kept as text: compared by meaning, not by key order or spacing
        for key in ("fingerprint", "profile"):
            if key in row:
                row[key] = json.loads(row[key])
        if "components" in row:
            row["components"] = {k: float(v) for k, v in row["components"].items()}
    return rows


def test_the_views_store_every_row_the_sink_would(tmp_path: Path) -> None:
    sent = events(seed=7, count=400)
    raw = [ev.encode(e) for e in sent]
    by_sink = open_store(clean_settings(tmp_path / "sink"))
    by_sink.write_batch([(TOPIC, e, r) for e, r in zip(sent, raw, strict=True)])
    by_views = with_views(clean_settings(tmp_path / "views"))
    queued(by_views, raw)
    for name in ("events", "runs", "measurements"):
        expected, got = table(by_sink, name), table(by_views, name)
        assert len(got) == len(expected) > 0, name
        assert got == expected, name


def refused_messages() -> list[bytes]:
    """Messages the codec refuses, each by one fault, of every ingested type."""
    good = {e.type: json.loads(ev.encode(e)) for e in events(seed=1, count=4)}
    run, failed, measured, beat = (good[t] for t in ingest.INGESTED)

    def but(base: dict[str, Any], **change: Any) -> bytes:
        return json.dumps({**base, **change}).encode()

    def without(base: dict[str, Any], key: str) -> bytes:
        return json.dumps({k: v for k, v in base.items() if k != key}).encode()

    return [
        b"", b"not json", b"[1, 2]", b'"a string"', b"{", json.dumps(run)[:-1].encode(),
        but(run, schema_version=2), but(run, schema_version="1"), but(run, type="RunStarted"),
        but(run, event_id="short"), but(run, event_id=7), but(run, occurred_at="yesterday"),
        but(run, surprise=1), without(run, "scenario"),
        but(run, scenario=""), but(run, scenario="s" * 201), without(run, "commit"),
        but(run, repo=None), but(run, purpose="fun"), but(run, repetition=-1),
        but(run, repetition=1.5), but(run, runs_total=0), but(run, ttfb_ms=-1.0),
        but(run, ttfb_ms=1e12), without(run, "ttfb_ms"),
        but(run, components={"imports": -5.0}), but(run, components={"bogus": 5.0}),
        but(run, components=[1.0]),
        but(run, modules="m"), but(run, modules=[1]), but(run, profile=[]),
        but(run, fingerprint={"cpu": 1}), but(run, fingerprint={"ghost": ""}),
        but(run, fingerprint={"hardware_class": "x" * 65}), but(run, producer="p" * 201),
        without(failed, "reason"), but(failed, exit_code=1.5),
        but(measured, component="bogus"), but(measured, ms=-1.0), without(measured, "ms"),
        but(measured, ms=float("1e20")),
        but(beat, agent_id=""), but(beat, slots=0), but(beat, running=-1),
        without(beat, "agent_id"),
        b"{" + b'"pad":"' + b"x" * 1_000_001 + b'"}',
    ]


def lax_messages() -> list[bytes]:
    """Messages the codec takes in its lax reading (a number as text, a time
    as a number, a key twice) that no producer of the lab sends."""
    good = {e.type: json.loads(ev.encode(e)) for e in events(seed=1, count=4)}
    run, failed = good["RunCompleted"], good["RunFailed"]
    return [json.dumps({**run, "occurred_at": 12}).encode(),
            json.dumps({**run, "ttfb_ms": "12"}).encode(),
            json.dumps({**run, "components": {"imports": "5"}}).encode(),
            json.dumps({**failed, "exit_code": "1"}).encode(),
            # a key twice: the codec reads the last, ClickHouse's functions the first
            json.dumps(run).encode()[:-1] + b', "scenario": "another"}']


def test_the_views_refuse_every_message_the_codec_refuses(tmp_path: Path) -> None:
    messages = refused_messages()
    for message in messages:
        with pytest.raises(ev.EventRejected):
            ev.decode(message)
    store = with_views(clean_settings(tmp_path))
    queued(store, messages)
    assert store.count("events") == store.count("runs") == store.count("measurements") == 0
    # what the codec reads only laxly the views refuse too, and the sink keeps
    lax = lax_messages()
    queued(store, lax)
    assert store.count("events") == 0
    kept = leave_to_clickhouse(decode_batch([(TOPIC, m) for m in lax], "sink",
                                            "ttfb.deadletter", 1_000_000), TOPIC)
    assert [raw for _, _, raw in kept.items] == lax and not kept.dead
    # ...while the sink, reading the same topic, dead-letters each of them
    batch = decode_batch([(TOPIC, m) for m in messages], "sink", "ttfb.deadletter", 1_000_000)
    assert len(batch.dead) == len(messages)
    left = leave_to_clickhouse(batch, TOPIC)
    assert len(left.items) == len(messages)
    assert [base64.b64decode(d.raw_b64) for d in left.dead] == messages


def test_the_sink_leaves_to_clickhouse_only_what_its_views_take(tmp_path: Path) -> None:
    sent = events(seed=3, count=8)
    other = ev.ScenarioSkipped(scenario="s0", repo="demo", commit="c1", reason="absent")
    canonical = [(TOPIC, e, ev.encode(e)) for e in sent]
    spaced = json.dumps(json.loads(ev.encode(sent[0]))).encode()  # valid, not canonical
    batch = DecodedBatch(items=[
        *canonical, (TOPIC, other, ev.encode(other)), (TOPIC, sent[0], spaced),
        ("ttfb.detections", sent[1], ev.encode(sent[1])), (TOPIC, sent[2], None)])
    left = leave_to_clickhouse(batch, TOPIC)
    assert left.items == batch.items[len(canonical):]
    # and a view takes the canonical form of every ingested type
    store = with_views(clean_settings(tmp_path))
    queued(store, [raw for _, _, raw in canonical])
    assert store.count("events") == len(sent)


def test_ingest_is_refused_where_no_server_would_read_the_topic(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs a ClickHouse server"):
        clean_settings(tmp_path, clickhouse_kafka_ingest=True)
    plain = open_store(clean_settings(tmp_path / "plain"))
    on = clean_settings(tmp_path / "plain").model_copy(update={"clickhouse_kafka_ingest": True})
    assert "producers.init" in ingest.missing(plain, on)
    viewed = with_views(clean_settings(tmp_path / "viewed"))
    assert ingest.missing(viewed, on) == ""
    assert ingest.missing(plain, clean_settings(tmp_path / "plain")) == ""
    # switched off, the queue and its views go and the tables stay
    with viewed.backend.transaction() as tx:
        for sql in ingest.drop_ddl(on):
            tx.command(sql)
    assert "ingest_queue" in ingest.missing(viewed, on)
    assert viewed.count("runs") == 0


def test_clickhouse_reads_the_topic_through_its_kafka_engine(tmp_path: Path) -> None:
    """The real path: Tansu's measurements topic, the Kafka engine, the views."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from ttfb.bus import EmbeddedBroker

    sent = events(seed=11, count=200)
    with EmbeddedBroker() as broker:
        settings = clean_settings(tmp_path, kafka_bootstrap=broker.bootstrap, partitions=2)

        async def produce() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(settings.topic("measurements"), 2, 1)])
            finally:
                await admin.close()
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
            await producer.start()
            try:
                for event in sent:
                    await producer.send(settings.topic("measurements"), ev.encode(event))
                await producer.send_and_wait(settings.topic("measurements"), b"not json")
            finally:
                await producer.stop()

        asyncio.run(produce())
        store = open_store(settings)
        # the Kafka engine consumes only while a chDB session is open: one, held
        with store.backend.transaction() as tx:
            ingest.install(tx, settings)
            assert ingest.missing(Store(tx, store.db), settings.model_copy(
                update={"clickhouse_kafka_ingest": True})) == ""

            def stored() -> int:
                return int(tx.query(f"SELECT count() AS n FROM {store.db}.events")[0]["n"])

            wait_until(lambda: stored() >= len(sent), timeout=120, every=0.5,
                       describe=lambda: f"{stored()} of {len(sent)} events stored")
            runs = tx.query(f"SELECT count() AS n FROM {store.db}.runs")[0]["n"]
            assert stored() == len(sent)  # the message that is no event is not
            assert int(runs) == sum(isinstance(e, (ev.RunCompleted, ev.RunFailed)) for e in sent)
            for sql in ingest.drop_ddl(settings):
                tx.command(sql)


def test_a_streams_worker_will_not_leave_runs_to_views_it_cannot_find(tmp_path: Path) -> None:
    """No ClickHouse answering (so no views): the worker says so and exits,
    rather than dropping every run on the floor."""
    import os
    import subprocess
    import sys

    from tests.integration.conftest import TEST_KEY
    from ttfb.bus import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env |= {"TTFB_CLICKHOUSE_KAFKA_INGEST": "true", "TTFB_SIGNING_KEY": TEST_KEY,
            "TTFB_CLICKHOUSE_URL": f"http://127.0.0.1:{free_port()}",
            "TTFB_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}", "TTFB_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "streams.app"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert "streams: could not look for ClickHouse's ingest views" in done.stderr
    assert "Traceback" not in done.stderr
