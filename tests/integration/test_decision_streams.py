"""Detection -> confirmation -> bisect -> alert through the real broker, Faust and chDB.

The test plays the agent for a synthetic scenario: it answers the commands
the streams put on the bus (the real agent refuses the unknown scenario and
dead-letters those commands, which is also checked).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from producers.emitter import Emitter
from producers.lab import Lab
from tests.integration.conftest import wait_until
from ttfb import events as ev
from ttfb.store import Store, queries

SCENARIO = "wiring"
COMMITS = [f"w{i}" for i in range(7)]
BASE = {"queue": 1.0, "startup": 40.0, "imports": 2000.0, "config": 10.0, "data": 200.0,
        "model": 900.0, "first_step": 20.0}


def measured(rng: np.random.Generator, commit: str, **fields: object) -> ev.RunCompleted:
    bump = 400.0 if COMMITS.index(commit) >= 6 else 0.0
    comps = {k: v * float(rng.lognormal(0, 0.02)) for k, v in BASE.items()}
    comps["config"] += bump
    return ev.RunCompleted(scenario=SCENARIO, commit=commit, ttfb_ms=sum(comps.values()),
                           components=comps, author="Ada Park",  # type: ignore[arg-type]
                           subject=f"subject of {commit}", **fields)  # type: ignore[arg-type]


def answer(command: ev.Event, rng: np.random.Generator) -> tuple[ev.Event, str] | None:
    if isinstance(command, ev.CommitRangeRequested):
        return ev.CommitRangeListed(
            request_id=command.request_id, scenario=SCENARIO, repo=command.repo,
            correlation_id=command.correlation_id, commits=COMMITS,
            authors=["Ada Park"] * 7, subjects=[f"subject of {c}" for c in COMMITS]), "bisect"
    if isinstance(command, ev.RunRequested):
        return measured(rng, command.commit, purpose=command.purpose, arm=command.arm.label,
                        correlation_id=command.correlation_id), "measurements"
    return None


def test_a_regression_is_confirmed_bisected_and_alerted(lab: Lab, store: Store) -> None:
    rng = np.random.default_rng(8)

    async def scenario() -> None:
        emitter = await Emitter(lab.settings, "test-wiring").start()
        for commit in COMMITS:
            for rep in range(3):
                await emitter.emit(measured(rng, commit, purpose="monitor", repetition=rep,
                                            runs_total=3), "measurements")
        answered: set[str] = set()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            rows = store.query("SELECT event_id, payload FROM ttfb.commands FINAL"
                               " WHERE scenario = {s:String}", {"s": SCENARIO})
            for row in rows:
                if row["event_id"] in answered:
                    continue
                answered.add(row["event_id"])
                reply = answer(ev.decode(row["payload"]), rng)
                if reply is not None:
                    await emitter.emit(*reply)
            if queries.bisects(store) and any(b["scenario"] == SCENARIO
                                              for b in queries.bisects(store)):
                break
            await asyncio.sleep(0.5)
        await emitter.stop()

    asyncio.run(scenario())
    found = [f for f in queries.findings(store) if f["scenario"] == SCENARIO]
    assert [(f["type"], f["component"], f["commit"], f["good_commit"]) for f in found] == [
        ("CandidateDetected", "config", "w6", "w5"),
        ("RegressionConfirmed", "config", "w6", "w5")]
    bisect = next(b for b in queries.bisects(store) if b["scenario"] == SCENARIO)
    assert bisect["culprit"] == "w6" and bisect["runs_spent"] > 0
    alerts = wait_until(lambda: [a for a in queries.alerts(store)
                                 if a["scenario"] == SCENARIO and a["status"] == "attributed"])
    assert alerts[0]["culprit"] == "w6" and alerts[0]["component"] == "config"
    assert alerts[0]["subject"] == "subject of w6"
    # the real agent refused the commands for a scenario outside its catalog
    refused = [d for d in queries.dead_letters(store) if d["refused_command"]
               and "unknown scenario 'wiring'" in d["reason"]]
    assert refused
