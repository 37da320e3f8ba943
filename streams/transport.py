"""Faust's aiokafka transport, with the consumer's fetch wait from settings.

Faust builds its worker consumer with ``fetch_max_wait_ms=1500``. A broker
may hold a fetch that finds nothing new for that long, and the embedded one
(Tansu) does even after new records arrive: measured with one aiokafka
consumer, a record took 552 ms (median) to arrive at 1500 ms, 53 ms at 500
and 3 ms at 50. Every hop of a decision (measurement -> fold -> command)
paid it. The consumer here is Faust's, with the wait set by
``Settings.fetch_max_wait_ms``; the cost is an empty fetch per wait while
idle.

It also closes two holes in Faust's rebalance through which a worker that
took over partitions could skip their records until restarted (seen after
a SIGKILLed worker's partitions moved to the survivor,
tests/integration/faults/test_scale_out.py, about one fault-suite run in four):

* Faust asks aiokafka for the records of its live set of active partitions.
  aiokafka waits for records with that set, which a rebalance empties
  meanwhile, and reads an empty set as "all of them": it returns records of
  paused partitions and moves their positions past them, and Faust drops
  them as not active. Observed: positions at the log end (72), committed
  offsets at 42, nothing delivered, for good. The consumer now hands
  aiokafka a copy of the set (Faust itself asks for nothing when it is
  empty at the time of the call).
* When recovery ends, Faust resumes the stream partitions, then seeks them
  to their committed offsets, then resumes the flow, which clears every
  stream's queue. Records fetched in between may be fetched again but
  dropped as already read, or delivered and then cleared unacked. Stream
  partitions resumed while a rebalance is still under way are held, and
  resumed once it has ended, from the offsets the seek set.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

SCHEME = "ttfbkafka"


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by the fetcher aiokafka creates on start(); there is no public setter
        consumer._fetch_max_wait_ms = getattr(self.app, "ttfb_fetch_max_wait_ms", 1500)
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        # aiokafka waits for records with the set it is given; Faust's own set
        # changes meanwhile (a rebalance empties it, and aiokafka reads an empty
        # set as "every partition"), so it gets a copy (the module says why)
        partitions = None if active_partitions is None else set(active_partitions)
        return await super()._getmany(partitions, timeout)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._held: set[TP] = set()  # stream partitions resumed mid-rebalance

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        """Changelog partitions resume at once (recovery reads them); stream
        partitions wait for the rebalance to end (the module says why)."""
        resume = set(tps)
        if self.app.rebalancing:
            held = {tp for tp in resume if not self._is_changelog_tp(tp)}
            self._held.update(held)
            resume -= held
        super().resume_partitions(resume)

    def release_held_partitions(self) -> None:
        """Resume the stream partitions held during the rebalance that just ended."""
        release, self._held = self._held, set()
        if release:
            super().resume_partitions(release)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self._held.difference_update(revoked)
        await super().on_partitions_revoked(revoked)


class App(faust.App):
    """Faust's app, releasing the consumer's held partitions when a rebalance ends."""

    def on_rebalance_end(self) -> None:
        super().on_rebalance_end()
        consumer = self.consumer
        if isinstance(consumer, Consumer):
            consumer.release_held_partitions()


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"


def partition_lag(consumer: Any) -> dict[tuple[str, int], int]:
    """Messages not yet read on each assigned partition. A partition just
    assigned has no highwater until its first fetch: it is left out until then."""
    lag: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        read = consumer._read_offset.get(tp)  # faust keeps no public read position
        committed = consumer._committed_offset.get(tp) or 0
        position = read + 1 if read is not None else committed
        lag[(tp.topic, tp.partition)] = max(0, highwater - position)
    return lag
