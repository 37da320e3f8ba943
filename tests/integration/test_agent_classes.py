"""Two ``ttfb agent`` processes of different hardware classes on one bus: each
takes only its own class's runs, each class is its own series, and a
``device = "cuda"`` scenario never lands on an agent without a GPU."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agents.fingerprint import gpu_and_driver
from producers.commands import CommandSender
from tests.integration.conftest import TEST_KEY
from tests.integration.tinyrepo import make_repo
from ttfb import events as ev
from ttfb.bus import EmbeddedBroker, consumer_options, ensure_topics
from ttfb.settings import Settings

pytestmark = pytest.mark.integration

CATALOG = '''
[[scenario]]
name = "tiny"
repo = "tiny"
entry = "tiny.train:main"
hardware = ["cpu-a", "cpu-b"]

[[scenario]]
name = "tiny-gpu"
repo = "tiny"
entry = "tiny.train:main"
device = "cuda"
'''


async def collect(settings: Settings, wanted: int, linger_s: float, timeout: float,
                  topic: str = "measurements",
                  kind: type[ev.Event] = ev.RunCompleted) -> list[Any]:
    """Events of ``kind`` on ``topic``: ``wanted`` of them, then whatever else
    arrives within ``linger_s``."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(settings.topic(topic), group_id=f"test-classes-{topic}",
                                auto_offset_reset="earliest", **consumer_options(settings))
    await consumer.start()
    runs: list[Any] = []
    failed: list[ev.RunFailed] = []  # said when too few runs arrive: why they did not
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    event = ev.decode(record.value)
                    if isinstance(event, kind):
                        runs.append(event)
                    elif isinstance(event, ev.RunFailed) and kind is ev.RunCompleted:
                        failed.append(event)
            if len(runs) >= wanted:
                deadline = min(deadline, time.monotonic() + linger_s)
    finally:
        await consumer.stop()
    assert len(runs) >= wanted or not failed, \
        [(f.producer, f.reason, f.stderr_tail[-300:]) for f in failed]
    return runs


def why_not(tmp_path: Path, runs: list[Any], asked: dict[str, str]) -> str:
    """What each agent ran and said beyond the ordinary, short enough to be
    read whole where a test's message is cut."""
    ran = sorted((asked.get(r.request_id, "?"), r.request_id[:8]) for r in runs)
    said = {c: [line[:300] for line in (tmp_path / f"{c}.log").read_text(
        errors="replace").splitlines() if " INFO " not in line][-8:] for c in ("cpu-a", "cpu-b")}
    return f"ran {ran} of {sorted(asked.values())}; the agents said {said}"


def test_each_agent_takes_only_its_hardware_class(tmp_path: Path) -> None:
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("needs Linux")
    make_repo(tmp_path / "repo", import_s=0.05, commits=1)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    broker = EmbeddedBroker().start()
    agents: list[subprocess.Popen[bytes]] = []
    try:
        settings = Settings(kafka_bootstrap=broker.bootstrap, data_dir=tmp_path / "bus",
                            signing_key=TEST_KEY, _env_file=None)
        asyncio.run(ensure_topics(settings))
        base = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
        for cls in ("cpu-a", "cpu-b"):
            log = open(tmp_path / f"{cls}.log", "wb")  # noqa: SIM115
            agents.append(subprocess.Popen(
                [sys.executable, "-m", "ttfb.cli", "agent", "--class", cls, "--id", f"agent-{cls}",
                 "--catalog", str(catalog), "--repo", f"tiny={tmp_path / 'repo'}"],
                env={**base, "TTFB_KAFKA_BOOTSTRAP": broker.bootstrap, "TTFB_SIGNING_KEY": TEST_KEY,
                     "TTFB_DATA_DIR": str(tmp_path / cls)},
                stdout=log, stderr=subprocess.STDOUT))
        sender = CommandSender(settings)
        requests = [ev.RunRequested(scenario="tiny", repo="tiny", commit="HEAD",
                                    hardware_class=cls, producer="test")
                    for cls in ("cpu-a", "cpu-b", "cpu-a", "cpu-b")]
        requests.append(ev.RunRequested(scenario="tiny-gpu", repo="tiny", commit="HEAD",
                                        producer="test"))
        asyncio.run(sender.send_all(requests))
        runs = asyncio.run(collect(settings, wanted=4, linger_s=4, timeout=180))
        asked = {r.request_id: r.hardware_class for r in requests}
        assert len(runs) == 4, why_not(tmp_path, runs, asked)
        if gpu_and_driver()[0]:  # a GPU here: the cuda scenario may run, on any class
            runs = [r for r in runs if r.scenario == "tiny"]
        for run in runs:
            assert run.scenario == "tiny"  # the cuda scenario ran on no CPU-only agent
            assert run.fingerprint.hardware_class == asked[run.request_id], run
            assert run.producer == f"agent-{asked[run.request_id]}"
        series = {r.fingerprint.hardware_class: r.fingerprint.hardware_id for r in runs}
        assert len(series) == 2 and len(set(series.values())) == 2  # a series per class
        announced = asyncio.run(collect(settings, wanted=2, linger_s=0, timeout=30,
                                        topic="commands", kind=ev.AgentAnnounced))
        assert sorted((a.agent_id, a.hardware_class, a.slots) for a in announced) == \
            [("agent-cpu-a", "cpu-a", 1), ("agent-cpu-b", "cpu-b", 1)]
        assert all(a.fingerprint.cpu and "tiny" in a.scenarios for a in announced)
    finally:
        for agent in agents:
            agent.send_signal(signal.SIGTERM)
        for agent in agents:
            try:
                agent.wait(30)
            except subprocess.TimeoutExpired:
                agent.kill()
        broker.stop()
