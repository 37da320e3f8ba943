"""Two bisect policies side by side on the same simulated ranges: the seeds
a change was chosen on and seeds held out.

Three rows of ``bench/bisection.py``'s kind (20 % two-culprit ranges, no
hint): 64 commits, 5 % shift, CV 3 %; 32 commits, 5 %, CV 3 %, a machine
drifting 5 %; 17 commits, 10 %, CV 4 %, drift 5 %, the confirmation's 8
endpoint runs handed over from a level 10 % off; and two with hiccups (a
share of runs 20-50 % slow): 14 commits, 25 %, CV 4 %, drift 5 %, 5 % of
runs; 64 commits, 5 %, CV 3 %, 3 % of runs; 14 commits, 15 %, CV 6 %,
drift 3 %, 3 % of runs (the demo's imports bisects from scratch, as
``ttfb bisect`` runs them). Each policy is given as
JSON fields of ``BisectPolicy``; trials number from ``--offset``.

    .venv/bin/python bench/bisect_policy.py '{"endpoint_runs": 8, "residual_runs": 2}' '{}' \
        --offset 0      # chosen on
    .venv/bin/python bench/bisect_policy.py '{"endpoint_runs": 8, "residual_runs": 2}' '{}' \
        --offset 5000   # held out
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from bisection import scenario

from streams.bisect import BisectPolicy
from streams.simulate import simulate_bisect

ROWS = [(64, 0.05, 0.03, 0.0, None, 0.0), (32, 0.05, 0.03, 0.05, None, 0.0),
        (17, 0.10, 0.04, 0.05, (8, 0.10), 0.0),
        # the demo's imports bisects: a large step, a drifting machine, and a
        # run in twenty 20-50 % slow (a hiccup)
        (14, 0.25, 0.04, 0.05, None, 0.05), (64, 0.05, 0.03, 0.0, None, 0.03),
        (14, 0.15, 0.06, 0.03, None, 0.03)]


def rate(policy: BisectPolicy, n: int, shift: float, cv: float, drift: float,
         evidence: tuple[int, float] | None, outliers: float, trials: int,
         offset: int, monitored: int = 0) -> tuple[float, float]:
    """(share naming the larger culprit, mean runs) over ``trials`` ranges."""
    rng = np.random.default_rng(int(n * 1000 + shift * 100 + cv * 10) + offset)
    right = runs = 0
    for t in range(trials):
        level, _, larger = scenario(rng, n, shift, rng.random() < 0.2)
        done = simulate_bisect(n, level, seed=t + offset, cv=cv, policy=policy, drift=drift,
                               evidence=evidence, outliers=outliers, monitored=monitored)
        right += done.culprit == f"c{larger:02d}"
        runs += done.runs_spent
    return right / trials, runs / trials


def policies_parser() -> argparse.ArgumentParser:
    """The arguments of a bench that runs bisect policies side by side."""
    parser = argparse.ArgumentParser()
    parser.add_argument("policies", nargs="+", help="BisectPolicy fields as JSON")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--offset", type=int, default=0, help="first trial's seed")
    return parser


def main() -> None:
    parser = policies_parser()
    parser.add_argument("--monitored", type=int, default=0,
                        help="monitoring runs of every commit handed to the bisect")
    args = parser.parse_args()
    for fields in args.policies:
        policy = BisectPolicy(explain=False, **json.loads(fields))
        cells = [rate(policy, *row, args.trials, args.offset, args.monitored) for row in ROWS]
        print(f"{fields:<45} " + " | ".join(f"{c:.1%} at {r:.1f}" for c, r in cells), flush=True)


if __name__ == "__main__":
    main()
