"""The lab's consumer lag, as the broker tells it (a real Tansu)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.conftest import clean_settings
from ttfb.bus import EmbeddedBroker, consumer_lag, ensure_topics
from ttfb.settings import Settings

pytestmark = pytest.mark.integration


async def read_and_commit(settings: Settings, group: str, topic: str, count: int) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                                group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        got = 0
        while got < count:
            batch = await consumer.getmany(timeout_ms=2000, max_records=count - got)
            got += sum(len(records) for records in batch.values())
        await consumer.commit()
    finally:
        await consumer.stop()


async def scenario(settings: Settings) -> list[dict[str, object]]:
    from aiokafka import AIOKafkaProducer

    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(settings.topic("commands"), b"x", partition=i % 2)
        for i in range(5):
            await producer.send_and_wait(settings.topic("measurements"), b"x", partition=i % 2)
    finally:
        await producer.stop()
    await read_and_commit(settings, "ttfb-agents-cpu", settings.topic("commands"), 4)
    await read_and_commit(settings, "someone-else", settings.topic("commands"), 10)
    # ClickHouse's Kafka engine, where it reads the measurements itself
    await read_and_commit(settings, settings.clickhouse_group, settings.topic("measurements"), 2)
    return await consumer_lag(settings)


def test_lag_counts_what_each_lab_group_has_not_committed(tmp_path: Path) -> None:
    with EmbeddedBroker() as broker:
        settings = clean_settings(tmp_path, kafka_bootstrap=broker.bootstrap, partitions=2)
        rows = asyncio.run(scenario(settings))
    # a group of another application on the same bus is not the lab's
    assert rows == [{"group": "ttfb-agents-cpu", "topic": "ttfb.commands", "lag": 6, "end": 10},
                    {"group": "ttfb-clickhouse", "topic": "ttfb.measurements", "lag": 3,
                     "end": 5}]
