"""A worker SIGKILLed in the middle of a burst loses and doubles no event.

Earlier, two workers on the embedded broker and one SIGKILL left a table
that had counted 419 of the 420 events of one key: Faust can commit a
source offset before the changelog record of the change it caused is on the
broker. The decision agent now acks a batch only once its outputs and state
writes are acknowledged. Here a burst of monitoring runs (many scenarios,
commits of three runs) is cut by SIGKILL while the worker is busy; a new
worker recovers and finishes. The states on the changelog then show every
commit of every scenario tested exactly once: none pending with a run
missing, none skipped, every series one point per commit.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np

from streams.detection import TOTAL
from streams.packing import unpack
from tests.integration.conftest import (
    clean_settings,
    emit_measurements,
    start_streams_worker,
    stop_groups,
    wait_until,
)
from ttfb import events as ev
from ttfb.bus import EmbeddedBroker, consumer_options, ensure_topics
from ttfb.settings import STREAMS_TABLES, Settings
from ttfb.store import open_store

SCENARIOS = [f"load{i}" for i in range(40)]
COMMITS = [f"k{c}" for c in range(12)]


def burst(rng: np.random.Generator) -> list[ev.RunCompleted]:
    out = []
    for commit in COMMITS:
        for scenario in SCENARIOS:
            for rep in range(3):
                comps = {"imports": 2000.0 * float(rng.lognormal(0, 0.02)),
                         "config": 10.0 * float(rng.lognormal(0, 0.02))}
                out.append(ev.RunCompleted(repo="demo",
                    scenario=scenario, commit=commit, purpose="monitor", repetition=rep,
                    runs_total=3, ttfb_ms=sum(comps.values()), components=comps))  # type: ignore[arg-type]
    return out


async def changelog_states(settings: Settings) -> dict[str, bytes]:
    """The last state written for each scenario, read from the changelog topic."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = f"{settings.streams_app_id}-{STREAMS_TABLES[0]}-changelog"
    partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
    consumer = AIOKafkaConsumer(group_id=None, auto_offset_reset="earliest",
                                **consumer_options(settings))
    await consumer.start()
    consumer.assign(partitions)
    states: dict[str, bytes] = {}
    try:
        ends = await consumer.end_offsets(partitions)

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await behind():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    states[json.loads(record.key or b"null")] = record.value or b""  # JSON keys
    finally:
        await consumer.stop()
    return states


def test_a_sigkill_mid_burst_loses_and_doubles_nothing(tmp_path: Path) -> None:
    broker = EmbeddedBroker().start()
    # small batches: many commits of offsets and state writes to fall between,
    # and runs stored a few at a time, so the store shows how far in it is
    settings = clean_settings(tmp_path, kafka_bootstrap=broker.bootstrap,
                              decide_batch_size=50, decide_batch_seconds=0.02,
                              sink_batch_size=50, sink_batch_seconds=0.02)
    asyncio.run(ensure_topics(settings))
    store = open_store(settings)

    def worker(name: str) -> subprocess.Popen[bytes]:
        return start_streams_worker(settings, tmp_path / f"{name}.log", new_session=True)

    def stored_runs() -> int:
        return int(store.query("SELECT count() AS n FROM ttfb.runs"
                               " WHERE scenario LIKE 'load%'")[0]["n"])

    events = burst(np.random.default_rng(8))
    first = worker("w1")
    second: subprocess.Popen[bytes] | None = None
    # the worker keeps up with the agent's pace: the burst is sent while it
    # works, and the kill falls a third of the way in
    sending = threading.Thread(
        target=lambda: asyncio.run(emit_measurements(settings, "load-agent", events)))
    try:
        sending.start()
        wait_until(lambda: stored_runs() >= len(events) // 3, timeout=180)
        assert stored_runs() < len(events), "the burst was over before the kill"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        sending.join(120)
        second = worker("w2")
        wait_until(lambda: stored_runs() >= len(events), timeout=300)

        def settled() -> dict[str, bytes] | None:
            states = asyncio.run(changelog_states(settings))
            done = {s for s, raw in states.items()
                    if len(unpack(raw)[0].arrivals) == len(COMMITS)}
            return states if done >= set(SCENARIOS) else None

        states = wait_until(settled, timeout=180)
        for scenario in SCENARIOS:
            detector, _ = unpack(states[scenario])
            assert detector.arrivals == COMMITS, scenario  # every commit, in order, once
            assert detector.pending == {}, scenario  # no commit left with a run missing
            [series] = [v for k, v in detector.series.items() if k.startswith(f"{TOTAL}|")]
            assert series.seen == len(COMMITS), scenario  # one point per commit
            assert all(len(p.values) == 3 for p in series.baseline + series.window), scenario
    finally:
        if sending.ident is not None:
            sending.join(120)
        stop_groups(first, second)
        broker.stop()
