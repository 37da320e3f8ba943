"""Bisection over simulated ranges: ttfb-lab vs Pinpoint-style vs git bisect.

For each configuration (range length, shift, CV) many ranges are simulated
with the culprit at a uniform position; a share (20 %) has two partial
culprits (60 % and 40 % of the shift). Reported per method, all in one run:
the correct-culprit rate (the larger culprit of a two-culprit range), the
rate on single-culprit ranges, the rate of naming one of the true culprits,
and the mean runs spent.

* ttfb-lab: the streams' bisect fold from scratch (4 runs of each endpoint,
  then probabilistic bisection in batches of 2 runs beside one run of each
  endpoint, stop at 99 % posterior on one commit).
* Pinpoint-style: 10 runs per side per step, 10 more when inconclusive,
  p = min(Mann-Whitney, Kolmogorov-Smirnov) <= 0.01 means "differs".
* git bisect: one run per step, classified by the nearer endpoint run.
* ttfb-lab+hint: the same fold where the agent marks the commits that touch
  the scenario's files: a random 20 % of the range, the culprits among them
  (a monorepo where most commits are about something else).
* ttfb-lab+handed: the same fold handed what a confirmation hands over: its
  8 runs of each endpoint and 3 monitoring runs of every commit of the
  range, each commit's taken at a machine level of its own, 2 % apart.

A second table puts the lab's machine in: its level wanders from run to run
(a mean-reverting walk, spread ``drift``), and the confirmation hands over
endpoint runs taken when the machine was 10 % slower (as in a demo run that
bisected an improvement to an ordinary commit). It compares, in the same
run and on the same draws, the fold's batches run beside one run of each
endpoint with a level per batch (``paired``, the default) and bare batches
against every endpoint run (``unpaired``), and paired batches handed 3
monitoring runs of every commit, each commit's at a level drawn with the
spread ``drift`` (``paired+mon``).

    .venv/bin/python bench/bisection.py [--trials 100] [--commits 64,256] [--json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from streams.bisect import BisectPolicy
from streams.simulate import simulate_bisect


def sample(rng: np.random.Generator, mean: float, cv: float, n: int) -> np.ndarray:
    s = np.sqrt(np.log1p(cv**2))
    return mean * rng.lognormal(-s * s / 2, s, n)


def pinpoint(level: Callable[[int], float], n: int, cv: float,
             rng: np.random.Generator) -> tuple[int, int]:
    runs = {0: sample(rng, level(0), cv, 10), n - 1: sample(rng, level(n - 1), cv, 10)}
    lo, hi = 0, n - 1

    def differs(a: np.ndarray, b: np.ndarray) -> float:
        return min(sps.mannwhitneyu(a, b).pvalue, sps.ks_2samp(a, b).pvalue)

    while hi - lo > 1:
        mid = (lo + hi) // 2
        runs[mid] = sample(rng, level(mid), cv, 10)
        for extra in (False, True):
            if extra:  # inconclusive: 10 more runs on each side
                for i in (lo, mid, hi):
                    runs[i] = np.concatenate([runs[i], sample(rng, level(i), cv, 10)])
            p_lo, p_hi = differs(runs[lo], runs[mid]), differs(runs[mid], runs[hi])
            if (p_lo <= 0.01) != (p_hi <= 0.01):
                break
        bad = p_lo <= 0.01 if (p_lo <= 0.01) != (p_hi <= 0.01) else \
            abs(runs[mid].mean() - runs[hi].mean()) < abs(runs[mid].mean() - runs[lo].mean())
        lo, hi = (lo, mid) if bad else (mid, hi)
    return hi, sum(len(v) for v in runs.values())


def git_bisect(level: Callable[[int], float], n: int, cv: float,
               rng: np.random.Generator) -> tuple[int, int]:
    good, bad = sample(rng, level(0), cv, 1)[0], sample(rng, level(n - 1), cv, 1)[0]
    lo, hi, spent = 0, n - 1, 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        value = sample(rng, level(mid), cv, 1)[0]
        spent += 1
        lo, hi = (lo, mid) if abs(value - bad) < abs(value - good) else (mid, hi)
    return hi, spent


def scenario(rng: np.random.Generator, n: int, shift: float,
             two: bool) -> tuple[Callable[[int], float], set[int], int]:
    """The level of each commit, the true culprits and the larger one."""
    first = int(rng.integers(1, n))
    if not two:
        return (lambda i: 1000.0 * (1 + shift if i >= first else 1.0)), {first}, first
    second = int(rng.integers(1, n))
    while second == first:
        second = int(rng.integers(1, n))
    big, small = (first, second)  # the first culprit carries 60 % of the shift
    return (lambda i: 1000.0 * (1 + 0.6 * shift * (i >= big) + 0.4 * shift * (i >= small))), \
        {big, small}, big


METHODS = ("ttfb-lab", "ttfb-lab+hint", "ttfb-lab+handed", "pinpoint", "git-bisect")
# "+handed": what a confirmation hands over: its 8 runs of each endpoint, and
# 3 monitoring runs of every commit of the range, each commit's taken at a
# machine level of its own (2 % spread)
EVIDENCE, MONITORED, MONITOR_SPREAD = (8, 0.0), 3, 0.02
HINT_SHARE = 0.2


def hinted(rng: np.random.Generator, n: int, culprits: set[int]) -> list[bool]:
    """The agent's hint: a random share of the range touches the scenario,
    the culprits among it."""
    return [bool(x) or i in culprits for i, x in enumerate(rng.random(n) < HINT_SHARE)]


@dataclass(frozen=True)
class Range:
    """One simulated range: its trial number (the bisect's seed), whether it
    has two culprits, each commit's level, its culprits, the larger one, the
    agent's hint, and what the peers named at what cost."""

    trial: int
    two: bool
    level: Callable[[int], float]
    culprits: set[int]
    larger: int
    touched: list[bool]
    peers: dict[str, tuple[int, int]]


def ranges(trials: int, n: int, shift: float, cv: float,
           two_share: float = 0.2) -> Iterator[Range]:
    """The ranges of one row, drawn from the row's own random stream (the
    hint and the peers' runs included, so every method, here or in another
    bench, meets the very same ranges)."""
    rng = np.random.default_rng(int(n * 1000 + shift * 100 + cv * 10))
    for t in range(trials):
        two = rng.random() < two_share
        level, culprits, larger = scenario(rng, n, shift, two)
        touched = hinted(rng, n, culprits)
        peers = {name: method(level, n, cv, rng)
                 for name, method in (("pinpoint", pinpoint), ("git-bisect", git_bisect))}
        yield Range(t, two, level, culprits, larger, touched, peers)


def run(trials: int, configs: list[tuple[int, float, float]],
        two_share: float = 0.2) -> list[dict[str, object]]:
    """Per method: correct = names the larger culprit (the only one of a single-culprit
    range); also the rate on single-culprit ranges and the rate of naming a true culprit."""
    rows = []
    for n, shift, cv in configs:
        tally = {m: {"correct": 0, "runs": 0, "single": 0, "singles": 0, "any": 0,
                     "single_runs": 0} for m in METHODS}
        for r in ranges(trials, n, shift, cv, two_share):
            t, two, level, culprits, larger = r.trial, r.two, r.level, r.culprits, r.larger
            found = {}
            for name, hint, handed in (("ttfb-lab", None, False),
                                       ("ttfb-lab+hint", r.touched, False),
                                       ("ttfb-lab+handed", None, True)):
                result = simulate_bisect(n, level, seed=t, cv=cv, affected=hint,
                                         evidence=EVIDENCE if handed else None,
                                         monitored=MONITORED if handed else 0,
                                         monitor_spread=MONITOR_SPREAD)
                found[name] = (int(result.culprit[1:]) if result.culprit else -1,
                               result.runs_spent)
            found.update(r.peers)
            for name, (got, spent) in found.items():
                row = tally[name]
                row["correct"] += got == larger
                row["any"] += got in culprits
                row["runs"] += spent
                row["singles"] += not two
                row["single"] += (not two) and got == larger
                row["single_runs"] += 0 if two else spent
        for name, row in tally.items():
            rows.append({"commits": n, "shift_pct": shift * 100, "cv_pct": cv * 100,
                         "method": name, "correct": row["correct"] / trials,
                         "correct_single": row["single"] / max(1, row["singles"]),
                         "names_a_culprit": row["any"] / trials,
                         "mean_runs": row["runs"] / trials,
                         "runs_single": row["single_runs"] / max(1, row["singles"]),
                         "runs_two": (row["runs"] - row["single_runs"])
                         / max(1, trials - row["singles"])})
    return rows


DRIFTS = [(17, 0.10, 0.04, 0.05, True), (17, -0.20, 0.06, 0.05, True),
          (32, 0.05, 0.03, 0.0, False), (32, 0.05, 0.03, 0.05, False),
          (32, 0.05, 0.03, 0.10, False), (64, 0.10, 0.05, 0.05, False)]


def drifting(trials: int) -> list[dict[str, object]]:
    """Paired against unpaired batches on a wandering machine, same draws."""
    rows = []
    for n, shift, cv, drift, evidence in DRIFTS:
        for paired, monitored in ((True, 0), (False, 0), (True, MONITORED)):
            policy = BisectPolicy(explain=False, paired=paired)
            rng = np.random.default_rng(int(n * 1000 + abs(shift) * 100 + drift * 10))
            correct = runs = 0
            for t in range(trials):
                level, culprits, at = scenario(rng, n, shift, two=False)
                result = simulate_bisect(
                    n, level, seed=t, cv=cv, policy=policy, affected=hinted(rng, n, culprits),
                    drift=drift,
                    direction="regression" if shift > 0 else "improvement",
                    evidence=(8, 0.10) if evidence else None, monitored=monitored)
                correct += result.culprit == f"c{at:02d}"
                runs += result.runs_spent
            rows.append({"commits": n, "shift_pct": shift * 100, "cv_pct": cv * 100,
                         "drift_pct": drift * 100, "evidence_off": evidence,
                         "batches": ("paired" if paired else "unpaired")
                         + ("+mon" if monitored else ""),
                         "correct": correct / trials, "mean_runs": runs / trials})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--commits", default="64,256", help="range lengths to simulate")
    args = parser.parse_args()
    configs = [(n, s, cv) for n in map(int, args.commits.split(","))
               for s in (0.03, 0.05, 0.10) for cv in (0.03, 0.05)]
    rows = run(args.trials, configs)
    drift_rows = drifting(args.trials)
    if args.json:
        print(json.dumps({"methods": rows, "drifting": drift_rows}, indent=2))
        return
    print(f"{'commits':>7} {'shift':>6} {'cv':>4}  {'method':<15} {'correct':>8}"
          f" {'single':>7} {'a culprit':>9} {'runs':>7} {'single':>7} {'two':>7}")
    for r in rows:
        print(f"{r['commits']:>7} {r['shift_pct']:>5.0f}% {r['cv_pct']:>3.0f}%  "
              f"{r['method']:<15} {r['correct']:>8.1%} {r['correct_single']:>7.1%}"
              f" {r['names_a_culprit']:>9.1%} {r['mean_runs']:>7.1f}"
              f" {r['runs_single']:>7.1f} {r['runs_two']:>7.1f}")
    print("\nA wandering machine (hinted ranges; 'evidence' = the confirmation's endpoint runs"
          " taken at a 10 % slower level)")
    print(f"{'commits':>7} {'shift':>6} {'cv':>4} {'drift':>5} {'evidence':>8}  {'batches':<9}"
          f" {'correct':>8} {'runs':>7}")
    for r in drift_rows:
        print(f"{r['commits']:>7} {r['shift_pct']:>5.0f}% {r['cv_pct']:>3.0f}%"
              f" {r['drift_pct']:>4.0f}% {'10 %' if r['evidence_off'] else '-':>8}"
              f"  {r['batches']:<9}"
              f" {r['correct']:>8.1%} {r['mean_runs']:>7.1f}")


if __name__ == "__main__":
    main()
