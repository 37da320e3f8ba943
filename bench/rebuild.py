"""How fast the decision state is rebuilt from a store's event log.

Synthetic monitoring history (SCENARIOS scenarios, 3 runs a commit, a +15 %
step in one component every 40 commits), folded as a live lab folds it and
written to a fresh chDB store with the fold's outputs (each commit's
``CommitTested`` after its runs, the candidates, the commands), as a lab's
store holds them. Then, side by side on that store: the fold's input read
back in order alone (``streams.rebuild.stored_events``); every commit tested
again (``replay``: ``ttfb replay``); and ``rebuild_from_store``'s fold
(each test that found nothing taken from its record). The time spent
reading and folding is counted apart; the states both leave must be
identical. Then a lab's start as the worker makes it (``rebuild_from_store``
on the store opened by ``open_for_rebuild``): the first (the whole log; a
checkpoint written), and, ``--tail`` runs later, one from that checkpoint,
whose states must be those of a fold of the whole log. And the process's
peak memory.

    .venv/bin/python bench/rebuild.py [--events N] [--scenarios S] [--tail T]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.bisect import BisectBook, BisectPolicy  # noqa: E402
from streams.bisect import to_json as bisect_to_json  # noqa: E402
from streams.decisions import topic_for  # noqa: E402
from streams.detection import Policy, ScenarioState, to_json  # noqa: E402
from streams.detection.recorded import Records  # noqa: E402
from streams.fold import fold_event  # noqa: E402
from streams.rebuild import (  # noqa: E402
    Rebuilt,
    open_for_rebuild,
    rebuild_from_store,
    replay,
    stored_events,
)
from ttfb import events as ev  # noqa: E402
from ttfb import native  # noqa: E402
from ttfb.settings import Settings  # noqa: E402
from ttfb.store import Store, open_store  # noqa: E402

BASE = {"queue": 1.0, "startup": 40.0, "imports": 2000.0, "config": 10.0, "data": 200.0,
        "model": 900.0, "first_step": 20.0}


def history(events: int, scenarios: int, seed: int = 0, first_commit: int = 0) -> list[ev.Event]:
    """Commits ``first_commit`` on, ``events`` runs of them (the same runs
    whether drawn at once or a range at a time: each commit seeds its own)."""
    out: list[ev.Event] = []
    commits = events // (3 * scenarios)
    for c in range(first_commit, first_commit + commits):
        rng = np.random.default_rng([seed, c])
        level = 1.0 + 0.15 * (c // 40 % 2)
        for s in range(scenarios):
            for rep in range(3):
                comps = {k: v * float(rng.lognormal(0, 0.02)) * (level if k == "data" else 1)
                         for k, v in BASE.items()}
                out.append(ev.RunCompleted(
                    repo="demo", scenario=f"s{s}", commit=f"c{c}", repetition=rep, runs_total=3,
                    purpose="monitor", ttfb_ms=sum(comps.values()), components=comps))  # type: ignore[arg-type]
    return out


def write_live(store: Store, settings: Settings, events: int, scenarios: int,
               states: dict[str, tuple[ScenarioState, BisectBook]] | None = None,
               first_commit: int = 0) -> int:
    """The history from ``first_commit`` on, folded as a live lab folds it
    (from ``states``, changed in place), written with the fold's outputs on
    their topics, each commit's after its runs; a commit range at a time (a
    million events are never in memory at once). Returns how many events
    were written."""
    states = {} if states is None else states
    policy, bisect_policy = Policy(), BisectPolicy()
    step = 5000 // (3 * scenarios) * 3 * scenarios or 3 * scenarios
    written = 0
    for first in range(0, events, step):
        items: list[tuple[str, ev.Event, bytes | None]] = []
        for event in history(min(step, events - first), scenarios,
                             first_commit=first_commit + first // (3 * scenarios)):
            items.append((settings.topic("measurements"), event, None))
            detector, book = states.get(event.scenario) or (ScenarioState(), BisectBook())
            detector, book, out = fold_event(event, detector, book, policy, bisect_policy)
            states[event.scenario] = (detector, book)
            items += [(settings.topic(topic_for(o)), o, None) for o in out]
        written += store.write_batch(items)
    return written


def state_json(states: dict[str, tuple[ScenarioState, BisectBook]]) -> dict[str, Any]:
    """Every scenario's state as JSON, to compare two folds' outcomes."""
    return {s: (to_json(d), bisect_to_json(b)) for s, (d, b) in states.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--scenarios", type=int, default=10)
    parser.add_argument("--tail", type=int, default=3_000,
                        help="runs written after the first start's checkpoint")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), _env_file=None)  # type: ignore[call-arg]
        store = open_store(settings)
        live: dict[str, tuple[ScenarioState, BisectBook]] = {}
        stored = write_live(store, settings, args.events, args.scenarios, live)
        started = time.perf_counter()
        loaded = sum(1 for _ in stored_events(store, settings, records=True))
        load_s = time.perf_counter() - started
        print(f"decision folds: {native.describe()}", flush=True)
        print(f"{stored:,} events stored ({args.events:,} runs, {args.scenarios} scenarios); "
              f"the fold's input and the tests' records read alone: {loaded:,} in "
              f"{load_s:.2f} s ({loaded / load_s:,.0f}/s)", flush=True)
        # streamed page by page into the fold, the newest outputs kept (memory
        # stays bounded), as ``ttfb replay`` and a lab's start do
        reading = [0.0]

        def timed(events: Iterator[ev.Event]) -> Iterator[ev.Event]:
            while True:
                started = time.perf_counter()
                event = next(events, None)
                reading[0] += time.perf_counter() - started
                if event is None:
                    return
                yield event

        finals = []
        for name, records in (("every commit tested again", False),
                              ("recorded outcomes taken (a lab's start)", True)):
            reading[0] = 0.0
            started = time.perf_counter()
            rebuilt = replay(timed(stored_events(store, settings, records=records)), Policy(),
                             records=Records() if records else None)
            rebuild_s = time.perf_counter() - started
            fold_s = rebuild_s - reading[0]
            finals.append(state_json(rebuilt.states))
            print(f"{name}: {rebuilt.events:,} events folded in {rebuild_s:.2f} s "
                  f"({rebuilt.events / rebuild_s:,.0f}/s), of which reading {reading[0]:.2f} s "
                  f"and folding {fold_s:.2f} s ({rebuilt.events / fold_s:,.0f}/s); "
                  f"{rebuilt.produced:,} outputs", flush=True)
        same = finals[0] == finals[1]
        print(f"states identical: {same}", flush=True)
        same = from_checkpoint(store, settings, args, live, stored) and same
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:,.0f} MiB", flush=True)
    return 0 if same else 1


def start(settings: Settings, hold_s: float | None = None) -> Rebuilt:
    """A lab's start: the store opened for it (as the worker opens it, or
    with its session held ``hold_s``; 0: a session a query), the state
    rebuilt (a checkpoint written), the store closed."""
    store = open_for_rebuild(settings) if hold_s is None else \
        open_store(settings, hold_s=hold_s)
    try:
        return rebuild_from_store(store, settings, Policy(), lag_s=0)[0]
    finally:
        store.close()


def from_checkpoint(store: Store, settings: Settings, args: argparse.Namespace,
                    live: dict[str, tuple[ScenarioState, BisectBook]], stored: int) -> bool:
    """A lab's start as ``rebuild_from_store`` makes it: the first on this
    store (no checkpoint: the whole log, and a checkpoint written), then
    ``--tail`` more runs, and a start from that checkpoint (first with a
    session a query, the checkpoint it wrote then dropped, then as the
    worker makes it); its states against those of a fold of the whole log."""
    started = time.perf_counter()
    first = start(settings)
    first_s = time.perf_counter() - started
    print(f"a lab's start, no checkpoint: {first.events:,} events folded, checkpoint "
          f"written, in {first_s:.2f} s ({first.events / first_s:,.0f}/s)", flush=True)
    commits = args.events // (3 * args.scenarios)
    stored += write_live(store, settings, args.tail, args.scenarios, live, first_commit=commits)
    started = time.perf_counter()
    start(settings, hold_s=0)
    per_query_s = time.perf_counter() - started
    newest = store.query(f"SELECT max(written_at) AS w FROM {store.db}.checkpoints")[0]["w"]
    store.backend.command(f"ALTER TABLE {store.db}.checkpoints DELETE WHERE written_at ="
                          " {w:DateTime64(6, 'UTC')} SETTINGS mutations_sync = 2", {"w": newest})
    started = time.perf_counter()
    second = start(settings)
    second_s = time.perf_counter() - started
    print(f"a lab's start from its checkpoint, {args.tail:,} runs later: "
          f"{second.events:,} events folded in {second_s:.2f} s (a log of {stored:,} "
          f"events: {stored / second_s:,.0f}/s of it; a session a query: {per_query_s:.2f} s);"
          f" checkpoint at {second.since}", flush=True)
    whole = replay(stored_events(store, settings, records=True), Policy(), records=Records())
    same = state_json(second.states) == state_json(whole.states)
    print(f"states identical to the whole log's fold: {same}", flush=True)
    return same


if __name__ == "__main__":
    sys.exit(main())
