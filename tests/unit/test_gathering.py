"""The decision agent's batches: folded at once without a backlog, gathered
behind one, and never left waiting once the stream hands nothing more over."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from streams.decisions import Gathering


class FakeFolds:
    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.ready.set()
        self.batches: list[list[Any]] = []

    async def batch(self, messages: list[Any]) -> None:
        self.batches.append(messages)


class FakeStream:
    def __init__(self) -> None:
        self.acked: list[Any] = []

    async def ack(self, item: Any) -> None:
        self.acked.append(item)


def items(*names: str) -> list[Any]:
    return [SimpleNamespace(message=name) for name in names]


def test_a_chunk_without_a_backlog_is_folded_and_acked_at_once() -> None:
    async def run() -> tuple[FakeFolds, FakeStream]:
        folds, stream = FakeFolds(), FakeStream()
        gathering = Gathering(folds, size=100, seconds=10.0)  # type: ignore[arg-type]
        await gathering.add(stream, items("a", "b"), backlog=False)
        return folds, stream

    folds, stream = asyncio.run(run())
    assert folds.batches == [["a", "b"]]
    assert [i.message for i in stream.acked] == ["a", "b"]


def test_chunks_behind_a_backlog_make_one_batch_up_to_its_size() -> None:
    async def run() -> tuple[FakeFolds, FakeStream, Gathering]:
        folds, stream = FakeFolds(), FakeStream()
        gathering = Gathering(folds, size=5, seconds=10.0)  # type: ignore[arg-type]
        await gathering.add(stream, items("a", "b"), backlog=True)
        await gathering.add(stream, items("c", "d"), backlog=True)
        assert folds.batches == [] and stream.acked == []  # nothing acked before it is folded
        await gathering.add(stream, items("e", "f"), backlog=True)  # past the size
        return folds, stream, gathering

    folds, stream, gathering = asyncio.run(run())
    assert folds.batches == [["a", "b", "c", "d", "e", "f"]]
    assert len(stream.acked) == 6 and not gathering.overdue()


def test_what_a_backlog_left_gathered_is_overdue_after_its_seconds_and_folded() -> None:
    async def run() -> tuple[FakeFolds, FakeStream, list[bool]]:
        folds, stream = FakeFolds(), FakeStream()
        gathering = Gathering(folds, size=100, seconds=0.05)  # type: ignore[arg-type]
        await gathering.add(stream, items("a"), backlog=True)  # then the stream goes quiet
        seen = [gathering.overdue()]
        time.sleep(0.06)
        seen.append(gathering.overdue())
        await gathering.flush()  # what the agent's timer does when overdue
        seen.append(gathering.overdue())
        return folds, stream, seen

    folds, stream, seen = asyncio.run(run())
    assert seen == [False, True, False]
    assert folds.batches == [["a"]] and len(stream.acked) == 1
