"""The decision agent's fold between checkpoints: outputs go at once, each
changed scenario's state is written once a checkpoint, and what was folded
since the last one is read back from memory, not from the stale table."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.bisect import BisectBook, BisectPolicy
from streams.decisions import Folds, unpack
from streams.detection import Policy, ScenarioState
from streams.fold import fold_event
from tests.unit.test_detection_fold import run
from ttfb import events as ev


@dataclass
class Message:
    value: bytes
    partition: int = 0


class Table:
    """A Faust table as the fold uses it: values, and changelog writes."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.changelog: list[tuple[int, str, bytes]] = []

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def send_changelog(self, partition: int, key: str, value: bytes) -> asyncio.Future[None]:
        self.changelog.append((partition, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_a_checkpoint_writes_each_changed_scenario_once_after_many_batches() -> None:
    rng = np.random.default_rng(3)
    runs = [run(rng, f"c{c}", r, bump={"config": 400.0} if c == 6 else None)
            for c in range(7) for r in range(3)]
    table, sent = Table(), []

    async def emit(event: ev.Event) -> asyncio.Future[None]:
        sent.append(event)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def scenario() -> None:
        folds = Folds(table, Policy(), emit, 1_000_000)
        for event in runs:  # a batch an event
            await folds.batch([Message(ev.encode(event))])
        # folded in memory, nothing written yet, yet every output already sent
        assert table.changelog == [] and table.get("lm") is None
        assert any(isinstance(e, ev.CandidateDetected) for e in sent)
        await folds.checkpoint()
        assert [key for _, key, _ in table.changelog] == ["lm"]
        assert folds.dirty == {} and folds.delivered == []

    asyncio.run(scenario())
    # the written state is what folding every event in one go gives
    state, book = ScenarioState(), BisectBook()
    for event in runs:
        state, book, _ = fold_event(event, state, book, Policy(), BisectPolicy())
    written, _ = unpack(table.changelog[0][2])
    assert written.accepted == state.accepted == 6
    assert set(written.confirming) == set(state.confirming) and written.confirming
