"""The confirmation's two guards, each measured against the rule without it, in one run.

Seeded candidates through the streams' two-look confirmation
(``streams.simulate.simulate_confirmation``):

* a component the candidate did not name: confirmed by the t-test alone, or
  only when the exact within-look rank test agrees too (the rule); and given
  the second batch when the first look shows it moved at p < 0.05, or at
  p < 0.2 (the rule); and, shown moved but not confirmed at the final look
  (p < 0.05), nothing more, or a candidate of its own on fresh runs (the
  rule);
  a bimodal null component (false confirmations) and a log-normal one moved
  by 20 % and 30 % (power);
* a carry-over (a run after a run of the good commit is 10 % slower): runs
  ordered A, B, A, B, or counterbalanced A, B, B, A (the rule); and each look
  without, or behind (the rule), a discarded warm-up run of its first side;
* the final look's test: the two sides' samples, each look a block, or each
  run paired with its neighbour of the other side (the rule), on a machine
  whose level wanders from run to run (a random walk, 5 % steps, and 15 %
  between looks) and on one whose level holds still (the price);
* a verdict decided above p = 0.0001: announced as it is, or taken again on
  8 fresh runs a side that decide alone (the rule), on both machines and on
  the bimodal null component;
* a named component dismissed at p < 0.05: final, or taken again on 8 fresh
  runs a side that confirm it alone at p < 0.05 (the rule), on both machines;
* a named component whose runs moved against the candidate (one-sided
  p < 0.01 the other way; the cases raise a 15 % improvement as a
  regression): dismissed, or taken again that way on 8 fresh runs a side
  (the rule), on both machines;
* a named component the first look confirms at p <= 0.0001 while another
  component earns the second batch: announced at once (the rule), or with
  the final look's verdicts; how often the named component is confirmed,
  and on how many runs its finding comes (a clear +50 % one, a +20 % one, a null one
  on a still and on a wandering machine, beside four unnamed components
  with 15 % noise).

    .venv/bin/python bench/confirmation.py [--null 6000] [--power 300] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np

import streams.detection.compare
import streams.detection.runs
from streams.detection import Policy
from streams.simulate import (
    Draw,
    carry_over,
    confirmed,
    simulate_confirmation,
    unnamed_component,
    wander,
)
from ttfb import events as ev


@contextmanager
def replaced(name: str, value: Callable[..., Any]) -> Iterator[None]:
    """The fold with one of its parts swapped for the rule it replaced."""
    module = next(m for m in (streams.detection.compare, streams.detection.runs)
                  if hasattr(m, name))
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def rate(draw: Callable[[], Draw], component: str, trials: int, seed: int,
         policy: Policy | None = None, between: float = 0.0) -> float:
    rng, policy = np.random.default_rng(seed), policy or Policy()
    return float(np.mean([confirmed(simulate_confirmation(rng, policy, draw(), between),
                                    component) for _ in range(trials)]))


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
    screen = dataclasses.replace(Policy(), promising_p=0.05)
    alone = dataclasses.replace(Policy(), follow_up_p=0.0)
    once = dataclasses.replace(Policy(), replicate_runs=0)
    for name, draw, component, trials in cases:
        rule = rate(draw, component, trials, seed=6)
        with replaced("rank_p_blocked", lambda a, b: 0.0):
            old = rate(draw, component, trials, seed=6)
        rows.append({"case": name, "trials": trials, "old_rule": "t-test alone",
                     "old": old, "rule": rule})
        rows.append({"case": name, "trials": trials, "old_rule": "screen at 0.05",
                     "old": rate(draw, component, trials, seed=6, policy=screen), "rule": rule})
        rows.append({"case": name, "trials": trials, "old_rule": "no follow-up",
                     "old": rate(draw, component, trials, seed=6, policy=alone), "rule": rule})
        rows.append({"case": name, "trials": trials, "old_rule": "no replication",
                     "old": rate(draw, component, trials, seed=6, policy=once), "rule": rule})
    rule = rate(lambda: carry_over(0.1), "imports", null_trials // 6, seed=8)
    with replaced("counterbalanced", lambda pairs, first=0: [0, 1] * pairs):
        old = rate(lambda: carry_over(0.1), "imports", null_trials // 6, seed=8)
    rows.append({"case": "10 % carry-over after a before run, no change",
                 "trials": null_trials // 6, "old_rule": "A, B, A, B", "old": old, "rule": rule})
    old = rate(lambda: carry_over(0.1), "imports", null_trials // 6, seed=8,
               policy=dataclasses.replace(Policy(), confirm_warmup=0))
    rows.append({"case": "10 % carry-over after a before run, no change",
                 "trials": null_trials // 6, "old_rule": "no warm-up run", "old": old,
                 "rule": rule})
    sides = dataclasses.replace(Policy(), paired_final=False)
    dismissals = dataclasses.replace(Policy(), retake_below=0.0)
    one_way = dataclasses.replace(Policy(), reverse_below=0.0)
    for name, step, between, pct, trials in (
            ("wandering machine, no change", 0.05, 0.15, 0, null_trials // 3),
            ("wandering machine, +10 %", 0.05, 0.15, 10, power_trials),
            ("wandering machine, +15 %", 0.05, 0.15, 15, power_trials),
            ("wandering machine, -15 %, raised as slower", 0.05, 0.15, -15, power_trials),
            ("still machine, no change", 0.0, 0.0, 0, null_trials // 3),
            ("still machine, +10 %", 0.0, 0.0, 10, power_trials),
            ("still machine, +15 %", 0.0, 0.0, 15, power_trials),
            ("still machine, -15 %, raised as slower", 0.0, 0.0, -15, power_trials)):
        shift = float(np.log1p(pct / 100))
        rule, old, single, final, unreversed = (
            rate(partial(wander, shift, step), "imports", trials, 12, policy, between)
            for policy in (Policy(), sides, once, dismissals, one_way))
        rows.append({"case": name, "trials": trials, "old_rule": "sides' samples",
                     "old": old, "rule": rule})
        rows.append({"case": name, "trials": trials, "old_rule": "no replication",
                     "old": single, "rule": rule})
        rows.append({"case": name, "trials": trials, "old_rule": "dismissal final",
                     "old": final, "rule": rule})
        rows.append({"case": name, "trials": trials, "old_rule": "one way only",
                     "old": unreversed, "rule": rule})
    return rows


def noisy_beside(shift: float, step: float = 0.0) -> Draw:
    """imports moved by ``shift`` (log) as the candidate named it, on a
    machine whose level wanders by ``step`` a run (0: still), beside four
    unnamed components (~400 ms each, 15 % noise) that no change moves: at
    the first look one of them often looks moved enough to earn the second
    batch, as in a workflow's seven components."""
    walk = [0.0]

    def draw(rng: np.random.Generator, arm: str, level: float) -> dict[str, float]:
        walk[0] += float(rng.normal(0.0, step)) if step else 0.0
        after = shift if arm == "after" else 0.0
        runs = {"imports": 2000.0 * float(rng.lognormal(level + walk[0] + after, 0.05))}
        for name in UNNAMED:
            runs[name] = 400.0 * float(rng.lognormal(level + walk[0], 0.15))
        return runs
    return draw


UNNAMED = ("data", "model", "first_step", "startup")


def announce_rows(null_trials: int, power_trials: int) -> list[dict[str, Any]]:
    """The first-look announcement against the final look's verdicts: the
    named component's confirmation rate and the runs its finding came on."""
    rows = []
    for name, shift, step, trials in (("+50 %, still machine", 0.5, 0.0, power_trials),
                                      ("+50 %, wandering machine", 0.5, 0.05, power_trials),
                                      ("+20 %, still machine", 0.2, 0.0, power_trials),
                                      ("no change, still machine", 0.0, 0.0, null_trials),
                                      ("no change, wandering machine", 0.0, 0.05, null_trials)):
        for rule, policy in (("announced", Policy()),
                             ("final look", dataclasses.replace(Policy(),
                                                                announce_at_first_p=0.0))):
            rng = np.random.default_rng(21)
            runs = []
            for _ in range(trials):
                verdicts = simulate_confirmation(rng, policy,
                                                 noisy_beside(float(np.log1p(shift)), step))
                found = [e for e in verdicts if isinstance(
                    e, (ev.RegressionConfirmed, ev.ImprovementConfirmed))
                    and e.component == "imports"]
                runs += [found[0].runs_spent] if found else []
            rows.append({"case": name, "trials": trials, "rule": rule,
                         "confirmed": len(runs) / trials,
                         "runs": float(np.mean(runs)) if runs else 0.0})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--null", type=int, default=6000, help="null candidates per case")
    parser.add_argument("--power", type=int, default=300, help="moved candidates per case")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.null, args.power)
    announced = announce_rows(args.null // 3, args.power)
    if args.json:
        print(json.dumps({"guards": rows, "announced": announced}, indent=2))
        return
    print(f"{'case':<48} {'trials':>6}  {'old rule':<14} {'old':>7} {'rule':>7}")
    for r in rows:
        print(f"{r['case']:<48} {r['trials']:>6}  {r['old_rule']:<14} "
              f"{r['old']:>7.2%} {r['rule']:>7.2%}")
    print()
    print(f"{'named imports, 4 unnamed (15 % noise)':<48} {'trials':>6}  {'verdict':<14} "
          f"{'confirmed':>9} {'runs to its finding':>20}")
    for r in announced:
        print(f"{r['case']:<48} {r['trials']:>6}  {r['rule']:<14} {r['confirmed']:>9.2%} "
              f"{r['runs']:>20.1f}")


if __name__ == "__main__":
    main()
