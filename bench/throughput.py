"""Measurement events at full rate through the embedded broker into the streams.

All in one run, on the real parts (Tansu, one Faust worker, chDB):

* ceilings: a plain aiokafka consumer reading the measurements topic, and a
  Faust worker whose only agent counts them (Faust's own cost per event);
* streams as a lab runs them (``ttfb up`` and the compose file): the
  decision worker and the sink's own process, a burst of ``RunCompleted``
  events for many scenarios: events per second until the fold has handled
  the last one (a marker regression at the end of the burst on each
  partition becomes a ``CandidateDetected``) and until the sink has stored
  them all; then the same with one worker holding the sink too
  (``sink_apart`` off), on topics of its own (``--lab-only``: not); with
  ``--history N``, each scenario's first N commits are folded before the
  burst, untimed, so that the burst meets states of a lab that has run a
  while (the ids they remember and their series full) rather than new ones;
* detection latency: with the worker idle, single events that complete a
  regressed commit, one at a time; from the send to the ``CandidateDetected``
  on the detections topic, p50 and p99;
* memory per series: the fold's state for 100,000 series (12 baseline
  commits of 3 runs each), measured with tracemalloc, and its JSON size.

    .venv/bin/python bench/throughput.py [--events 20000] [--history 0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from streams.detection.state import series_to_json
from ttfb import events as ev
from ttfb import native
from ttfb.bus import EmbeddedBroker, consumer_options, ensure_topics, kafka_client_options
from ttfb.settings import Settings
from ttfb.stats import Point, SeriesState
from ttfb.store import open_store

COMPONENTS = {"queue": 1.0, "startup": 40.0, "imports": 2000.0, "config": 10.0,
              "data": 200.0, "model": 900.0, "first_step": 20.0}


def sha(name: str) -> str:
    """A commit id as a repository's (40 hex digits): a state remembers commits."""
    return hashlib.sha1(name.encode()).hexdigest()


def run_event(rng: np.random.Generator, scenario: str, commit: str, rep: int,
              bump: float = 0.0) -> bytes:
    return run_events(rng, scenario, commit, rep, bump)[-1]


def run_events(rng: np.random.Generator, scenario: str, commit: str, rep: int,
               bump: float = 0.0, measured: bool = False) -> list[bytes]:
    """A run's ``RunCompleted``; with ``measured``, after a ``ComponentMeasured``
    for each of its components, as an agent sends a run (the folds skip them,
    the sink stores them)."""
    comps = {k: v * float(rng.lognormal(0, 0.02)) for k, v in COMPONENTS.items()}
    comps["config"] += bump
    run = dict(repo="demo", scenario=scenario, commit=commit, purpose="monitor",
               repetition=rep, runs_total=3, run_id=ev.new_id())
    completed = ev.RunCompleted(**run, components=comps,  # type: ignore[arg-type]
                                ttfb_ms=sum(comps.values()))
    parts = [ev.ComponentMeasured(**run, component=name, ms=ms)  # type: ignore[arg-type]
             for name, ms in comps.items()] if measured else []
    return [ev.encode(event) for event in (*parts, completed)]


def burst(rng: np.random.Generator, events: int, scenarios: int,
          first_commit: int = 0, measured: bool = False) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs: whole commits of 3 runs, round-robin over the
    scenarios (``measured``: each run as ``run_events`` sends it)."""
    out: list[tuple[bytes, bytes]] = []
    commit = first_commit
    while len(out) < events:
        for s in range(scenarios):
            out += [(f"tp{s}".encode(), value) for rep in range(3)
                    for value in run_events(rng, f"tp{s}", sha(f"c{commit}"), rep,
                                            measured=measured)]
        commit += 1
    return out


def regressed(rng: np.random.Generator, scenario: str) -> list[tuple[bytes, bytes]]:
    """Seven commits of ``scenario``, the last with a large regression: a
    candidate once they are folded."""
    return [(scenario.encode(), run_event(rng, scenario, sha(f"{scenario}{c}"), r,
                                          400.0 if c == 6 else 0.0))
            for c in range(7) for r in range(3)]


def markers(partitions: int, prefix: str = "marker") -> list[str]:
    """One marker scenario on each partition (the producer's partitioner on
    the key): the burst is folded once every partition's marker is, not
    just the partition the worker happened to reach the end of first."""
    from aiokafka.partitioner import DefaultPartitioner

    every = list(range(partitions))
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        found.setdefault(DefaultPartitioner()(f"{prefix}{i}".encode(), every, every),
                         f"{prefix}{i}")
        i += 1
    return sorted(found.values())


async def burst_folded(settings: Settings, rng: np.random.Generator, events: int,
                       scenarios: int, detections: Detections, first_commit: int = 0,
                       prefix: str = "marker",
                       measured: bool = False) -> tuple[int, int, float, float, float]:
    """The burst, then the markers (``regressed``), sent: (events, runs among
    them, the moment of the first send, seconds to send them, seconds from
    the first send to the last marker's candidate)."""
    names = markers(settings.partitions, prefix)
    messages = burst(rng, events, scenarios, first_commit, measured) + \
        [m for name in names for m in regressed(rng, name)]
    start = time.perf_counter()
    produce_s = await produce(settings, messages)
    while any(name not in detections.arrived for name in names):
        await asyncio.sleep(0.01)
    runs = sum(b'"type":"RunCompleted"' in value for _, value in messages)
    return len(messages), runs, start, produce_s, max(detections.arrived[n] for n in names) - start


async def produce(settings: Settings, messages: list[tuple[bytes, bytes]]) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**kafka_client_options(settings), linger_ms=5,
                                max_batch_size=1 << 20)
    await producer.start()
    start = time.perf_counter()
    futures = [await producer.send(settings.topic("measurements"), value, key=key)
               for key, value in messages]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - start
    await producer.stop()
    return elapsed


async def raw_consume_rate(settings: Settings, expected: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(settings.topic("measurements"), group_id=None,
                                auto_offset_reset="earliest", **kafka_client_options(settings))
    await consumer.start()
    seen, start = 0, time.perf_counter()
    while seen < expected:
        batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
        seen += sum(len(records) for records in batch.values())
    elapsed = time.perf_counter() - start
    await consumer.stop()
    return seen / elapsed


class Detections:
    """Follows the detections topic: arrival time of each candidate by scenario."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.arrived: dict[str, float] = {}

    async def run(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(self.settings.topic("detections"), group_id=None,
                                    auto_offset_reset="earliest",
                                    **consumer_options(self.settings))
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=50)
                now = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        event = ev.decode(record.value or b"")
                        if isinstance(event, ev.CandidateDetected):
                            self.arrived.setdefault(event.scenario, now)
        finally:
            await consumer.stop()


async def measure(settings: Settings, events: int, scenarios: int, probes: int,
                  workers: list[subprocess.Popen[bytes]], history: int = 0,
                  measured: bool = False) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    store = open_store(settings)
    detections = Detections(settings)
    stop = asyncio.Event()
    follower = asyncio.create_task(detections.run(stop))
    # warm: the worker joins, recovers and stores a first commit
    await produce(settings, [(b"warm", run_event(rng, "warm", "c0", r)) for r in range(3)])
    while not store.query("SELECT count() AS n FROM ttfb.runs WHERE scenario = 'warm'")[0]["n"]:
        for worker in workers:
            if worker.poll() is not None:
                raise RuntimeError(f"{worker.args} exited with {worker.returncode}")
        await asyncio.sleep(0.5)
    stored_before = 0
    if history:  # the scenarios' past, folded before the burst: states of a lab that has run
        stored_before = (await burst_folded(settings, rng, history * 3 * scenarios *
                                            (len(COMPONENTS) + 1 if measured else 1),
                                            scenarios, detections, prefix="history-marker",
                                            measured=measured))[0]
    total, runs, start, produce_s, fold_s = await burst_folded(settings, rng, events, scenarios,
                                                         detections, first_commit=history,
                                                         measured=measured)
    while True:
        n = sum(int(store.query(f"SELECT count() AS n FROM ttfb.{table} WHERE scenario LIKE"
                                " 'tp%' OR scenario LIKE '%marker%'")[0]["n"])
                for table in ("runs", "measurements"))
        if n >= total + stored_before:
            break
        await asyncio.sleep(0.2)
    sink_s = time.perf_counter() - start
    # latency: the worker is idle; one window-completing event at a time
    latencies = []
    for p in range(probes):
        name = f"probe{p}"
        past = [(name.encode(), run_event(rng, name, f"p{c}", r)) for c in range(6)
                for r in range(3)]
        await produce(settings, past)
        await asyncio.sleep(0.3)
        last = [(name.encode(), run_event(rng, name, "p6", r, 400.0)) for r in range(3)]
        await produce(settings, last[:2])
        await asyncio.sleep(0.3)
        sent = time.perf_counter()
        await produce(settings, last[2:])
        while name not in detections.arrived:
            await asyncio.sleep(0.001)
        latencies.append((detections.arrived[name] - sent) * 1000)
    stop.set()
    await follower
    ceiling = await raw_consume_rate(settings, total)
    return {"events": total, "produce_s": round(produce_s, 2),
            "fold_events_per_s": round(total / fold_s), "sink_events_per_s": round(total / sink_s),
            "raw_consume_events_per_s": round(ceiling),
            "detection_latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
            "detection_latency_ms_p99": round(float(np.percentile(latencies, 99)), 1),
            "probes": probes, "history_commits": history,
            "fold_runs_per_s": round(runs / fold_s), "measured": measured}


def faust_ceiling_worker(settings: Settings, expected: int, out: Path) -> None:
    """A Faust worker whose one agent only counts (and acks) the measurements:
    what Faust itself costs per event on this machine, the fold's real ceiling."""
    import faust

    from streams.app import new_app, new_worker

    app = new_app(settings, "ttfb-bench-ceiling")
    topic = app.topic(settings.topic("measurements"), key_serializer="raw",
                      value_serializer="raw")
    seen: dict[str, Any] = {"n": 0, "start": None}

    @app.agent(topic)
    async def count(stream: faust.StreamT) -> None:
        take = stream.noack_take  # type: ignore[attr-defined]
        async for batch in take(settings.decide_batch_size, within=settings.decide_batch_seconds):
            seen["start"] = seen["start"] or time.perf_counter()
            seen["n"] += len(batch)
            for event in batch:
                await stream.ack(event)
            if seen["n"] >= expected:
                out.write_text(str(expected / (time.perf_counter() - seen["start"])))
                os._exit(0)

    worker = new_worker(app, "WARNING")
    sys.argv = [sys.argv[0], "worker"]
    worker.execute_from_commandline()


def stop(worker: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM, then SIGKILL after 30 s, saying so with the end of its log."""
    worker.terminate()
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        print("the worker did not stop in 30 s after SIGTERM; killed", file=sys.stderr)
        print(log.read_text()[-3000:], file=sys.stderr)
        worker.kill()
        worker.wait()


def lab_streams(settings: Settings, args: argparse.Namespace, tmp: Path,
                apart: bool) -> dict[str, Any]:
    """``measure`` of the streams as an embedded lab runs them (``apart``: the
    worker and the sink's own process), or of one worker holding the sink
    too; on topics and a store of their own."""
    name = "apart" if apart else "inside"
    settings = settings.model_copy(update={"topic_prefix": name, "data_dir": tmp / name,
                                           "sink_apart": apart})
    asyncio.run(ensure_topics(settings))
    open_store(settings)  # made before either process opens it
    env = {**os.environ, **settings.to_env()}
    commands = {"worker": [sys.executable, "-m", "streams.app"]}
    if apart:
        commands["sink"] = [sys.executable, "-m", "streams.sink_service"]
    procs = {}
    try:
        for role, command in commands.items():
            with open(tmp / f"{name}-{role}.log", "wb") as log:
                procs[role] = subprocess.Popen(command, env=env, stdout=log,
                                               stderr=subprocess.STDOUT)
        return asyncio.run(measure(settings, args.events, args.scenarios, args.probes,
                                   list(procs.values()), args.history, args.measured))
    finally:
        for role, proc in procs.items():
            stop(proc, tmp / f"{name}-{role}.log")


def faust_ceiling(settings: Settings, expected: int, tmp: Path) -> float:
    out = tmp / "ceiling.txt"
    subprocess.run([sys.executable, __file__, "--ceiling-worker", str(expected), str(out)],
                   env={**os.environ, **settings.to_env()}, timeout=600, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return float(out.read_text())


def memory_per_series(n: int) -> dict[str, float]:
    rng = np.random.default_rng(2)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    series = {}
    for i in range(n):
        points = tuple(Point(float(c), f"{i:06d}{c:034d}", tuple(float(v) for v in
                                                                  rng.lognormal(6, 0.02, 3)))
                       for c in range(12))
        series[f"config|hw{i}|main"] = SeriesState(baseline=points, seen=12)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    one = json.dumps(series_to_json(next(iter(series.values()))))
    return {"series": n, "bytes_per_series_in_memory": round(used / n),
            "json_bytes_per_series": len(one)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--scenarios", type=int, default=200)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=0,
                        help="commits of each scenario folded before the burst, not timed: "
                        "the states of a lab that has run a while (0: the burst starts them)")
    parser.add_argument("--measured", action="store_true",
                        help="each run's ComponentMeasured events before its RunCompleted, as "
                        "agents send them (default: RunCompleted alone, the folds' costliest)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--lab-only", action="store_true",
                        help="leave out the worker holding the sink too")
    parser.add_argument("--ceiling-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_worker:
        faust_ceiling_worker(Settings(), int(args.ceiling_worker[0]), Path(args.ceiling_worker[1]))
        return
    broker = EmbeddedBroker().start()
    with tempfile.TemporaryDirectory() as tmp:
        # the bench's own loopback broker: an embedded lab's, where the development key may sign
        settings = Settings(data_dir=Path(tmp), kafka_bootstrap=broker.bootstrap,
                            embedded_lab=True, streams_metrics_port=0, sink_metrics_port=0,
                            _env_file=None)  # type: ignore[call-arg]
        try:
            result = lab_streams(settings, args, Path(tmp), apart=True)
            if not args.lab_only:
                inside = lab_streams(settings, args, Path(tmp), apart=False)
                result |= {f"sink_in_worker_{key}": inside[key] for key in
                           ("fold_events_per_s", "sink_events_per_s",
                            "detection_latency_ms_p50", "detection_latency_ms_p99")}
            result["faust_trivial_agent_events_per_s"] = round(faust_ceiling(  # the same burst
                settings.model_copy(update={"topic_prefix": "apart"}), result["events"],
                Path(tmp)))
        finally:
            broker.stop()
    result |= memory_per_series(args.series)
    result["folds"] = native.describe()  # (the worker's: it imports them as this process did)
    result["fold_vs_ceiling"] = round(result["fold_events_per_s"]
                                      / result["raw_consume_events_per_s"], 3)
    result["fold_vs_faust_ceiling"] = round(result["fold_events_per_s"]
                                            / result["faust_trivial_agent_events_per_s"], 3)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:<28} {value}")


if __name__ == "__main__":
    main()
