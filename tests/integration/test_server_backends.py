"""Apache Kafka and ClickHouse server through testcontainers (needs Docker)."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.conftest import docker_available

pytestmark = pytest.mark.skipif(
    not docker_available(), reason="needs a running Docker engine for testcontainers "
                                   "(this machine has the docker client but no daemon)")


def test_store_sql_runs_on_clickhouse_server() -> None:
    from testcontainers.clickhouse import ClickHouseContainer

    from ttfb import events as ev
    from ttfb.settings import Settings
    from ttfb.store import open_store, queries

    with ClickHouseContainer("clickhouse/clickhouse-server:24.8") as ch:
        url = f"http://{ch.get_container_host_ip()}:{ch.get_exposed_port(8123)}"
        os.environ.pop("TTFB_CLICKHOUSE_URL", None)
        settings = Settings(clickhouse_url=url, clickhouse_user=ch.username,
                            clickhouse_password=ch.password, _env_file=None)
        store = open_store(settings)
        assert store.migrate() == []
        comps = {c: 1.0 for c in ev.COMPONENTS}
        run = ev.RunCompleted(repo="demo", scenario="s", commit="c", ttfb_ms=7.0, components=comps,
                              request_id="r")
        assert store.write([run, run]) == 1 and store.write([run]) == 0
        assert queries.runs_for_requests(store, ["r"])[0]["ttfb_ms"] == 7.0
        # the rebuild's reader: the payload's own bytes, over the server's RowBinary
        from streams.rebuild import stored_events

        measured = ev.RunCompleted(repo="demo", scenario="s", commit="d", ttfb_ms=8.0,
                                   components=comps, subject="névé")
        store.write([measured], topic=settings.topic("measurements"))
        assert list(stored_events(store, settings)) == [measured]


def test_emitter_and_topics_on_apache_kafka(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aiokafka import AIOKafkaConsumer
    from testcontainers.kafka import KafkaContainer

    from ttfb import events as ev
    from ttfb.bus import ensure_topics, kafka_client_options
    from ttfb.emitter import Emitter
    from ttfb.settings import Settings

    with KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as kafka:
        settings = Settings(kafka_bootstrap=kafka.get_bootstrap_server(), data_dir=tmp_path,
                            _env_file=None)

        async def roundtrip() -> bytes:
            await ensure_topics(settings)
            emitter = await Emitter(settings, "t").start()
            event = ev.ComponentMeasured(repo="demo",
                                         scenario="s", commit="c", component="data", ms=1.0)
            await emitter.emit(event, "measurements")
            await emitter.stop()
            consumer = AIOKafkaConsumer(settings.topic("measurements"), group_id="t",
                                        auto_offset_reset="earliest",
                                        **kafka_client_options(settings))
            await consumer.start()
            try:
                message = await asyncio.wait_for(consumer.getone(), 60)
            finally:
                await consumer.stop()
            assert ev.decode(message.value) == event
            return message.value

        assert asyncio.run(roundtrip())


def test_the_ingest_views_store_the_sink_s_rows_on_clickhouse_server() -> None:
    """The views' SQL (``ttfb.store.ingest``) on the server the compose file runs."""
    from testcontainers.clickhouse import ClickHouseContainer

    from tests.integration.test_clickhouse_ingest import TOPIC, events, queued, table, with_views
    from ttfb import events as ev
    from ttfb.settings import Settings
    from ttfb.store import open_store

    with ClickHouseContainer("clickhouse/clickhouse-server:24.8") as ch:
        url = f"http://{ch.get_container_host_ip()}:{ch.get_exposed_port(8123)}"
        os.environ.pop("TTFB_CLICKHOUSE_URL", None)

        def settings(database: str) -> Settings:
            return Settings(clickhouse_url=url, clickhouse_user=ch.username,
                            clickhouse_password=ch.password, clickhouse_database=database,
                            _env_file=None)

        sent = events(seed=7, count=200)
        raw = [ev.encode(e) for e in sent]
        by_sink = open_store(settings("sunk"))
        by_sink.write_batch([(TOPIC, e, r) for e, r in zip(sent, raw, strict=True)])
        by_views = with_views(settings("viewed"))
        queued(by_views, raw + [b"not json"])
        for name in ("events", "runs", "measurements"):
            assert table(by_views, name) == table(by_sink, name), name
