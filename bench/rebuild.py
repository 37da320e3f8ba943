"""How fast the decision state is rebuilt from a store's event log.

Synthetic monitoring history (SCENARIOS scenarios, 3 runs a commit, a +15 %
step in one component every 40 commits), written to a fresh chDB store on
the fold's topics; then the events are read back in order
(``streams.rebuild.stored_events``), once alone and once streamed into the
fold (``streams.rebuild.replay``) as an embedded lab's start does, the time
spent reading and folding counted apart; and the process's peak memory.

    .venv/bin/python bench/rebuild.py [--events N] [--scenarios S]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.detection import Policy  # noqa: E402
from streams.rebuild import replay, stored_events  # noqa: E402
from ttfb import events as ev  # noqa: E402
from ttfb.settings import Settings  # noqa: E402
from ttfb.store import open_store  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--scenarios", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), _env_file=None)  # type: ignore[call-arg]
        store = open_store(settings)
        # written a commit range at a time: a million events never in memory at once
        step = 5000 // (3 * args.scenarios) * 3 * args.scenarios or 3 * args.scenarios
        for first in range(0, args.events, step):
            chunk = history(min(step, args.events - first), args.scenarios,
                            first_commit=first // (3 * args.scenarios))
            store.write(chunk, topic=settings.topic("measurements"))
        started = time.perf_counter()
        loaded = sum(1 for _ in stored_events(store, settings))
        load_s = time.perf_counter() - started
        # as a lab's start does: the stored events streamed page by page into
        # the fold, the newest outputs kept (memory stays bounded)
        reading = [0.0]

        def timed(events: Iterator[ev.Event]) -> Iterator[ev.Event]:
            while True:
                started = time.perf_counter()
                event = next(events, None)
                reading[0] += time.perf_counter() - started
                if event is None:
                    return
                yield event

        started = time.perf_counter()
        rebuilt = replay(timed(stored_events(store, settings)), Policy())
        rebuild_s = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fold_s = rebuild_s - reading[0]
    print(f"{loaded:,} events ({args.scenarios} scenarios): load alone {load_s:.2f} s "
          f"({loaded / load_s:,.0f}/s); load and fold {rebuild_s:.2f} s "
          f"({rebuilt.events / rebuild_s:,.0f}/s), of which reading {reading[0]:.2f} s and "
          f"folding {fold_s:.2f} s ({rebuilt.events / fold_s:,.0f}/s); "
          f"{rebuilt.produced:,} outputs; peak memory {peak:,.0f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
