"""A running embedded lab's services serve /metrics and /health, and their
counters move with the traffic."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

import pytest

from producers.lab import Lab
from tests.integration.conftest import clean_settings, wait_until
from ttfb import events as ev
from ttfb import native
from ttfb.bus import free_port
from ttfb.emitter import Emitter

pytestmark = pytest.mark.integration


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.read().decode()


def value(text: str, name: str, **labels: str) -> float:
    """The sample of ``name`` with exactly these labels (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + want + '}') if want else ''} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found[1]) if found else 0.0


def test_metrics_of_a_running_lab_move_with_its_traffic(tmp_path: Path) -> None:
    streams_port, agent_port, sink_port = free_port(), free_port(), free_port()
    settings = clean_settings(tmp_path / "data", streams_metrics_port=streams_port,
                              agent_metrics_port=agent_port, sink_metrics_port=sink_port)
    with Lab(settings, headless=True) as lab:
        for port in (streams_port, agent_port, sink_port):
            wait_until(lambda port=port: _up(port), timeout=60)
        assert scrape(streams_port, "/health") == "ok\n"
        assert scrape(sink_port, "/health") == "ok\n"
        commands = lab.settings.topic("commands")
        before = scrape(sink_port), scrape(agent_port)

        async def send() -> None:
            emitter = await Emitter(lab.settings, "test-metrics").start()
            for _ in range(3):  # unsigned: refused by the agent, dead-lettered
                await emitter.emit(ev.RunRequested(scenario="lm", repo="demo", commit="HEAD",
                                                   runs=1), "commands")
            await emitter.flush()
            await emitter.stop()

        asyncio.run(send())

        def moved() -> bool:
            sink, agent = scrape(sink_port), scrape(agent_port)
            return value(sink, "ttfb_events_in_total", topic=commands) >= \
                value(before[0], "ttfb_events_in_total", topic=commands) + 3 and \
                value(agent, "ttfb_refused_commands_total", kind="unsigned command") >= \
                value(before[1], "ttfb_refused_commands_total", kind="unsigned command") + 3

        wait_until(moved, timeout=60, describe=lambda: (scrape(sink_port)[-1500:],
                                                        scrape(agent_port)[-1500:]))
        lag = re.compile(r'^ttfb_consumer_lag\{partition="\d+",topic="[^"]+"\} \d', re.MULTILINE)
        for port, name in ((streams_port, "streams"), (sink_port, "sink")):
            wait_until(lambda port=port: lag.search(scrape(port)), timeout=30,
                       describe=lambda name=name: (lab.logs / f"{name}.log").read_text()[-3000:])
        assert "ttfb_fold_batch_seconds_count" in scrape(streams_port)
        # the worker says how it runs the folds: as this machine has them built
        assert f"\nttfb_folds_compiled {1.0 if native.active() else 0.0}\n" in \
            scrape(streams_port)
        assert "ttfb_runs_running 0.0" in scrape(agent_port)


def _up(port: int) -> bool:
    try:
        scrape(port, "/health")
    except OSError:
        return False
    return True
