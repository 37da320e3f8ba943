"""The store's lock held far longer than a write may wait: the sink retries, loses nothing.

A test process takes chDB's cross-process lock and keeps it while events
stream in. Every write of the sink times out (after 1 s here) and is retried
with backoff; offsets are not acked, so the worker pulls no more than its
bounded batches and its memory stays flat. When the lock is released, every
event lands exactly once.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from pathlib import Path

from tests.integration.conftest import (
    clean_settings,
    emit_measurements,
    start_streams_worker,
    wait_until,
)
from ttfb import events as ev
from ttfb.bus import EmbeddedBroker, ensure_topics
from ttfb.store import open_store


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_store_lock_held_for_long_loses_nothing(tmp_path: Path) -> None:
    broker = EmbeddedBroker().start()
    settings = clean_settings(tmp_path, kafka_bootstrap=broker.bootstrap,
                              store_lock_timeout_s=1.0)
    asyncio.run(ensure_topics(settings))
    store = open_store(settings, lock_timeout=60.0)
    worker = start_streams_worker(settings, tmp_path / "worker.log", TTFB_LOG_LEVEL="WARNING")
    first = [ev.ComponentMeasured(repo="demo",
                                  scenario=f"lock{i % 4}", commit=f"c{i}", component="data",
                                  ms=float(i + 1)) for i in range(20)]
    held = [ev.ComponentMeasured(repo="demo",
                                 scenario=f"lock{i % 4}", commit=f"h{i}", component="data",
                                 ms=float(i + 1)) for i in range(3000)]

    def stored() -> int:
        rows = store.query("SELECT uniqExact(event_id) AS u FROM ttfb.measurements"
                           " WHERE scenario LIKE 'lock%'")
        return int(rows[0]["u"])

    try:
        asyncio.run(emit_measurements(settings, "lock-agent", first))
        wait_until(lambda: stored() == len(first), timeout=120)  # the worker is live
        baseline_rss = rss_mb(worker.pid)
        fd = os.open(settings.chdb_path.parent / f"{settings.chdb_path.name}.lock",
                     os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            asyncio.run(emit_measurements(settings, "lock-agent", held))
            time.sleep(12)  # several write attempts time out meanwhile
            assert worker.poll() is None, "the worker must wait, not die"
            peak_rss = rss_mb(worker.pid)
        finally:
            os.close(fd)  # releases the lock
        wait_until(lambda: stored() == len(first) + len(held), timeout=120)
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert "store write failed" in log, "the sink must have retried"
        rows = store.query("SELECT count() AS n FROM ttfb.events WHERE scenario LIKE 'lock%'")
        assert int(rows[0]["n"]) == len(first) + len(held), "no event may be stored twice"
        # bounded: 3,000 events waiting in the topic do not pile up in the worker
        assert peak_rss - baseline_rss < 150, (baseline_rss, peak_rss)
    finally:
        worker.terminate()
        worker.wait(30)
        broker.stop()
