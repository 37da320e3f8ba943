"""The sink as a process of its own: ``python -m streams.sink_service``.

With ``sink_apart`` the streams worker leaves the store's writes to this
process: a plain consumer group (``Settings.sink_group``) over every topic.
A batch (up to ``sink_batch_size`` messages, or what came within
``sink_batch_seconds`` of its first) goes through ``store_batch``: stored in
one store session, its dead letters sent; only then are its offsets
committed, so a crash replays what may not be stored, and the store drops
what was. Run inside the worker, the sink had every message handed to it by
Faust beside the folds, on the worker's one thread: the two now run on cores
of their own, and the sink's consumer costs a fraction of Faust's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from typing import Any

from streams.sink import StoreWriter, store_batch
from ttfb import events as ev
from ttfb import metrics
from ttfb.bus import consumer_options, kafka_client_options, run_until_signalled, wait_for_bus
from ttfb.process import exit_with_lab
from ttfb.settings import Settings
from ttfb.store import ingest, open_store

log = logging.getLogger(__name__)

LAG_EVERY_S = 5.0


async def take(consumer: Any, size: int, within: float,
               stop: asyncio.Event) -> list[tuple[Any, Any]]:
    """Up to ``size`` (partition, record) pairs: what came within ``within``
    seconds of the first; empty when ``stop`` is set before any came."""
    loop = asyncio.get_running_loop()
    got: list[tuple[Any, Any]] = []
    deadline: float | None = None
    while len(got) < size and not stop.is_set():
        wait = 0.2 if deadline is None else deadline - loop.time()
        if wait <= 0:
            break
        fetched = await consumer.getmany(timeout_ms=max(1, int(wait * 1000)),
                                         max_records=size - len(got))
        for tp, records in fetched.items():
            got += [(tp, record) for record in records]
        if got and deadline is None:
            deadline = loop.time() + within
    return got


async def partition_lag(consumer: Any, done: dict[Any, int]) -> dict[tuple[str, int], int]:
    """Messages not yet stored on each assigned partition (one not fetched
    from yet has no highwater, and is left out until then)."""
    lag = {}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        at = done.get(tp)
        if at is None:
            at = await consumer.position(tp)
        lag[(tp.topic, tp.partition)] = max(0, highwater - at)
    return lag


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Store every topic's messages until ``stop``."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.errors import KafkaError

    consumer = AIOKafkaConsumer(
        *settings.all_topics(), group_id=settings.sink_group, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=settings.max_event_bytes * 2,
        session_timeout_ms=int(settings.group_session_timeout_s * 1000),
        heartbeat_interval_ms=1000, **consumer_options(settings))
    producer = AIOKafkaProducer(max_request_size=settings.max_event_bytes * 2,
                                **kafka_client_options(settings))
    writer = StoreWriter(lambda: open_store(settings, hold_s=settings.sink_hold_s))

    async def dead_letter(letter: ev.DeadLettered) -> None:
        await producer.send_and_wait(settings.topic("deadletter"), key=letter.key.encode(),
                                     value=ev.encode(letter))

    metrics.serve(settings.metrics_host, settings.sink_metrics_port, lambda: not stop.is_set())
    await producer.start()
    await consumer.start()
    done: dict[Any, int] = {}  # per partition, the next offset to store
    measured = time.monotonic()
    try:
        while not stop.is_set():
            batch = await take(consumer, settings.sink_batch_size,
                               settings.sink_batch_seconds, stop)
            if batch:
                try:
                    await store_batch([(tp.topic, record.value or b"") for tp, record in batch],
                                      settings, writer, dead_letter, stop=stop.is_set)
                except Exception:
                    if stop.is_set():  # stopped while the store was down: stored after a start
                        return
                    raise
                offsets: dict[Any, int] = {}
                for tp, record in batch:
                    offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
                done.update(offsets)
                try:
                    await consumer.commit(offsets)
                except KafkaError as exc:  # a rebalance took them: their new owner
                    log.warning("sink: offsets not committed (%s); stored again by their owner",
                                exc)
            if time.monotonic() - measured > LAG_EVERY_S:
                measured = time.monotonic()
                for (topic, partition), behind in (await partition_lag(consumer, done)).items():
                    metrics.CONSUMER_LAG.labels(topic, str(partition)).set(behind)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await producer.stop()
        writer.close()


def main() -> int:
    """Run the sink until SIGTERM/SIGINT."""
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sink %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(settings.log_level)
    missing = ingest.views_missing(settings)
    if missing:
        print(f"sink: {missing}", file=sys.stderr)
        return 2
    exit_with_lab()
    wait_for_bus(settings)
    run_until_signalled(run, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
