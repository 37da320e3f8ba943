"""A simulated agent for a synthetic scenario, over the real bus and store.

It emits monitor measurements and answers the commands the streams put on
the bus (runs and commit ranges) with log-normal component timings; commits
from ``culprit`` on carry a step in one component. The real agent refuses
the scenario (it is not in its catalog) and dead-letters those commands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ttfb import events as ev
from ttfb.emitter import Emitter
from ttfb.settings import Settings
from ttfb.store import Store

BASE = {"queue": 1.0, "startup": 40.0, "imports": 2000.0, "config": 10.0, "data": 200.0,
        "model": 900.0, "first_step": 20.0}


@dataclass
class SimAgent:
    settings: Settings
    store: Store
    scenario: str
    commits: list[str]
    culprit: int
    component: str = "config"
    bump_ms: float = 400.0
    cv: float = 0.02
    seed: int = 8
    answered: set[str] = field(default_factory=set)
    commands_seen: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def measured(self, commit: str, **fields: object) -> ev.RunCompleted:
        comps = {k: v * float(self.rng.lognormal(0, self.cv)) for k, v in BASE.items()}
        if self.commits.index(commit) >= self.culprit:
            comps[self.component] += self.bump_ms
        return ev.RunCompleted(scenario=self.scenario, commit=commit,
                               ttfb_ms=sum(comps.values()), components=comps,  # type: ignore[arg-type]
                               author="Ada Park", subject=f"subject of {commit}",
                               **{"repo": "demo", **fields})  # type: ignore[arg-type]

    def answer(self, command: ev.Event) -> tuple[ev.Event, str] | None:
        if isinstance(command, ev.CommitRangeRequested):
            return ev.CommitRangeListed(
                request_id=command.request_id, scenario=self.scenario, repo=command.repo,
                correlation_id=command.correlation_id, commits=self.commits,
                authors=["Ada Park"] * len(self.commits),
                subjects=[f"subject of {c}" for c in self.commits]), "bisect"
        if isinstance(command, ev.RunRequested):
            return self.measured(command.commit, purpose=command.purpose,
                                 arm=command.arm.label,
                                 correlation_id=command.correlation_id), "measurements"
        return None

    async def monitor(self, emitter: Emitter, commits: Iterable[str], runs: int = 3) -> None:
        for commit in commits:
            for rep in range(runs):
                await emitter.emit(self.measured(commit, purpose="monitor", repetition=rep,
                                                 runs_total=runs), "measurements")

    def commands(self) -> list[ev.Event]:
        rows = self.store.query("SELECT event_id, payload FROM ttfb.commands FINAL"
                                " WHERE scenario = {s:String} ORDER BY occurred_at",
                                {"s": self.scenario})
        return [ev.decode(r["payload"]) for r in rows]

    async def serve(self, emitter: Emitter, done: Callable[[], bool], timeout: float = 240.0,
                    on_command: Callable[[ev.Event], None] | None = None) -> None:
        """Answer new commands until ``done()``; each command id once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done():
            for command in self.commands():
                if command.event_id in self.answered:
                    continue
                self.answered.add(command.event_id)
                self.commands_seen += 1
                if on_command is not None:
                    on_command(command)
                reply = self.answer(command)
                if reply is not None:
                    await emitter.emit(*reply)
            await asyncio.sleep(0.5)
