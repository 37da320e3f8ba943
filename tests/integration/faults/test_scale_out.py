"""Two Faust workers share the partitions; one is SIGKILLed; the other carries on.

Eight scenarios, two on each of the four partitions (scenario is the key),
are fed a baseline and a regression: the candidates come from both workers
(each event names the worker that decided it), so the scenarios' state is
split across them. One worker is then killed with SIGKILL. After the
rebalance the survivor owns every partition, rebuilds the dead worker's
tables from their changelogs, and finds a second regression in every
scenario: exactly two candidates each, none lost, none doubled.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from tests.integration.conftest import (
    clean_settings,
    emit_measurements,
    group_offsets,
    logs_on_failure,
    start_streams_worker,
    stop_groups,
    wait_until,
)
from ttfb import events as ev
from ttfb.bus import EmbeddedBroker, ensure_topics
from ttfb.store import open_store

# two scenario keys per partition of 4 (aiokafka's murmur2 partitioner)
SCENARIOS = [f"scale{i}" for i in (3, 4, 0, 1, 2, 6, 7, 11)]
BASE = {"startup": 40.0, "imports": 2000.0, "config": 10.0, "data": 200.0, "model": 900.0}


def runs(rng: np.random.Generator, scenario: str, commit: str, config_ms: float,
         n: int = 3) -> list[ev.RunCompleted]:
    out = []
    for rep in range(n):
        comps = {k: v * float(rng.lognormal(0, 0.02)) for k, v in BASE.items()}
        comps["config"] = config_ms * float(rng.lognormal(0, 0.02))
        out.append(ev.RunCompleted(repo="demo", scenario=scenario, commit=commit, purpose="monitor",
                                   repetition=rep, runs_total=n, ttfb_ms=sum(comps.values()),
                                   components=comps))  # type: ignore[arg-type]
    return out


def test_two_workers_split_the_scenarios_and_survive_a_sigkill(tmp_path: Path) -> None:
    broker = EmbeddedBroker().start()
    # INFO: the rebalance and the recovery are in the logs a failure shows
    settings = clean_settings(tmp_path, kafka_bootstrap=broker.bootstrap, log_level="INFO")
    asyncio.run(ensure_topics(settings))
    store = open_store(settings)

    def worker(name: str) -> subprocess.Popen[bytes]:
        return start_streams_worker(settings, tmp_path / f"{name}.log", new_session=True)

    workers = [worker("w1"), worker("w2")]
    rng = np.random.default_rng(5)

    def candidates() -> list[tuple[str, str, str]]:
        rows = store.query("SELECT payload FROM ttfb.events FINAL"
                           " WHERE type = 'CandidateDetected' AND scenario LIKE 'scale%'")
        found = [json.loads(r["payload"]) for r in rows]
        return [(f["scenario"], f["commit"], f["producer"]) for f in found]

    with logs_on_failure(tmp_path / "w1.log", tmp_path / "w2.log"):
        try:
            # both workers in the group, then a baseline and a regression everywhere
            wait_until(lambda: all(w.poll() is None for w in workers) and (
                tmp_path / "w2.log").exists(), timeout=30)
            first = [e for s in SCENARIOS for c in range(6)
                     for e in runs(rng, s, f"a{c}", 10.0)]
            first += [e for s in SCENARIOS for e in runs(rng, s, "a6", 400.0)]
            asyncio.run(emit_measurements(settings, "scale-agent", first))
            found = wait_until(lambda: (c := candidates()) and len({s for s, _, _ in c}) == 8
                               and c, timeout=180)
            assert sorted((s, c) for s, c, _ in found) == sorted((s, "a6") for s in SCENARIOS)
            deciders = {p.split("@")[1] for _, _, p in found}
            assert deciders == {f"{os.uname().nodename}:{w.pid}" for w in workers}, \
                "the scenarios' state must be split across both workers"
            victim = workers[0]
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(10)
            # the post-regression level becomes the baseline, then a second regression
            second = [e for s in SCENARIOS for c in range(7, 11)
                      for e in runs(rng, s, f"a{c}", 400.0)]
            second += [e for s in SCENARIOS for e in runs(rng, s, "a11", 900.0)]
            asyncio.run(emit_measurements(settings, "scale-agent", second))
            survivor = f"{os.uname().nodename}:{workers[1].pid}"
            later = wait_until(lambda: len(c := [c for c in candidates() if c[1] == "a11"]) == 8
                               and c, timeout=240, describe=lambda: (
                                   candidates(), asyncio.run(group_offsets(
                                       settings, settings.streams_app_id,
                                       settings.topic("measurements")))))
            assert {p.split("@")[1] for _, _, p in later} == {survivor}
            final = candidates()
            for scenario in SCENARIOS:  # nothing lost, nothing doubled
                assert sorted(c for s, c, _ in final if s == scenario) == ["a11", "a6"]
        except AssertionError:
            for w in workers:  # what each live worker's tasks wait on, into its log
                if w.poll() is None:
                    os.kill(w.pid, signal.SIGUSR1)
            time.sleep(3)
            raise
        finally:
            stop_groups(*workers, timeout=30)
            broker.stop()
