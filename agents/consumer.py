"""The agent's command consumer: one lane per slot and one for ranges'
listings, each running its commands in order, and offsets committed only
once every command up to them has had its effects."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from agents.agent import BEHIND, Agent
from ttfb import metrics

log = logging.getLogger(__name__)


class Offsets:
    """Per partition, the offsets handed out and not yet done: the committed
    offset is the lowest one still in flight, so a crash replays every command
    whose effects may be missing and none whose effects are all out."""

    def __init__(self) -> None:
        self.in_flight: dict[Any, set[int]] = {}
        self.next: dict[Any, int] = {}
        self.committed: dict[Any, int] = {}

    def start(self, tp: Any, offset: int) -> None:
        self.in_flight.setdefault(tp, set()).add(offset)
        self.next[tp] = max(self.next.get(tp, 0), offset + 1)

    def done(self, tp: Any, offset: int) -> None:
        self.in_flight.get(tp, set()).discard(offset)

    def forget(self, partitions: set[Any]) -> None:
        for tp in partitions:
            for table in (self.in_flight, self.next, self.committed):
                table.pop(tp, None)

    def count(self) -> int:
        return sum(len(v) for v in self.in_flight.values())

    def to_commit(self) -> dict[Any, int]:
        """Partitions whose committable offset moved since the last commit."""
        out = {}
        for tp, nxt in self.next.items():
            offset = min(self.in_flight.get(tp) or {nxt})
            if self.committed.get(tp) != offset:
                out[tp] = offset
        return out


# how long a lane waits, after a command of one rank, before it starts one of a
# worse rank (``Lanes``): the folds' next request after a run's events takes a
# fraction of a second (in a demo lab, a better command arrived within 0.5 s
# of a worse one's start 16 times in 345 runs, and waited a run each)
GRACE_S = 1.0

# how long a background run waits behind monitoring at most: then it takes its
# purpose's rank (on an agent whose monitoring never drains it still runs)
BACKGROUND_WAIT_S = 600.0

# a queued command: its rank, its arrival, its partition, its record, and the
# repetition it starts at (after it made way for a command of a better rank)
Queued = tuple[int, int, Any, Any, int]


class Lanes:
    """One queue per slot, and one for ranges' listings after them
    (``Agent.lane``); each lane runs its commands one at a time, by rank
    (``agents.agent.RANKS``: a bisect's runs before a confirmation's, both
    before monitoring), in arrival order within a rank. A command of several
    repetitions makes way between two of them for one of a better rank that
    arrived meanwhile (a commit's monitoring runs for a bisect's): it goes
    back in the queue, to go on from its next repetition, its offset still
    in flight. And a lane whose command of one rank just ended waits up to
    ``grace`` seconds before it starts one of a worse rank: the folds ask
    for a bisect's or a confirmation's next runs a fraction of a second after
    its last one ends, and a monitoring run started meanwhile held them up a
    whole run. A background run (it refines a change already told) waits
    behind monitoring, ``background_wait`` seconds at most."""

    def __init__(self, agent: Agent, offsets: Offsets, grace: float = GRACE_S,
                 background_wait: float = BACKGROUND_WAIT_S) -> None:
        self.agent, self.offsets, self.grace = agent, offsets, grace
        self.background_wait = background_wait
        self.behind_since: dict[int, float] = {}  # a background command's arrival -> when
        lanes = agent.slots + 1
        self.queued: list[list[Queued]] = [[] for _ in range(lanes)]
        self.arrivals = itertools.count()
        self.running: list[tuple[asyncio.Task[int | None], Queued] | None] = [None] * lanes
        # set while a command of a better rank than the lane's running one waits
        # (read between repetitions by the thread that runs them)
        self.better = [threading.Event() for _ in range(lanes)]
        self.stopping = False
        # per lane: the rank of the command that ended last, and when
        self.ended: list[tuple[int, float] | None] = [None] * lanes
        self.timers: list[asyncio.TimerHandle | None] = [None] * lanes

    def put(self, tp: Any, record: Any) -> None:
        self.offsets.start(tp, record.offset)
        slot, rank = self.agent.lane(record.value or b"")
        arrival = next(self.arrivals)
        if rank >= BEHIND:
            self.behind_since[arrival] = time.monotonic()
        heapq.heappush(self.queued[slot], (rank, arrival, tp, record, 0))
        current = self.running[slot]
        if current is not None and rank < current[1][0]:
            self.better[slot].set()

    @property
    def busy(self) -> bool:
        return any(self.running)

    def advance(self) -> None:
        """Retire finished commands and start each idle slot's next one."""
        for slot in range(len(self.queued)):
            self._advance(slot)
        runs = self.agent.slots  # the listings' lane runs no run
        self.agent.running = sum(c is not None for c in self.running[:runs])
        self.agent.queued = sum(len(q) for q in self.queued[:runs])
        metrics.RUNS_RUNNING.set(self.agent.running)
        metrics.RUNS_QUEUED.set(self.agent.queued)

    def _advance(self, slot: int) -> None:
        current = self.running[slot]
        if current is not None and current[0].done():
            task, (rank, arrival, tp, record, _) = current
            resume = None if task.cancelled() else task.result()
            if resume is None:
                self.offsets.done(tp, record.offset)
                self.behind_since.pop(arrival, None)
            elif not self.stopping:  # made way: on from its next repetition
                heapq.heappush(self.queued[slot], (rank, arrival, tp, record, resume))
            self.running[slot] = current = None
            self.ended[slot] = (rank, time.monotonic())
        if current is None and self.queued[slot] and not self.stopping:
            self._bring_forward(slot)
            if self._waits(slot):
                return
            item = heapq.heappop(self.queued[slot])
            self.better[slot].clear()  # nothing queued outranks the queue's first
            task = asyncio.create_task(self._handle(item[3], item[4], self.better[slot].is_set))
            self.running[slot] = (task, item)
            # the slot's next command starts as soon as this one ends, not at the
            # consumer loop's next turn: refusing a flood of junk is not paced by polling
            task.add_done_callback(lambda _: self._advance(slot))

    def _bring_forward(self, slot: int) -> None:
        """Background commands that waited ``background_wait`` take their
        purpose's rank."""
        queue, now = self.queued[slot], time.monotonic()
        due = [i for i, (rank, arrival, *_) in enumerate(queue) if rank >= BEHIND
               and now - self.behind_since.get(arrival, now) >= self.background_wait]
        for i in due:
            rank, arrival, tp, record, first = queue[i]
            queue[i] = (rank - BEHIND, arrival, tp, record, first)
        if due:
            heapq.heapify(queue)

    def _waits(self, slot: int) -> bool:
        """Whether the lane holds its next command back, its grace running:
        the last one ended moments ago and the next is of a worse rank. It
        looks again once the grace is over (a better command arriving
        meanwhile starts at the consumer's next turn)."""
        ended = self.ended[slot]
        if ended is None or self.queued[slot][0][0] <= ended[0]:
            return False
        left = ended[1] + self.grace - time.monotonic()
        if left <= 0:
            return False
        timer = self.timers[slot]
        if timer is None or timer.when() <= asyncio.get_running_loop().time():
            self.timers[slot] = asyncio.get_running_loop().call_later(left, self._advance, slot)
        return True

    async def wait(self, timeout: float) -> None:
        """Until a running command ends, or ``timeout``."""
        tasks = [c[0] for c in self.running if c is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(timeout)

    async def finish(self) -> None:
        """Let the running commands end; the queued ones stay uncommitted."""
        self.stopping = True
        for queue in self.queued:
            queue.clear()
        await asyncio.gather(*(c[0] for c in self.running if c is not None))
        self.advance()

    async def _handle(self, record: Any, first: int,
                      better: Callable[[], bool]) -> int | None:
        """The command's effects; the repetition to go on from where it made
        way for a better rank (None: done)."""
        try:
            return await self.agent.handle(record.value or b"", first=first, yield_to=better)
        except Exception:  # one bad command must never stop the agent
            log.exception("command at offset %s failed", record.offset)
            return None


async def consume(agent: Agent, settings_topic: str, client_options: dict[str, object],
                  group_id: str, stop: asyncio.Event, session_ms: int = 10_000,
                  max_in_flight: int = 256) -> None:
    """Consume commands until ``stop`` is set, each slot's in order; an offset
    is committed once every command up to it has had its effects. On stop, the
    commands already running finish; the queued ones are replayed later."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        settings_topic, group_id=group_id, enable_auto_commit=False,
        auto_offset_reset="earliest", max_poll_interval_ms=3_600_000,
        session_timeout_ms=session_ms, rebalance_timeout_ms=session_ms,
        heartbeat_interval_ms=1_000, **client_options)
    await consumer.start()
    offsets = Offsets()
    lanes = Lanes(agent, offsets)

    async def commit() -> None:
        moved = offsets.to_commit()
        if moved:
            try:
                await consumer.commit(moved)
                offsets.committed.update(moved)
            except Exception:  # a rebalance took a partition: its new owner replays
                log.warning("commit of %s failed", moved, exc_info=True)
                offsets.forget(set(moved) - consumer.assignment())

    try:
        while not stop.is_set():
            lanes.advance()
            await commit()
            room = max_in_flight - offsets.count()
            if room <= 0:
                await lanes.wait(0.2)
                continue
            batch = await consumer.getmany(timeout_ms=200 if lanes.busy else 500,
                                           max_records=room)
            for tp, records in batch.items():
                for record in records:
                    lanes.put(tp, record)
        await lanes.finish()
        await commit()
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
