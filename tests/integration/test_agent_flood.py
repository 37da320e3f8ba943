"""Junk on the real bus: a command signed with the development key reaches an
agent holding a real one and is refused; 10,000 malformed commands with
distinct types are each refused and dead-lettered, and the agent's memory
stays bounded."""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from pathlib import Path

import pytest

from agents.agent import REFUSAL_KINDS, Agent, AgentConfig
from agents.catalog import load_catalog
from agents.consumer import consume
from agents.workspace import Workspaces
from tests.integration.conftest import clean_settings
from ttfb import events as ev
from ttfb.bus import EmbeddedBroker, consumer_options, ensure_topics, kafka_client_options
from ttfb.emitter import Emitter
from ttfb.settings import Settings
from ttfb.signing import DEFAULT_KEY, Verifier, sign

pytestmark = pytest.mark.integration

FLOOD = 10_000


async def _send_junk(settings: Settings, start: int, count: int) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**kafka_client_options(settings), linger_ms=20)
    await producer.start()
    try:
        for i in range(start, start + count):
            await producer.send(settings.topic("commands"), key=b"junk",
                                value=json.dumps({"type": f"Junk{i}",
                                                  "schema_version": 1}).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _until(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:.0f}s")
        await asyncio.sleep(0.1)


async def _dead_letters(settings: Settings) -> int:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(settings.topic("deadletter"), auto_offset_reset="earliest",
                                **consumer_options(settings))
    await consumer.start()
    seen, idle = 0, 0
    try:
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            records = [r for rs in batch.values() for r in rs]
            idle = 0 if records else idle + 1
            for record in records:
                letter = ev.decode(record.value)
                assert isinstance(letter, ev.DeadLettered)
                seen += letter.refused_command and letter.reason.startswith("unknown event type")
    finally:
        await consumer.stop()
    return seen


async def _flood(settings: Settings, tmp: Path) -> tuple[Agent, int]:
    config = AgentConfig(repos={}, catalog=load_catalog(), workspaces=Workspaces(tmp / "ws"),
                         verifier=Verifier(settings.signing_key.get_secret_value(),
                                           journal=tmp / "seen"), warmup=False)
    emitter = await Emitter(settings, "flood-agent").start()
    agent = Agent(config, emitter)
    stop = asyncio.Event()
    task = asyncio.create_task(consume(agent, settings.topic("commands"),
                                       consumer_options(settings), "flood", stop))
    try:
        forged = sign(ev.RunRequested(scenario="lm", repo="demo", commit="HEAD"), DEFAULT_KEY)
        await emitter.emit(forged, "commands")
        await _until(lambda: agent.refused["bad signature"] == 1, 60)
        half = FLOOD // 2
        await _send_junk(settings, 0, half)  # warm: whatever is allocated once
        await _until(lambda: sum(agent.refused.values()) >= half, 120)
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        await _send_junk(settings, half, half)
        await _until(lambda: sum(agent.refused.values()) >= FLOOD, 120)
        grown = sum(s.size_diff for s in
                    tracemalloc.take_snapshot().compare_to(before, "filename"))
        tracemalloc.stop()
    finally:
        stop.set()
        await task
        assert await emitter.flush(timeout=60)
        await emitter.stop()
    assert grown < 2_000_000, f"the agent grew {grown} bytes over {FLOOD // 2} junk messages"
    return agent, await _dead_letters(settings)


def test_ten_thousand_junk_commands_on_the_bus_leave_the_agent_bounded(tmp_path: Path) -> None:
    broker = EmbeddedBroker().start()
    try:
        settings = clean_settings(tmp_path, kafka_bootstrap=broker.bootstrap)
        asyncio.run(ensure_topics(settings))
        agent, letters = asyncio.run(_flood(settings, tmp_path))
    finally:
        broker.stop()
    assert agent.refused == {"unknown event type": FLOOD, "bad signature": 1}
    assert set(agent.refused) <= {*REFUSAL_KINDS, "other"}
    assert not agent.config.verifier._seen  # nothing unsigned is remembered
    assert letters == FLOOD  # each one refused with its reason, none lost
    assert not list((tmp_path / "ws").glob("*"))  # nothing was checked out, let alone run
