"""The streams worker SIGKILLed mid-bisect: it resumes from its changelog.

A regression lands between two monitored commits eight commits apart, so the
bisect needs several steps. After its first step is on the bus the Faust
worker is killed with SIGKILL (no clean shutdown, no final commit) and
started again. Its table comes back from the changelog, it re-reads what it
had not committed (duplicates change nothing), and the bisect completes with
the right culprit; the detection is neither lost nor doubled.
"""

from __future__ import annotations

import asyncio

from producers.lab import Lab
from tests.integration.conftest import wait_until
from tests.integration.simagent import SimAgent
from ttfb import events as ev
from ttfb.emitter import Emitter
from ttfb.store import Store, queries

SCENARIO = "killed"
COMMITS = [f"k{i}" for i in range(12)]
CULPRIT = 6


def test_worker_killed_mid_bisect_resumes_with_the_same_culprit(lab: Lab, store: Store) -> None:
    agent = SimAgent(lab.settings, store, SCENARIO, COMMITS, culprit=CULPRIT, seed=11)
    killed: list[str] = []

    def on_command(command: ev.Event) -> None:
        if (not killed and isinstance(command, ev.RunRequested) and command.purpose == "bisect"
                and command.commit not in (COMMITS[3], COMMITS[-1])):
            killed.append(command.commit)  # a midpoint step is under way: kill the worker
            lab.restart("streams")

    def bisected() -> bool:
        return any(b["scenario"] == SCENARIO for b in queries.bisects(store))

    async def scenario() -> None:
        emitter = await Emitter(lab.settings, "test-kill").start()
        # a baseline on k0..k3, then the next monitored commit is k11
        await agent.monitor(emitter, [*COMMITS[:4], COMMITS[-1]])
        await agent.serve(emitter, bisected, timeout=300, on_command=on_command)
        await emitter.stop()

    asyncio.run(scenario())
    assert killed, "the bisect never reached a midpoint"
    lab.check()  # the restarted worker is alive
    found = [(f["type"], f["commit"]) for f in queries.findings(store)
             if f["scenario"] == SCENARIO]
    assert found.count(("RegressionConfirmed", COMMITS[-1])) == 1
    bisects = [b for b in queries.bisects(store) if b["scenario"] == SCENARIO]
    assert len(bisects) == 1, bisects
    assert bisects[0]["culprit"] == COMMITS[CULPRIT]
    alerts = wait_until(lambda: [a for a in queries.alerts(store)
                                 if a["scenario"] == SCENARIO and a["status"] == "attributed"])
    assert alerts[0]["culprit"] == COMMITS[CULPRIT]
