"""False alarms per simulated week at the default budget: the streams'
monitoring screen and confirmation over a week of commits that change nothing.

A week is the calibration's assumption (``Policy.tests_per_week``): a commit
an hour, each tested in 8 series (7 components and the total), so 168 commits
x 8 series. Every series is null: 3 runs a commit (5 for the first), CV 5 %,
log-normal or bimodal (a cold cache on 15 % of runs, +15 %). The screen is
the streams' detector at its default operating point (``Policy().detector``:
alpha 0.05, k 1, in use until the first calibration) or at the fold's
calibrated points with k 1 (alpha 0.01 and 0.001, the strictest the fold's
calibration offers). Each candidate goes
through the two-look confirmation, and its replication look where the
verdict is near the level (``streams.simulate.simulate_confirmation``)
on fresh runs of a machine whose level holds still, or wanders from run to
run (a random walk, 5 % steps, and 15 % between looks); a false alarm is a
confirmation of any component.

    .venv/bin/python bench/week.py [--weeks 40] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from typing import Any

import numpy as np

from streams.detection import Policy
from streams.simulate import Draw, confirmed, simulate_confirmation, unnamed_component, wander
from ttfb.stats import DetectorConfig, Point, SeriesState, apply

COMMITS = 24 * 7  # a commit an hour
SERIES = 8


def candidates(rng: np.random.Generator, cfg: DetectorConfig, shape: str) -> int:
    """Candidates the screen raises in one null series of a week."""
    state, raised = SeriesState(), 0
    for i in range(COMMITS):
        logs = rng.normal(0.0, 0.05, 5 if i == 0 else 3)
        if shape == "bimodal":
            logs = logs + np.where(rng.random(logs.size) < 0.15, math.log(1.15), 0.0)
        state, change = apply(state, Point(float(i), f"c{i}", tuple(2000 * np.exp(logs))), cfg)
        raised += change is not None
    return raised


def false_confirmations(rng: np.random.Generator, count: int, machine: str) -> int:
    policy = Policy()
    alarms = 0
    for _ in range(count):
        draw: Draw = wander(0.0, 0.05) if machine == "wandering" else \
            unnamed_component(0.0, bimodal=True)
        alarms += confirmed(simulate_confirmation(
            rng, policy, draw, between=0.15 if machine == "wandering" else 0.0))
    return alarms


def week(rng: np.random.Generator, cfg: DetectorConfig, machine: str) -> tuple[int, int]:
    """(candidates, confirmed false alarms) of one simulated week."""
    raised = sum(candidates(rng, cfg, "bimodal" if s % 2 else "lognormal")
                 for s in range(SERIES))
    return raised, false_confirmations(rng, raised, machine)


def measure(weeks: int, seed: int = 2026) -> list[dict[str, Any]]:
    default = Policy().detector
    rows = []
    for label, cfg in (("default (0.05, k 1)", default),
                       ("calibrated 0.01, k 1", dataclasses.replace(default, alpha=0.01, k=1.0)),
                       ("calibrated 0.001, k 1", dataclasses.replace(default, alpha=0.001, k=1.0))):
        for machine in ("still", "wandering"):
            rng = np.random.default_rng(seed)
            found = [week(rng, cfg, machine) for _ in range(weeks)]
            alarms = np.array([a for _, a in found], dtype=float)
            rows.append({"screen": label, "machine": machine, "weeks": weeks,
                         "candidates_per_week": float(np.mean([c for c, _ in found])),
                         "false_confirmations_per_candidate":
                             float(alarms.sum() / max(1, sum(c for c, _ in found))),
                         "false_alarms_per_week": float(alarms.mean()),
                         # Poisson 95 % upper bound of the weekly rate
                         "upper_95": float(_poisson_upper(int(alarms.sum())) / weeks),
                         "weeks_with_more_than_one": int((alarms > 1).sum())})
    return rows


def _poisson_upper(count: int, confidence: float = 0.95) -> float:
    from scipy.stats import chi2

    return float(chi2.ppf(confidence, 2 * count + 2) / 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weeks", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.weeks)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{SERIES} null series x {COMMITS} commits a week, {args.weeks} weeks; budget"
          f" {Policy().budget_per_week:g} false alarm a week")
    print(f"{'screen':<22} {'machine':<10} {'candidates/wk':>13} {'confirmed/cand.':>15}"
          f" {'false alarms/wk':>15} {'95% upper':>9} {'weeks > 1':>9}")
    for r in rows:
        print(f"{r['screen']:<22} {r['machine']:<10} {r['candidates_per_week']:>13.1f}"
              f" {r['false_confirmations_per_candidate']:>15.2%}"
              f" {r['false_alarms_per_week']:>15.2f} {r['upper_95']:>9.2f}"
              f" {r['weeks_with_more_than_one']:>9}")


if __name__ == "__main__":
    main()
