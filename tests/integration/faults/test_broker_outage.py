"""Broker stopped and restarted mid-stream: spool, replay, every event exactly once.

The embedded Tansu keeps everything in memory, Faust's table changelogs
included, so after it restarts the streams worker is restarted too (its
durable effects are in the store); against Apache Kafka the changelogs survive
and the worker reconnects by itself.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.integration.conftest import clean_settings, start_streams_worker, wait_until
from ttfb import events as ev
from ttfb.bus import EmbeddedBroker, ensure_topics
from ttfb.emitter import Emitter
from ttfb.store import open_store


def test_outage_is_spooled_and_replayed_exactly_once(tmp_path: Path) -> None:
    broker = EmbeddedBroker().start()
    settings = clean_settings(tmp_path, kafka_bootstrap=broker.bootstrap)
    asyncio.run(ensure_topics(settings))
    store = open_store(settings)
    def start_worker() -> subprocess.Popen[bytes]:
        return start_streams_worker(settings, tmp_path / "worker.log")

    worker = start_worker()
    events = [ev.ComponentMeasured(repo="demo", scenario=f"outage{i % 4}", commit=f"c{i}",
                                   component="data", ms=float(i + 1)) for i in range(150)]
    try:
        def stored() -> int:
            rows = store.query("SELECT uniqExact(event_id) AS u FROM ttfb.measurements"
                               " WHERE scenario LIKE 'outage%'")
            return int(rows[0]["u"])

        async def stream() -> tuple[int, int]:
            emitter = await Emitter(settings, "outage-agent", request_timeout_ms=2000).start()
            for i, event in enumerate(events):
                if i == 50:
                    # the streams worker is live and storing; then the broker dies
                    await asyncio.to_thread(wait_until, lambda: stored() == 50, 120)
                    broker.stop()
                if i == 110:
                    restarted = EmbeddedBroker(port=broker.port).start()
                    await ensure_topics(settings)
                    broker.process = restarted.process
                    nonlocal worker
                    stop(worker)
                    worker = start_worker()
                await emitter.emit(event, "measurements")
            assert await emitter.flush(timeout=120), "spool never drained"
            await emitter.stop()
            return emitter.sent, emitter.spooled

        sent, spooled = asyncio.run(stream())
        assert spooled >= 60, "events during the outage must have been spooled"
        assert len(Emitter(settings, "outage-agent").spool) == 0

        wait_until(lambda: stored() == len(events), timeout=90)
        rows = store.query("SELECT count() AS n FROM ttfb.measurements FINAL"
                           " WHERE scenario LIKE 'outage%'")
        assert int(rows[0]["n"]) == len(events)
        raw = store.query("SELECT count() AS n FROM ttfb.events WHERE scenario LIKE 'outage%'")
        assert int(raw[0]["n"]) == len(events), "no event may be stored twice"
    finally:
        try:
            stop(worker)
        finally:
            broker.stop()


def stop(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s, as `ttfb up` stops its processes. A
    worker asked to stop while its broker was away can take over 30 s
    (aiokafka's fetcher closes through its retry back-off); its durable
    effects are in the store either way."""
    worker.terminate()
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(30)
