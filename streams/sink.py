"""The ClickHouse sink: batches of raw messages -> events -> the store.

Pure enough to test without Kafka: ``decode_batch`` turns (topic, bytes)
pairs into events, replacing invalid ones by ``DeadLettered``; ``StoreWriter``
writes with retries and exponential backoff and never gives up on a batch, so
offsets are acked only after the rows are durable. The Faust agent in
``streams.app`` feeds it with bounded batches: while the store is down the
stream stops pulling, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ttfb import events as ev
from ttfb import metrics
from ttfb.settings import Settings
from ttfb.store import Store
from ttfb.store.ingest import left_to_the_sink

log = logging.getLogger(__name__)


@dataclass
class DecodedBatch:
    # (topic, event, the bytes it came as: stored as its payload; None for a
    # dead letter made here)
    items: list[tuple[str, ev.Event, bytes | None]] = field(default_factory=list)
    dead: list[ev.DeadLettered] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)


def decode_batch(messages: Sequence[tuple[str, bytes]], producer: str,
                 deadletter_topic: str, max_bytes: int) -> DecodedBatch:
    """Decode raw messages; invalid ones become dead letters stored with the batch."""
    batch = DecodedBatch()
    for topic, raw in messages:
        try:
            event = ev.decode(raw, max_bytes=max_bytes)
        except ev.EventRejected as exc:
            letter = ev.dead_letter(raw, exc.reason, topic, producer)
            batch.dead.append(letter)
            batch.items.append((deadletter_topic, letter, None))
            continue
        batch.items.append((topic, event, raw))
    return batch


def leave_to_clickhouse(batch: DecodedBatch, measurements_topic: str) -> DecodedBatch:
    """The batch without the events ClickHouse ingests itself
    (``TTFB_CLICKHOUSE_KAFKA_INGEST``): dead letters stay, and so does any
    event its views would not take as sent."""
    kept = [item for item in batch.items if left_to_the_sink(*item, measurements_topic)]
    return DecodedBatch(items=kept, dead=batch.dead)


class StoreWriter:
    """Writes batches to the store, retrying with backoff until they land."""

    def __init__(self, open_store: Callable[[], Store], max_delay: float = 10.0) -> None:
        self._open = open_store
        self._store: Store | None = None
        self.max_delay = max_delay
        self.written = 0
        self.retries = 0
        # the writes in order, one at a time, on one thread of their own
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ttfb-sink")

    def _write_sync(self, batch: DecodedBatch) -> int:
        if self._store is None:
            self._store = self._open()
        return self._store.write_batch(batch.items)  # one store session a batch, or the held one

    def close(self) -> None:
        """Let go of the store (a held session's lock with it)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    async def write(self, batch: DecodedBatch, stop: Callable[[], bool] = lambda: False) -> int:
        delay = 0.1
        while True:
            try:
                fresh = await asyncio.get_running_loop().run_in_executor(
                    self._thread, self._write_sync, batch)
                self.written += fresh
                return fresh
            except Exception as exc:
                if stop():
                    raise
                self.retries += 1
                if self._store is not None:  # reopen: the server may have restarted
                    with contextlib.suppress(Exception):
                        self._store.close()  # a held session's lock is released now
                self._store = None
                log.warning("store write failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay)


DeadLetter = Callable[[ev.DeadLettered], Awaitable[None]]


async def store_batch(messages: Sequence[tuple[str, bytes]], settings: Settings,
                      writer: StoreWriter, dead_letter: DeadLetter,
                      stop: Callable[[], bool]) -> None:
    """A batch of (topic, bytes) into the store, durably, then its dead
    letters onto the bus: the caller acks the batch after this returns."""
    for topic, count in Counter(topic for topic, _ in messages).items():
        metrics.EVENTS_IN.labels(topic).inc(count)
    decoded = decode_batch(messages, f"{settings.topic_prefix}-sink",
                           settings.topic("deadletter"), settings.max_event_bytes)
    stored = leave_to_clickhouse(decoded, settings.topic("measurements")) \
        if settings.clickhouse_kafka_ingest else decoded
    await writer.write(stored, stop=stop)
    for letter in decoded.dead:
        metrics.DEAD_LETTERS.labels("sink").inc()
        log.warning("dead letter from %s: %s", letter.source_topic, letter.reason)
        await dead_letter(letter)
