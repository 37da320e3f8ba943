"""The sink's own process (``sink_apart``) SIGKILLed mid-burst: the next one
stores what it had not, and nothing twice.

A burst of monitoring runs and one message that is no event go to the
measurements topic while a sink process stores them in small batches; a
third of the way in it is killed with SIGKILL (no clean shutdown, no final
commit) and another is started. Every run ends up in the store exactly once,
the bad message as one dead letter, and the sink's group has committed the
end of every partition it read.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from tests.integration.conftest import clean_settings, group_offsets, stop_groups, wait_until
from tests.integration.faults.test_sigkill_under_load import burst
from ttfb.bus import EmbeddedBroker, ensure_topics, kafka_client_options
from ttfb.emitter import Emitter
from ttfb.settings import Settings
from ttfb.store import open_store, queries


def start_sink(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "streams.sink_service"],
                            env={**os.environ, **settings.to_env()},
                            stdout=open(log, "ab"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, start_new_session=True)


async def send(settings: Settings) -> None:
    from aiokafka import AIOKafkaProducer

    emitter = await Emitter(settings, "load-agent").start()
    for i, event in enumerate(burst(np.random.default_rng(9))):
        await emitter.emit(event, "measurements")
        if i == 200:  # bytes that are no event, among the runs
            producer = AIOKafkaProducer(**kafka_client_options(settings))
            await producer.start()
            await producer.send_and_wait(settings.topic("measurements"), b"not an event",
                                         key=b"load0")
            await producer.stop()
    assert await emitter.flush(timeout=60)
    await emitter.stop()


def test_a_sink_killed_mid_burst_stores_every_event_once(tmp_path: Path) -> None:
    broker = EmbeddedBroker().start()
    settings = clean_settings(tmp_path, kafka_bootstrap=broker.bootstrap, sink_apart=True,
                              sink_batch_size=50, sink_batch_seconds=0.02,
                              sink_metrics_port=0)
    asyncio.run(ensure_topics(settings))
    store = open_store(settings)
    total = len(burst(np.random.default_rng(9)))

    def stored() -> tuple[int, int]:
        row = store.query("SELECT count() AS n, uniqExact(event_id) AS ids FROM ttfb.runs"
                          " WHERE scenario LIKE 'load%'")[0]
        return int(row["n"]), int(row["ids"])

    first = start_sink(settings, tmp_path / "sink1.log")
    second: subprocess.Popen[bytes] | None = None
    sending = threading.Thread(target=lambda: asyncio.run(send(settings)))
    try:
        sending.start()
        wait_until(lambda: stored()[0] >= total // 3, timeout=180)
        assert stored()[0] < total, "the burst was stored before the kill"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        sending.join(120)
        second = start_sink(settings, tmp_path / "sink2.log")
        wait_until(lambda: stored()[0] >= total, timeout=180)

        def committed() -> bool:
            offsets = asyncio.run(group_offsets(settings, settings.sink_group,
                                                settings.topic("measurements")))
            return all(done == end for done, end in offsets.values())

        wait_until(committed, timeout=60)
        assert stored() == (total, total)  # every run, none twice
        letters = [d for d in queries.dead_letters(store)
                   if d["source_topic"] == settings.topic("measurements")]
        assert len(letters) == 1, letters
    finally:
        if sending.ident is not None:
            sending.join(120)
        stop_groups(first, second, timeout=30)
        broker.stop()
    assert second is not None and second.returncode == 0  # SIGTERM: a clean stop
