"""A demo run's stored confirmation runs, through both final-look tests.

For every confirmation a demo run stored (``ttfb.runs``, purpose confirm,
warm-up runs left out), each component's final-look p-value (two-sided) by
comparing the two sides' runs, each look a block (``compare_blocked``), and by
pairing neighbouring runs (``compare_paired``); and, per component, how much
of a run's variance its neighbour shares: the variance of the neighbours'
differences against twice a side's variance within the look (1 on a machine
whose level holds still, less where it wanders).

    .venv/bin/python bench/replay_confirmations.py DATA_DIR [DATA_DIR ...]

DATA_DIR is a lab's data directory (``.ttfb/demo-lab`` after
``ttfb up --demo``); nothing else may hold its store while this reads it.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np

from streams.detection import TOTAL, WARMUP, Policy
from ttfb.settings import Settings
from ttfb.stats import compare_blocked, compare_paired
from ttfb.store import open_store

LOOK = 2 * Policy().confirm_first_runs  # counted runs of both sides in the first look


def _looks(runs: list[dict[str, Any]], name: str) -> tuple[list[list[float]], list[list[float]]]:
    value = (lambda r: r["ttfb_ms"]) if name == TOTAL else (lambda r: r["components"][name])
    looks = [runs[:LOOK], runs[LOOK:]] if len(runs) > LOOK else [runs]
    return ([[value(r) for r in look if r["arm"] == "before"] for look in looks],
            [[value(r) for r in look if r["arm"] == "after"] for look in looks])


def replay(data_dir: str, shared: dict[str, list[float]]) -> list[dict[str, Any]]:
    """The confirmed findings' rows; adds each look's variance of the
    neighbours' differences and twice a side's variance to ``shared``
    (component -> [sum of the first, sum of the second])."""
    store = open_store(Settings(data_dir=data_dir))
    verdicts = {}
    for row in store.query("SELECT type, payload FROM ttfb.events WHERE type IN"
                           " ('RegressionConfirmed', 'ImprovementConfirmed')"):
        p = json.loads(row["payload"])
        verdicts[(p["detection_id"], p["component"])] = row["type"]
    by: dict[str, list[dict[str, Any]]] = {}
    for r in store.query("SELECT scenario, correlation_id, arm, components, ttfb_ms"
                         " FROM ttfb.runs WHERE purpose = 'confirm' AND status = 'completed'"
                         " AND arm != {w:String} ORDER BY occurred_at", {"w": WARMUP}):
        by.setdefault(r["correlation_id"], []).append(r)
    rows = []
    for detection, runs in by.items():
        for name in [*sorted(runs[0]["components"]), TOTAL]:
            before, after = _looks(runs, name)
            for xs, ys in zip(before, after, strict=True):
                n = min(len(xs), len(ys))
                if n > 2:
                    diffs = [math.log(ys[i] / xs[i]) for i in range(n)]
                    sums = shared.setdefault(name, [0.0, 0.0])
                    sums[0] += float(np.var(diffs, ddof=1))
                    sums[1] += float(np.var(np.log(xs), ddof=1) + np.var(np.log(ys), ddof=1))
            if (detection, name) not in verdicts:
                continue
            sides, pairs = compare_blocked(before, after), compare_paired(before, after)
            rows.append({"data_dir": data_dir, "scenario": runs[0]["scenario"],
                         "component": name, "verdict": verdicts[(detection, name)],
                         "runs": len(runs), "effect_pct": round(sides.effect_pct, 1),
                         "p_sides": sides.p_value, "p_pairs": pairs.p_value})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", nargs="+")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shared: dict[str, list[float]] = {}
    rows = [row for d in args.data_dirs for row in replay(d, shared)]
    ratio = {n: diffs / sides for n, (diffs, sides) in sorted(shared.items()) if sides}
    if args.json:
        print(json.dumps({"confirmed": rows, "neighbour_variance_ratio": ratio}, indent=2))
        return
    for r in rows:
        print(f"{r['data_dir']:<24} {r['scenario']:<7} {r['component']:<11} {r['verdict']:<21}"
              f" {r['runs']:>3} runs {r['effect_pct']:>8.1f} %  sides p = {r['p_sides']:.4f}"
              f"  pairs p = {r['p_pairs']:.4f}")
    print("variance of neighbours' differences / twice a side's variance in a look:")
    print("  " + ", ".join(f"{n} {v:.2f}" for n, v in ratio.items()))


if __name__ == "__main__":
    main()
