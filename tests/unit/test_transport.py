"""The streams' Faust transport: what a worker fetches around a rebalance."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import faust
import pytest
from faust.types import TP

from streams import transport
from streams.app import build_app
from ttfb.settings import Settings


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # Faust's services bind one as they are built
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def app_on(tmp_path: Path) -> tuple[faust.App, Settings]:
    settings = Settings(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:9", _env_file=None)
    return build_app(settings), settings


def test_stream_partitions_resumed_mid_rebalance_wait_for_its_end(
        tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    """Recovery resumes the stream partitions before it seeks them and clears
    the streams' queues: records fetched in between would be lost to the
    stream. They stay paused until the rebalance ends; changelogs resume at once."""
    app, settings = app_on(tmp_path)
    consumer = app.consumer
    assert isinstance(app, transport.App) and isinstance(consumer, transport.Consumer)
    changelog = TP(sorted(app.tables.changelog_topics)[0], 0)
    stream, revoked = TP(settings.topic("measurements"), 0), TP(settings.topic("measurements"), 1)
    consumer.pause_partitions({changelog, stream, revoked})

    app.rebalancing = True
    consumer.resume_partitions({changelog, stream, revoked})
    active = consumer._get_active_partitions()
    assert changelog in active and stream not in active and revoked not in active
    loop.run_until_complete(consumer.on_partitions_revoked({revoked}))
    app.on_rebalance_end()
    active = consumer._get_active_partitions()
    assert stream in active and revoked not in active

    consumer.pause_partitions({stream})  # outside a rebalance, nothing is held
    consumer.resume_partitions({stream})
    assert stream in consumer._get_active_partitions()


def test_aiokafka_waits_for_records_with_a_copy_of_the_active_partitions(
        tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    """aiokafka waits for records with the set it is given, and reads an empty
    set as every partition; Faust's set of active partitions is emptied by a
    rebalance meanwhile. aiokafka would then hand over (and move past) records
    of paused partitions, which Faust drops. It is given a copy."""
    app, settings = app_on(tmp_path)
    consumer = app.consumer
    live = {TP(settings.topic("measurements"), 0)}
    given: list[set[TP] | None] = []

    class Thread:
        async def getmany(self, partitions: set[TP] | None, timeout: float) -> dict[TP, list]:
            given.append(partitions)
            live.clear()  # a rebalance pauses everything while aiokafka waits
            return {}

    consumer._thread = Thread()  # type: ignore[attr-defined]
    loop.run_until_complete(consumer._getmany(live, 1.0))  # type: ignore[attr-defined]
    assert given == [{TP(settings.topic("measurements"), 0)}] and given[0] is not live


def test_faust_keeps_its_folder_under_the_labs_data_directory(
        tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    """Faust makes a folder even for tables in memory; a lab started in a
    user's repository must not leave one there."""
    app, settings = app_on(tmp_path / "lab{x}")
    assert Path(app.conf.datadir).resolve().is_relative_to(settings.data_dir.resolve())
