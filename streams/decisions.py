"""Faust wiring of the decision folds: decode, decide, emit.

Detection state lives in a Faust table keyed by scenario (messages are keyed
by scenario, so the table is co-partitioned and one worker owns a scenario);
its changelog brings it back after a worker restart. Events are folded in
batches, and a batch's offsets are acked only after its outputs and the
states it led to are acknowledged by the broker. Commands the fold asks for
are signed here, at the edge, before they go on the bus.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, cast

import faust

from streams.bisect import BisectBook, BisectPolicy
from streams.detection import (
    Policy,
    ScenarioState,
    calibration_answer,
)
from streams.fold import NOT_FOLDED_TYPES, fold_event, pin_ids
from streams.packing import pack, unpack
from streams.transport import partition_lag
from ttfb import events as ev
from ttfb import metrics
from ttfb.process import die_with_parent
from ttfb.settings import STREAMS_TABLES, Settings
from ttfb.signing import sign

log = logging.getLogger(__name__)

# outputs made for every commit tested and every step of a search: the
# worker's log names only the others (a line a commit is noise in a busy lab),
# and they go to the records topic, which the folds do not read
ROUTINE = (ev.CommitTested, ev.BisectProgressed)

ROUTES: dict[type[ev.Event], str] = {
    ev.RunRequested: "commands", ev.CommitRangeRequested: "commands", ev.Alert: "alerts",
    ev.CalibrationRequested: "calibration", ev.ThresholdCalibrated: "calibration",
    ev.BisectCompleted: "bisect", ev.ScenarioBroken: "alerts",
    **dict.fromkeys(ROUTINE, "records"),
}


def topic_for(event: ev.Event) -> str:
    return ROUTES.get(type(event), "detections")


def decoded(raw: bytes | None, max_bytes: int,
            skip: tuple[bytes, ...] = ()) -> ev.Event | None:
    """The event in ``raw``, or None for bytes the sink dead-letters (and for
    the types in ``skip``, recognised without decoding: a run streams a
    ``ComponentMeasured`` per phase, which the folds never read)."""
    raw = raw or b""
    if any(marker in raw for marker in skip):
        return None
    try:
        return ev.decode(raw, max_bytes=max_bytes)
    except ev.EventRejected:
        return None


# In the encoded JSON the type is a string value; one inside another string
# would have its quotes escaped, so this cannot match a different event.
NOT_FOLDED = tuple(f'"type":"{name}"'.encode() for name in NOT_FOLDED_TYPES)


class StateCache:
    """Decoded fold states, kept in the worker between events.

    The table holds the encoded state, the truth that its changelog
    restores; decoding and re-encoding a scenario's state for every event
    was most of the fold's cost. An entry is used only while the table still
    holds the very value it was decoded from: after a rebalance or a
    recovery the table's values are new objects, and the entry is decoded
    again. The least recently used entries beyond ``limit`` are dropped (and
    decoded again if their scenario comes back): the scenario names arriving
    on the bus bound nothing.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._entries: OrderedDict[str, tuple[Any, ScenarioState, BisectBook]] = OrderedDict()

    def load(self, table: Any, scenario: str) -> tuple[ScenarioState, BisectBook]:
        stored = table.get(scenario)
        hit = self._entries.get(scenario)
        if hit is not None and hit[0] is stored:
            return hit[1], hit[2]
        return unpack(stored)

    def keep(self, scenario: str, stored: Any, detector: ScenarioState,
             book: BisectBook) -> None:
        self._entries[scenario] = (stored, detector, book)
        self._entries.move_to_end(scenario)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


Emit = Callable[[ev.Event], Awaitable[Any]]


async def send_now(topic: Any, key: bytes, value: bytes,
                   partition: int | None = None) -> Awaitable[Any]:
    """Send bytes through the app's producer; returns the future of the
    broker's acknowledgement. ``Topic.send`` gets its producer through
    ``app.maybe_start_producer``, whose stampede guard yields to the event
    loop three times a message: for a worker folding a backlog that was
    half the time of the fold's loop."""
    app = topic.app
    producer = app.producer if app.producer.started else await app.maybe_start_producer()
    return cast(Awaitable[Any], await producer.send(
        topic.get_topic_name(), key, value, partition=partition, timestamp=None, headers=None))


def send_changelog(table: Any, partition: int, key: str, value: bytes) -> Awaitable[Any]:
    """A table's changelog record, serialised as ``Table.send_changelog``
    would; sent now, not through Faust's producer buffer (``send_now``)."""
    topic = table.changelog_topic
    key_bytes, _ = topic.prepare_key(key, table.key_serializer)
    value_bytes, _ = topic.prepare_value(value, table.value_serializer)
    return send_now(topic, key_bytes, value_bytes, partition)


def emitter(topics: dict[str, Any], settings: Settings) -> Emit:
    """Signs commands, tags the worker, sends; returns the future of the
    broker's acknowledgement."""
    key = settings.signing_key.get_secret_value()
    worker = f"{socket.gethostname()}:{os.getpid()}"

    async def emit(event: ev.Event) -> Any:
        # which worker decided: operators see how scenarios are spread over workers
        event = event.model_copy(update={"producer": f"{event.producer}@{worker}"})
        if isinstance(event, ev.Signed):
            event = sign(event, key)
        topic = topic_for(event)
        metrics.EVENTS_OUT.labels(topic).inc()
        return await send_now(topics[topic], event.key.encode(), ev.compact(event))

    return emit


class Folds:
    """The detection and bisect folds of every scenario a worker owns."""

    def __init__(self, table: Any, policy: Policy, emit: Emit, max_bytes: int) -> None:
        self.table, self.policy, self.emit, self.max_bytes = table, policy, emit, max_bytes
        self.bisect_policy = BisectPolicy()
        self.cache = StateCache()
        self.rebuilt: dict[str, tuple[ScenarioState, BisectBook]] = {}
        self.ready = asyncio.Event()  # set once the state is rebuilt (or needs no rebuild)

    def fold(self, scenario: str, event: ev.Event, detector: ScenarioState,
             book: BisectBook) -> tuple[ScenarioState, BisectBook, list[ev.Event]]:
        detector, book, out = fold_event(event, detector, book, self.policy, self.bisect_policy)
        # a line for what a person acts on, not for each commit tested or search step
        said = [type(e).__name__ for e in out if not isinstance(e, ROUTINE)]
        if said:
            log.info("%s: %s", scenario, ", ".join(said))
        return detector, book, out

    def load(self, scenario: str) -> tuple[ScenarioState, BisectBook]:
        """A scenario's state: the table's, or the one rebuilt from the store
        while the table has none (the first batch that touches it writes it)."""
        if scenario in self.rebuilt and self.table.get(scenario) is None:
            return self.rebuilt.pop(scenario)
        return self.cache.load(self.table, scenario)

    async def batch(self, messages: list[Any]) -> None:
        """Fold every event, write each changed scenario's state once, and
        return only when the outputs and the new states are on the broker."""
        started = time.perf_counter()
        try:
            delivered = []
            changed: dict[str, tuple[int, ScenarioState, BisectBook]] = {}
            for message in messages:
                event = decoded(message.value, self.max_bytes, NOT_FOLDED)
                scenario: str = getattr(event, "scenario", "")  # (a str where there is one)
                if event is None or not scenario:
                    continue
                detector, book = changed[scenario][1:] if scenario in changed \
                    else self.load(scenario)
                detector, book, out = self.fold(scenario, event, detector, book)
                changed[scenario] = (message.partition, detector, book)
                delivered += [await self.emit(produced) for produced in out]
            for scenario, (partition, detector, book) in changed.items():
                stored = pack(detector, book)
                self.table.data[scenario] = stored
                delivered.append(await send_changelog(self.table, partition, scenario, stored))
                self.cache.keep(scenario, stored, detector, book)
            await asyncio.gather(*delivered)
            metrics.FOLD_SECONDS.observe(time.perf_counter() - started)
        except BaseException:
            self.cache.clear()  # states changed in place that may not be durable
            raise


WINDOW_S = 0.02  # what the stream hands over at once (to ``Gathering``)


def behind(consumer: Any, topics: set[str]) -> bool:
    """Whether a partition of ``topics`` holds messages the worker has not
    read (not the changelog's, which the worker writes and reads only to
    recover)."""
    return any(lag for (topic, _), lag in partition_lag(consumer).items() if topic in topics)


class Gathering:
    """Events taken from the stream and not folded yet: folded at once where
    the folds' partitions hold nothing more, gathered into one batch behind a
    backlog (``size`` events or ``seconds`` at most). A batch's events are
    acked once its effects are durable: a crash before that replays it from
    the last durable state, and the outputs it emits again carry the same ids."""

    def __init__(self, folds: Folds, size: int, seconds: float) -> None:
        self.folds, self.size, self.seconds = folds, size, seconds
        self.items: list[Any] = []
        self.began = 0.0
        self.stream: Any = None
        self._lock = asyncio.Lock()

    async def add(self, stream: Any, chunk: list[Any], backlog: bool) -> None:
        self.stream = stream
        if not self.items:
            self.began = time.monotonic()
        self.items += chunk
        if backlog and len(self.items) < self.size and not self.overdue():
            return  # more of the backlog in this batch: one state write a scenario
        await self.flush()

    def overdue(self) -> bool:
        return bool(self.items) and time.monotonic() - self.began >= self.seconds

    async def flush(self) -> None:
        async with self._lock:
            batch, self.items = self.items, []
            if not batch:
                return
            await self.folds.ready.wait()
            await self.folds.batch([item.message for item in batch])
            for item in batch:
                await self.stream.ack(item)


def register_decisions(app: faust.App, settings: Settings,
                       topics: dict[str, Any]) -> None:
    """The decision agent (detection and bisect folds over measurements,
    detections, bisect and calibration answers) and the calibration agent."""
    # value_type bytes: the raw serializer (pack() encodes); a schema's
    # serializer would not reach the changelog's recovery, which decoded JSON
    table = app.Table(STREAMS_TABLES[0], partitions=settings.partitions, key_type=str,
                      value_type=bytes)
    policy = Policy(dashboard_url=settings.public_url())
    emit = emitter(topics, settings)
    folds = Folds(table, policy, emit, settings.max_event_bytes)
    app.ttfb_folds = folds  # type: ignore[attr-defined]
    source = app.topic(settings.topic("measurements"), settings.topic("detections"),
                       settings.topic("bisect"), settings.topic("calibration"),
                       key_serializer="raw", value_serializer="raw")
    window = min(WINDOW_S, settings.decide_batch_seconds)
    gathering = Gathering(folds, settings.decide_batch_size, settings.decide_batch_seconds)

    @app.agent(source, name="ttfb-decisions")
    async def decisions(stream: faust.StreamT) -> None:
        take = stream.noack_take  # type: ignore[attr-defined]  # faust-streaming >= 0.11
        read = set(source.topics)
        async for chunk in take(settings.decide_batch_size, within=window):
            await gathering.add(stream, chunk, behind(app.consumer, read))

    @app.timer(max(window, settings.decide_batch_seconds / 2))
    async def fold_overdue() -> None:
        """What a backlog's end left gathered: the stream hands no more over."""
        if gathering.overdue():
            await gathering.flush()

    register_calibration(app, settings, topics, emit, policy)
    register_rebuild(app, settings, folds)


def register_rebuild(app: faust.App, settings: Settings, folds: Folds) -> None:
    """With ``rebuild_state``, fold the store's event log into the state before
    the first batch, and send again what the lost lab never delivered; then
    checkpoint the state every ``checkpoint_every_s`` (``streams.checkpoint``)."""
    if not settings.rebuild_state:
        folds.ready.set()
        return
    from streams.rebuild import Rebuilt, open_for_rebuild, rebuild_from_store

    def from_store() -> tuple[Rebuilt, list[ev.Event]]:
        store = open_for_rebuild(settings)
        try:
            return rebuild_from_store(store, settings, folds.policy, settings.checkpoint_lag_s)
        finally:
            store.close()

    @app.task
    async def rebuild() -> None:
        try:
            rebuilt, again = await asyncio.to_thread(from_store)
        except Exception:
            # deciding from an empty state would lose every baseline: stop, loudly
            log.exception("rebuilding the decision state from the store failed")
            os._exit(3)
        folds.rebuilt = rebuilt.states
        folds.ready.set()
        log.info("rebuilt %d scenario state(s) from %d stored events%s (%.2fs folding them, "
                 "%d commit test(s) taken from their records); sending again %d output(s) the "
                 "store holds no answer to", len(rebuilt.states), rebuilt.events,
                 f" after the checkpoint at {rebuilt.since[0]}" if rebuilt.since else "",
                 rebuilt.seconds, rebuilt.recorded, len(again))
        for output in again:
            await (await folds.emit(output))

    if settings.checkpoint_every_s > 0:
        @app.timer(settings.checkpoint_every_s)
        async def checkpoint() -> None:
            if not folds.ready.is_set():
                return
            try:  # folded from the newest checkpoint, apart from the live state
                await asyncio.to_thread(from_store)
            except Exception:  # the store is busy or down: the next one tries again
                log.exception("checkpointing the decision state failed")


def register_calibration(app: faust.App, settings: Settings, topics: dict[str, Any],
                         emit: Emit, policy: Policy) -> None:
    """Answers calibration requests in a worker process, off the fold's path."""
    calibrations = _CalibrationPool()

    @app.agent(topics["calibration"], name="ttfb-calibration")
    async def calibration(stream: faust.StreamT) -> None:
        async for raw in stream:
            request = decoded(raw, settings.max_event_bytes)
            if not isinstance(request, ev.CalibrationRequested):
                continue
            answer = await calibrations.answer(request, policy)
            await (await emit(pin_ids([answer], request)[0]))  # on the broker before the ack

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stop_pool(app: faust.App, **kwargs: Any) -> None:
        calibrations.close()


class _CalibrationPool:
    """One process for calibrations (seconds of CPU each), started on first use."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def answer(self, request: ev.CalibrationRequested,
                     policy: Policy) -> ev.ThresholdCalibrated:
        if self._pool is None:
            # a worker killed with SIGKILL must not leave its calibration process behind,
            # even one it spawned a moment before (the parent's pid: see die_with_parent)
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=die_with_parent,
                                             initargs=(signal.SIGKILL, os.getpid()))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, calibration_answer, request, policy)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
