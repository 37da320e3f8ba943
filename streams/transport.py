"""Faust's aiokafka transport, with the consumer's fetch wait from settings.

Faust builds its worker consumer with ``fetch_max_wait_ms=1500``. A broker
may hold a fetch that finds nothing new for that long, and the embedded one
(Tansu) does even after new records arrive: measured with one aiokafka
consumer, a record took 552 ms (median) to arrive at 1500 ms, 53 ms at 500
and 3 ms at 50. Every hop of a decision (measurement -> fold -> command)
paid it. The consumer here is Faust's, with the wait set by
``Settings.fetch_max_wait_ms``; the cost is an empty fetch per wait while
idle.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

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


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
