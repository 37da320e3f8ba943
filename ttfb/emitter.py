"""The aiokafka emitter, with an fsync'd disk spool for broker outages.

When a send fails the event is appended to the spool (one JSON line: topic,
key, base64 value) and fsync'd. While the spool holds anything, new events go
behind it too, so order is kept; a background task replays the spool in order
once the broker answers, then truncates it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from ttfb.bus import kafka_client_options
from ttfb.events import Event, encode
from ttfb.settings import Settings

log = logging.getLogger(__name__)


class Spool:
    """Append-only, fsync'd file of events waiting for the broker."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, topic: str, key: bytes | None, value: bytes) -> None:
        line = json.dumps({"topic": topic, "key": (key or b"").decode(),
                           "value": base64.b64encode(value).decode()}) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[tuple[str, bytes, bytes]]:
        if not self.path.exists():
            return []
        entries = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
            except ValueError:  # a torn last line from a crash mid-append
                continue
            entries.append((item["topic"], item["key"].encode(), base64.b64decode(item["value"])))
        return entries

    def drop_first(self, count: int) -> None:
        """Remove the first ``count`` entries (they were delivered)."""
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.writelines(lines[count:])
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, encoding="utf-8") as handle:
            return sum(1 for _ in handle)


class Emitter:
    """Send events to topics; never loses one to a broker outage."""

    def __init__(self, settings: Settings, name: str, request_timeout_ms: int = 5000) -> None:
        self.settings = settings
        self.name = name
        self.spool = Spool(settings.spool_dir / f"{name}.jsonl")
        self.request_timeout_ms = request_timeout_ms
        self._producer: Any = None
        self._replayer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.sent = 0
        self.spooled = 0

    async def start(self) -> Emitter:
        await self._connect()
        if len(self.spool):
            self._ensure_replayer()
        return self

    async def _connect(self) -> bool:
        from aiokafka import AIOKafkaProducer

        if self._producer is not None:
            return True
        producer = AIOKafkaProducer(
            **kafka_client_options(self.settings), acks="all",
            request_timeout_ms=self.request_timeout_ms, linger_ms=5,
            max_request_size=self.settings.max_event_bytes * 2,
        )
        try:
            await producer.start()
        except Exception as exc:
            log.warning("%s: broker unreachable (%s); spooling", self.name, exc)
            with contextlib.suppress(Exception):
                await producer.stop()
            return False
        self._producer = producer
        return True

    async def emit(self, event: Event, topic: str) -> None:
        """Send one event (key = its scenario) or spool it."""
        await self.send_raw(self.settings.topic(topic), event.key.encode(), encode(event))

    async def send_raw(self, topic: str, key: bytes | None, value: bytes) -> None:
        async with self._lock:
            if len(self.spool) == 0 and await self._try_send(topic, key, value):
                return
            self._spool(topic, key, value)

    def _spool(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Keep an event the broker did not take; the replayer sends it later."""
        self.spool.append(topic, key, value)
        self.spooled += 1
        self._ensure_replayer()

    async def emit_soon(self, event: Event, topic: str) -> None:
        """Send one event without waiting for the broker's acknowledgement: for
        events whose order does not matter (dead letters), so that a flood of
        them is sent in batches. One that fails is spooled when it fails."""
        value, key = encode(event), event.key.encode()
        full_topic = self.settings.topic(topic)
        if len(self.spool) or not await self._connect():
            await self.send_raw(full_topic, key, value)
            return
        try:
            delivery = await self._producer.send(full_topic, value, key=key)
        except Exception:
            await self.send_raw(full_topic, key, value)
            return

        def settled(done: asyncio.Future[Any]) -> None:
            if done.cancelled() or done.exception() is not None:
                self._spool(full_topic, key, value)
            else:
                self.sent += 1

        delivery.add_done_callback(settled)

    async def _try_send(self, topic: str, key: bytes | None, value: bytes) -> bool:
        if not await self._connect():
            return False
        try:
            await self._producer.send_and_wait(topic, value, key=key)
        except Exception as exc:
            log.warning("%s: send to %s failed (%s); spooling", self.name, topic, exc)
            return False
        self.sent += 1
        return True

    def _ensure_replayer(self) -> None:
        if self._replayer is None or self._replayer.done():
            self._replayer = asyncio.get_running_loop().create_task(self._replay())

    async def _replay(self, pause: float = 0.5) -> None:
        while True:
            async with self._lock:
                entries = self.spool.read()
                delivered = 0
                for topic, key, value in entries:
                    if not await self._try_send(topic, key or None, value):
                        break
                    delivered += 1
                if delivered:
                    self.spool.drop_first(delivered)
                if delivered == len(entries):
                    log.info("%s: spool replayed (%d events)", self.name, delivered)
                    return
            await asyncio.sleep(pause)

    async def flush(self, timeout: float = 60.0) -> bool:
        """Wait until the spool is empty; False if it is not within ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.spool):
            self._ensure_replayer()
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def stop(self) -> None:
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._replayer
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None


async def emit_all(settings: Settings, name: str, events: list[tuple[Event, str]]) -> None:
    """Send (event, topic) pairs with a short-lived emitter; waits until delivered or spooled."""
    emitter = await Emitter(settings, name).start()
    try:
        for event, topic in events:
            await emitter.emit(event, topic)
        await emitter.flush()
    finally:
        await emitter.stop()
