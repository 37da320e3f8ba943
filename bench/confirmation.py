"""The confirmation's two guards, each measured against the rule without it, in one run.

Seeded candidates through the streams' two-look confirmation
(``streams.simulate.simulate_confirmation``):

* a component the candidate did not name: confirmed by the t-test alone, or
  only when the exact within-look rank test agrees too (the rule);
  a bimodal null component (false confirmations) and a log-normal one moved
  by 20 % and 30 % (power);
* a carry-over (a run after a run of the good commit is 10 % slower): runs
  ordered A, B, A, B, or counterbalanced A, B, B, A (the rule).

    .venv/bin/python bench/confirmation.py [--null 6000] [--power 300] [--json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import streams.detection as detection
from streams.detection import Policy
from streams.simulate import (
    Draw,
    carry_over,
    confirmed,
    simulate_confirmation,
    unnamed_component,
)


@contextmanager
def replaced(name: str, value: Callable[..., Any]) -> Iterator[None]:
    """The fold with one of its parts swapped for the rule it replaced."""
    old = getattr(detection, name)
    setattr(detection, name, value)
    try:
        yield
    finally:
        setattr(detection, name, old)


def rate(draw: Callable[[], Draw], component: str, trials: int, seed: int) -> float:
    rng, policy = np.random.default_rng(seed), Policy()
    return float(np.mean([confirmed(simulate_confirmation(rng, policy, draw()), component)
                          for _ in range(trials)]))


def measure(null_trials: int, power_trials: int) -> list[dict[str, Any]]:
    cases = [
        ("unnamed bimodal component, no change", lambda: unnamed_component(0.0, True),
         "first_step", null_trials),
        ("unnamed log-normal component, +20 %",
         lambda: unnamed_component(float(np.log1p(0.2)), False), "data", power_trials),
        ("unnamed log-normal component, +30 %",
         lambda: unnamed_component(float(np.log1p(0.3)), False), "data", power_trials),
    ]
    rows = []
    for name, draw, component, trials in cases:
        rule = rate(draw, component, trials, seed=6)
        with replaced("rank_p_blocked", lambda a, b: 0.0):
            old = rate(draw, component, trials, seed=6)
        rows.append({"case": name, "trials": trials, "old_rule": "t-test alone",
                     "old": old, "rule": rule})
    rule = rate(lambda: carry_over(0.1), "imports", null_trials // 6, seed=8)
    with replaced("counterbalanced", lambda pairs, first=0: [0, 1] * pairs):
        old = rate(lambda: carry_over(0.1), "imports", null_trials // 6, seed=8)
    rows.append({"case": "10 % carry-over after a before run, no change",
                 "trials": null_trials // 6, "old_rule": "A, B, A, B", "old": old, "rule": rule})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--null", type=int, default=6000, help="null candidates per case")
    parser.add_argument("--power", type=int, default=300, help="moved candidates per case")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.null, args.power)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'case':<48} {'trials':>6}  {'old rule':<14} {'old':>7} {'rule':>7}")
    for r in rows:
        print(f"{r['case']:<48} {r['trials']:>6}  {r['old_rule']:<14} "
              f"{r['old']:>7.2%} {r['rule']:>7.2%}")


if __name__ == "__main__":
    main()
