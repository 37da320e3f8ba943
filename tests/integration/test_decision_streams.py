"""Detection -> confirmation -> bisect -> alert through the real broker, Faust and chDB.

The test plays the agent for a synthetic scenario (``SimAgent``): it answers
the commands the streams put on the bus (the real agent refuses the unknown
scenario and dead-letters those commands, which is also checked). A real HTTP server
subscribes as the alert webhook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from producers.lab import Lab
from tests.integration.conftest import clean_settings, wait_until
from tests.integration.simagent import SimAgent
from tests.receiver import Receiver
from ttfb.emitter import Emitter
from ttfb.store import Store, queries

SCENARIO = "wiring"
COMMITS = [f"w{i}" for i in range(7)]


@pytest.fixture(scope="module")
def webhook() -> Iterator[Receiver]:
    receiver = Receiver(fail=1)  # the first POST fails: the sink retries
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, demo_repo: Path,
        webhook: Receiver) -> Iterator[Lab]:
    settings = clean_settings(tmp_path_factory.mktemp("lab"), repos={"demo": str(demo_repo)},
                              alert_webhooks=[webhook.url])
    running = Lab(settings, headless=True).start()
    try:
        yield running
    finally:
        running.stop()


def test_a_regression_is_confirmed_bisected_and_alerted(lab: Lab, store: Store,
                                                        webhook: Receiver) -> None:
    agent = SimAgent(lab.settings, store, SCENARIO, COMMITS, culprit=6)

    def bisected() -> bool:
        return any(b["scenario"] == SCENARIO for b in queries.bisects(store))

    async def scenario() -> None:
        emitter = await Emitter(lab.settings, "test-wiring").start()
        await agent.monitor(emitter, COMMITS)
        await agent.serve(emitter, bisected)
        await emitter.stop()

    asyncio.run(scenario())
    found = [f for f in queries.findings(store) if f["scenario"] == SCENARIO]
    assert [(f["type"], f["component"], f["commit"], f["good_commit"]) for f in found] == [
        ("CandidateDetected", "config", "w6", "w0"),  # against the baseline's oldest commit
        ("RegressionConfirmed", "config", "w6", "w0")]
    bisect = next(b for b in queries.bisects(store) if b["scenario"] == SCENARIO)
    assert bisect["culprit"] == "w6" and bisect["runs_spent"] > 0
    alerts = wait_until(lambda: [a for a in queries.alerts(store)
                                 if a["scenario"] == SCENARIO and a["status"] == "attributed"])
    assert alerts[0]["culprit"] == "w6" and alerts[0]["component"] == "config"
    assert alerts[0]["ci_low_pct"] <= alerts[0]["effect_pct"] <= alerts[0]["ci_high_pct"]
    assert alerts[0]["culprit_confidence"] == bisect["confidence"] > 0
    assert alerts[0]["subject"] == "subject of w6"
    # the real agent refused the commands for a scenario outside its catalog
    refused = [d for d in queries.dead_letters(store) if d["refused_command"]
               and "unknown scenario 'wiring'" in d["reason"]]
    assert refused
    # the webhook got the confirmed alert and its attributed update
    posted = wait_until(lambda: [b for b in webhook.bodies if b["scenario"] == SCENARIO
                                 and b["status"] == "attributed"], timeout=60)
    assert posted[0]["culprit"] == "w6" and posted[0]["type"] == "Alert"
    assert any(b["status"] == "confirmed" for b in webhook.bodies)


def test_alerts_tail_prints_the_stored_alerts_then_follows(lab: Lab, store: Store) -> None:
    """``ttfb alerts tail --json --from-beginning`` against the running lab."""
    import json
    import os
    import subprocess
    import sys
    import time

    wait_until(lambda: [a for a in queries.alerts(store) if a["scenario"] == SCENARIO])
    env = {**os.environ, **lab.settings.to_env()}
    env.pop("TTFB_KAFKA_BOOTSTRAP")  # found through the running lab's lab.json
    tail = subprocess.Popen([sys.executable, "-m", "ttfb.cli", "alerts", "tail", "--json",
                             "--from-beginning", "--scenario", SCENARIO],
                            env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert tail.stdout is not None
        lines: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                a["status"] == "attributed" for a in lines):
            lines.append(json.loads(tail.stdout.readline()))
        assert {(a["scenario"], a["component"], a["kind"]) for a in lines} == \
            {(SCENARIO, "config", "regression")}
        assert any(a["status"] == "attributed" and a["culprit"] == "w6" for a in lines)
        assert tail.poll() is None, "with a live bus it keeps following"
    finally:
        tail.terminate()
        tail.wait(10)
