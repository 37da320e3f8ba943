"""Detection -> confirmation -> bisect -> alert through the real broker, Faust and chDB.

The test plays the agent for a synthetic scenario (``SimAgent``): it answers
the commands the streams put on the bus (the real agent refuses the unknown
scenario and dead-letters those commands, which is also checked). A real HTTP server
subscribes as the alert webhook.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from producers.lab import Lab
from tests.integration.conftest import clean_settings, wait_until
from tests.integration.simagent import SimAgent
from tests.receiver import Receiver
from ttfb.emitter import Emitter
from ttfb.store import Store, open_store, queries

SCENARIO = "wiring"
COMMITS = [f"w{i}" for i in range(7)]


SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.fixture(scope="module")
def webhook() -> Iterator[Receiver]:
    receiver = Receiver(fail=1)  # the first POST fails: the notifier retries
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def slack() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, demo_repo: Path,
        webhook: Receiver, slack: Receiver) -> Iterator[Lab]:
    settings = clean_settings(tmp_path_factory.mktemp("lab"), repos={"demo": str(demo_repo)},
                              alert_webhooks=[webhook.url], webhook_secret=SECRET,
                              slack_webhooks=[slack.url], notify_backoff_s=0.1)
    running = Lab(settings, headless=True).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def played(lab: Lab) -> Lab:
    """The lab once the simulated agent has played the regression through to
    its bisect: each test of the module starts from there, whichever of
    them runs first (or alone)."""
    store = open_store(lab.settings)
    agent = SimAgent(lab.settings, store, SCENARIO, COMMITS, culprit=6)

    def bisected() -> bool:
        return any(b["scenario"] == SCENARIO for b in queries.bisects(store))

    async def scenario() -> None:
        emitter = await Emitter(lab.settings, "test-wiring").start()
        await agent.monitor(emitter, COMMITS)
        await agent.serve(emitter, bisected)
        await emitter.stop()

    asyncio.run(scenario())
    return lab


def test_a_regression_is_confirmed_bisected_and_alerted(played: Lab, store: Store,
                                                        webhook: Receiver,
                                                        slack: Receiver) -> None:
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
    # the webhook got the confirmed alert and its attributed update, signed
    posted = wait_until(lambda: [r for r in webhook.requests if r.json["scenario"] == SCENARIO
                                 and r.json["status"] == "attributed"], timeout=60)
    assert Webhook(SECRET).verify(posted[0].raw, posted[0].headers)["culprit"] == "w6"
    assert any(b["status"] == "confirmed" for b in webhook.bodies)
    # Slack got both as messages
    said = wait_until(lambda: [b["text"] for b in slack.bodies
                               if "regression attributed in wiring/config" in b["text"]])
    assert "+" in said[0] and any("confirmed in wiring/config" in b["text"]
                                  for b in slack.bodies)


def test_the_tests_and_search_steps_travel_on_the_records_topic(played: Lab,
                                                               store: Store) -> None:
    """Every commit's test and every step of the bisect reach the store from
    the records topic, which the decision worker does not consume (it was
    handed one for each commit tested), and from no other."""
    rows = store.query(
        f"SELECT type, topic, count() AS n FROM {store.db}.events WHERE scenario = {{s:String}}"
        " AND type IN ('CommitTested', 'BisectProgressed') GROUP BY type, topic",
        {"s": SCENARIO})
    assert {(r["type"], r["topic"]) for r in rows} == {
        ("CommitTested", played.settings.topic("records")),
        ("BisectProgressed", played.settings.topic("records"))}
    assert sum(int(r["n"]) for r in rows if r["type"] == "CommitTested") >= len(COMMITS)


def test_alerts_tail_prints_the_stored_alerts_then_follows(played: Lab, store: Store) -> None:
    """``ttfb alerts tail --json --from-beginning`` against the running lab."""
    import json
    import os
    import subprocess
    import sys
    import time

    wait_until(lambda: [a for a in queries.alerts(store) if a["scenario"] == SCENARIO])
    env = {**os.environ, **played.settings.to_env()}
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


def test_a_triage_reaches_the_store_and_the_channels(played: Lab, store: Store,
                                                    webhook: Receiver, slack: Receiver) -> None:
    """``ttfb alerts triage`` against the running lab: the event goes on the
    bus, lands in the store, and every channel says so."""
    import os
    import subprocess
    import sys

    [alert] = wait_until(lambda: [a for a in queries.current_alerts(store, scenario=SCENARIO)
                                  if a["status"] == "attributed"])
    env = {**os.environ, **played.settings.to_env()}
    env.pop("TTFB_KAFKA_BOOTSTRAP")  # found through the running lab's lab.json
    done = subprocess.run([sys.executable, "-m", "ttfb.cli", "alerts", "triage",
                           alert["alert_id"], "--status", "acknowledged", "--by", "ada",
                           "--note", "looking"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "in the lab" in done.stdout, done.stderr
    row = wait_until(lambda: queries.current_alerts(store, triage="acknowledged"))
    assert row[0]["alert_id"] == alert["alert_id"] and row[0]["triaged_by"] == "ada"
    posted = wait_until(lambda: [b for b in webhook.bodies if b["type"] == "AlertTriaged"])
    assert posted[0]["status"] == "acknowledged" and posted[0]["culprit"] == "w6"
    wait_until(lambda: [b for b in slack.bodies if "marked acknowledged by ada" in b["text"]])
    unknown = subprocess.run([sys.executable, "-m", "ttfb.cli", "alerts", "triage", "nope:x",
                              "--status", "invalid"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert unknown.returncode == 2 and "no alert 'nope:x'" in unknown.stderr
