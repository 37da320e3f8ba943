"""How fast the decision state is rebuilt from a store's event log.

Synthetic monitoring history (SCENARIOS scenarios, 3 runs a commit, a +15 %
step in one component every 40 commits), written to a fresh chDB store on
the fold's topics; then, as ``ttfb replay`` and an embedded lab's start do:
load the events back in order (``streams.rebuild.stored_events``) and fold
them (``streams.rebuild.replay``), each timed on its own.

    .venv/bin/python bench/rebuild.py [--events N] [--scenarios S]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
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


def history(events: int, scenarios: int, seed: int = 0) -> list[ev.Event]:
    rng = np.random.default_rng(seed)
    out: list[ev.Event] = []
    commits = events // (3 * scenarios)
    for c in range(commits):
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
    events = history(args.events, args.scenarios)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), _env_file=None)  # type: ignore[call-arg]
        store = open_store(settings)
        for i in range(0, len(events), 5000):
            store.write(events[i:i + 5000], topic=settings.topic("measurements"))
        started = time.perf_counter()
        loaded = list(stored_events(store, settings))
        load_s = time.perf_counter() - started
    rebuilt = replay(loaded, Policy())
    outputs = len(rebuilt.outputs)
    print(f"{len(loaded):,} events ({args.scenarios} scenarios): load {load_s:.2f} s "
          f"({len(loaded) / load_s:,.0f}/s), fold {rebuilt.seconds:.2f} s "
          f"({rebuilt.events / rebuilt.seconds:,.0f}/s), {outputs:,} outputs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
