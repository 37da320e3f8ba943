"""Bisect policies side by side on how they check that a confirmed change is
there: how often each retracts a change that is not there and names the
culprit of one that is, and the runs each spends.

Rows (commits, change): where nothing changed, the confirmation handed over
endpoint runs 6 % apart (as one fooled by its runs would); elsewhere a real
step, the confirmation's 8 endpoint runs handed over; CV 3 %. Ranges of 2
and 6 commits are the demo's (a commit and its parent; a few commits, one
touching the scenario), where the closing check runs the endpoints itself;
16-64 commits are a search's. Each policy is given as JSON fields of
``BisectPolicy``; trials number from ``--offset``.

    .venv/bin/python bench/bisect_reproduction.py '{"retract_in_search_odds": 0}' '{}' \
        --offset 1000   # chosen on
    .venv/bin/python bench/bisect_reproduction.py '{"retract_in_search_odds": 0}' '{}' \
        --offset 0      # held out
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from streams.bisect import BisectPolicy
from streams.simulate import simulate_bisect

ROWS = [(2, 0.0), (2, 0.05), (2, 0.25), (6, 0.0), (6, 0.10), (16, 0.0), (32, 0.0),
        (64, 0.0), (32, 0.03), (32, 0.05)]


def cell(policy: BisectPolicy, n: int, shift: float, trials: int,
         offset: int) -> tuple[float, float]:
    """(share right, mean runs) over ``trials`` ranges: right is retracted
    where nothing changed, the culprit named where something did."""
    right = runs = 0
    for seed in range(offset, offset + trials):
        if shift:
            at = int(np.random.default_rng(seed).integers(1, n))
            done = simulate_bisect(n, lambda i, at=at: 300.0 * (1 + shift if i >= at else 1.0),
                                   seed, 0.03, policy=policy, evidence=(8, 0.0))
            right += done.reproduced and done.culprit == f"c{at:02d}"
        else:
            done = simulate_bisect(n, lambda i: 300.0, seed, 0.03, policy=policy,
                                   evidence=(8, 0.0), evidence_shift=0.06)
            right += not done.reproduced
        runs += done.runs_spent
    return right / trials, runs / trials


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("policies", nargs="+", help="BisectPolicy fields as JSON")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--offset", type=int, default=0, help="first trial's seed")
    args = parser.parse_args()
    print("policy | " + " | ".join(f"{n}, {'nothing' if not s else f'{s:.0%}'}"
                                   for n, s in ROWS), flush=True)
    for fields in args.policies:
        policy = BisectPolicy(explain=False, **json.loads(fields))
        cells = [cell(policy, n, shift, args.trials, args.offset) for n, shift in ROWS]
        print(f"{fields} | " + " | ".join(f"{c:.0%} at {r:.1f}" for c, r in cells), flush=True)


if __name__ == "__main__":
    main()
