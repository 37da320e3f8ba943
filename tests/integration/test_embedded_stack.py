"""The embedded lab end to end: commands -> agent -> Kafka -> Faust -> chDB."""

from __future__ import annotations

import asyncio
import base64

from producers.lab import Lab, request_demo_runs
from tests.integration.conftest import wait_until
from ttfb import events as ev
from ttfb.emitter import Emitter
from ttfb.store import Store, queries


def test_three_requested_runs_land_with_seven_components(lab: Lab, store: Store) -> None:
    ids = request_demo_runs(lab.settings, 3)
    rows = wait_until(lambda: (r := queries.runs_for_requests(store, ids)) and len(r) >= 3
                      and r, timeout=300)
    assert len(rows) == 3
    assert sorted(r["scenario"] for r in rows) == ["lm", "recsys", "vision"]
    for row in rows:
        components = row["components"]
        assert sorted(components) == sorted(ev.COMPONENTS)
        assert all(float(v) > 0 for v in components.values()), components
        assert abs(sum(components.values()) - float(row["ttfb_ms"])) < 1.0
    measured = store.query(
        "SELECT run_id, count() AS n, sum(ms) AS total FROM ttfb.measurements FINAL"
        " WHERE run_id IN {ids:Array(String)} GROUP BY run_id",
        {"ids": [r["run_id"] for r in rows]})
    assert sorted(int(m["n"]) for m in measured) == [7, 7, 7]


def test_malformed_bytes_become_a_dead_letter_and_the_stream_goes_on(
        lab: Lab, store: Store) -> None:
    garbage = b'{"type": "ComponentMeasured", "oops'
    valid = [ev.ComponentMeasured(repo="demo",
                                  scenario="dl-check", commit=f"c{i}", component="data",
                                  ms=1.0 + i) for i in range(3)]

    async def send() -> None:
        emitter = await Emitter(lab.settings, "test-dl").start()
        await emitter.send_raw(lab.settings.topic("measurements"), b"dl", garbage)
        for event in valid:
            await emitter.emit(event, "measurements")
        await emitter.stop()

    asyncio.run(send())

    def landed() -> bool:
        ids = [e.event_id for e in valid]
        stored = store.query("SELECT count() AS n FROM ttfb.measurements FINAL"
                             " WHERE event_id IN {ids:Array(String)}", {"ids": ids})
        return int(stored[0]["n"]) == 3

    wait_until(landed, timeout=60)
    letters = [r for r in queries.dead_letters(store)
               if base64.b64decode(r["raw_b64"]) == garbage]
    assert len(letters) == 1
    assert letters[0]["source_topic"] == lab.settings.topic("measurements")
    assert "malformed JSON" in letters[0]["reason"]


def test_the_agent_refuses_what_its_operator_did_not_allow(lab: Lab, store: Store) -> None:
    """Through the real bus: an arm that sets PYTHONPATH, one that names
    another interpreter, and a command replayed byte for byte are refused and
    dead-lettered with their reasons; none runs."""
    from ttfb.signing import sign

    key = lab.settings.signing_key.get_secret_value()
    env_arm = sign(ev.RunRequested(scenario="lm", repo="demo", commit="HEAD",
                                   arm=ev.Arm(label="b", env={"PYTHONPATH": "/tmp/x"})), key)
    python_arm = sign(ev.RunRequested(scenario="lm", repo="demo", commit="HEAD",
                                      arm=ev.Arm(label="b", python="/tmp/x/python")), key)
    unknown = sign(ev.RunRequested(scenario="lm", repo="not-allowed", commit="HEAD"), key)

    async def send() -> None:
        emitter = await Emitter(lab.settings, "test-refusals").start()
        for command in (env_arm, python_arm, unknown):
            await emitter.emit(command, "commands")
        await emitter.send_raw(lab.settings.topic("commands"), b"lm", ev.encode(unknown))
        await emitter.stop()

    asyncio.run(send())
    wanted = {"environment not allowed: PYTHONPATH", "interpreter not allowed",
              "unknown repository", "replayed command"}

    def refused() -> set[str]:
        reasons = {r["reason"] for r in queries.dead_letters(store) if r["refused_command"]}
        return {w for w in wanted if any(r.startswith(w) for r in reasons)}

    assert wait_until(lambda: refused() == wanted and refused(), timeout=60) == wanted
    ran = store.query("SELECT count() AS n FROM ttfb.runs FINAL WHERE request_id IN"
                      " {ids:Array(String)}", {"ids": [env_arm.request_id,
                                                       python_arm.request_id]})
    assert int(ran[0]["n"]) == 0
