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

``--handed`` prints instead ``bench/bisection.py``'s "+handed" rows (64
commits, 3, 5 and 10 % at CV 3 and 5 %, a fifth of the ranges with two
culprits, from a confirmation's and the monitoring runs) under each
policy, on the very ranges that script draws.
"""

from __future__ import annotations

import json

import numpy as np
from bisect_policy import policies_parser
from bisection import EVIDENCE, MONITOR_SPREAD, MONITORED, ranges

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


def handed(policy: BisectPolicy, shift: float, cv: float, trials: int) -> tuple[float, float]:
    """(share naming the larger culprit, mean runs) of ``bench/bisection.py``'s
    "+handed" method over 64 commits, on the very ranges it draws."""
    right = runs = 0
    for r in ranges(trials, 64, shift, cv):
        done = simulate_bisect(64, r.level, seed=r.trial, cv=cv, policy=policy,
                               evidence=EVIDENCE, monitored=MONITORED,
                               monitor_spread=MONITOR_SPREAD)
        right += done.culprit == f"c{r.larger:02d}"
        runs += done.runs_spent
    return right / trials, runs / trials


def main() -> None:
    parser = policies_parser()
    parser.add_argument("--handed", action="store_true",
                        help="bench/bisection.py's +handed rows instead")
    args = parser.parse_args()
    if args.handed:
        cells = [(s, cv) for s in (0.03, 0.05, 0.10) for cv in (0.03, 0.05)]
        print("policy | " + " | ".join(f"{s:.0%}, CV {cv:.0%}" for s, cv in cells), flush=True)
        for fields in args.policies:
            policy = BisectPolicy(explain=False, **json.loads(fields))
            print(f"{fields} | " + " | ".join(
                "{:.0%} at {:.1f}".format(*handed(policy, s, cv, args.trials)) for s, cv in cells),
                flush=True)
        return
    print("policy | " + " | ".join(f"{n}, {'nothing' if not s else f'{s:.0%}'}"
                                   for n, s in ROWS), flush=True)
    for fields in args.policies:
        policy = BisectPolicy(explain=False, **json.loads(fields))
        cells = [cell(policy, n, shift, args.trials, args.offset) for n, shift in ROWS]
        print(f"{fields} | " + " | ".join(f"{c:.0%} at {r:.1f}" for c, r in cells), flush=True)


if __name__ == "__main__":
    main()
