"""Dashboard queries on a store with 10 million measurement rows (chDB).

Seeds 50 scenarios x 7 components x 2 hardware kinds x commits x repeats
(10,000,000 measurements; the matching 1,428,571 runs), generated inside
ClickHouse, then times each page's queries (the same ``ttfb.store.queries``
functions the pages call), several times each, and prints p50/p95 per page.
Target: p95 under 1 s per page.

    .venv/bin/python bench/dashboard.py [--rows 10000000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ttfb.settings import Settings
from ttfb.store import Store, open_store, queries

COMPONENTS = "['queue','startup','imports','config','data','model','first_step']"


def seed(store: Store, rows: int) -> None:
    runs = rows // 7
    db = store.db
    with store.backend.transaction() as tx:
        tx.command(f"""
            INSERT INTO {db}.runs (event_id, run_id, request_id, occurred_at, scenario, repo,
                commit, branch, purpose, arm, repetition, correlation_id, hardware_id,
                fingerprint, status, ttfb_ms, components, reason, exit_code, stderr_tail,
                modules, phases, author, subject, profile)
            SELECT concat('r', toString(number)), concat('r', toString(number)), '',
                   toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalSecond(number),
                   concat('scenario-', toString(number % 50)), 'demo',
                   lower(hex(intDiv(number, 300))), 'main', 'monitor', 'default',
                   number % 3, '', if(number % 100 < 50, 'hwA', 'hwB'), '{{}}', 'completed',
                   3000 + 300 * randNormal(0, 0.05),
                   map('queue', 1., 'startup', 40., 'imports', 1800., 'config', 10.,
                       'data', 200., 'model', 900., 'first_step', 50.),
                   '', NULL, '', [], [], 'Ada Park', 'a commit', '{{}}'
            FROM numbers({runs})""")
        tx.command(f"""
            INSERT INTO {db}.measurements (event_id, run_id, occurred_at, scenario, commit,
                branch, purpose, arm, hardware_id, component, ms)
            SELECT concat('m', toString(number)), concat('r', toString(intDiv(number, 7))),
                   toDateTime64('2026-01-01 00:00:00', 6, 'UTC')
                       + toIntervalSecond(intDiv(number, 7)),
                   concat('scenario-', toString(intDiv(number, 7) % 50)),
                   lower(hex(intDiv(number, 2100))), 'main', 'monitor', 'default',
                   if(intDiv(number, 7) % 100 < 50, 'hwA', 'hwB'),
                   {COMPONENTS}[number % 7 + 1], 100 * (1 + randNormal(0, 0.05))
            FROM numbers({rows})""")


def pages(store: Store) -> dict[str, Callable[[], Any]]:
    return {
        "overview": lambda: (queries.scenario_overview(store), queries.scenario_status(store),
                             queries.system_health(store), queries.skips(store)),
        "scenario": lambda: (queries.scenario_filters(store, "scenario-7"),
                             queries.scenario_runs(store, "scenario-7", "hwA", "main"),
                             queries.findings(store)),
        "regressions": lambda: (queries.findings(store), queries.bisects(store)),
        "experiments": lambda: queries.experiments(store),
        "calibration": lambda: queries.calibrations(store),
        "dead letters": lambda: queries.dead_letters(store),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Settings(data_dir=Path(tmp), _env_file=None))
        started = time.perf_counter()
        seed(store, args.rows)
        print(f"seeded {store.count('measurements'):,} measurements and "
              f"{store.count('runs'):,} runs in {time.perf_counter() - started:.0f}s")
        print(f"{'page':<13} {'p50 s':>7} {'p95 s':>7}  (each includes opening a chDB session)")
        for name, run in pages(store).items():
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            p50, p95 = np.percentile(times, [50, 95])
            print(f"{name:<13} {p50:>7.3f} {p95:>7.3f}  {'ok' if p95 < 1 else 'MISSES 1 s'}")


if __name__ == "__main__":
    main()
