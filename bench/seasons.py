"""Histories with a season: ``ttfb detect`` read over whole periods
(``ttfb.stats.season``) against the same scan with seasons off.

Seeded synthetic histories of 240 commits with a season of 12: each phase a
level of its own (sd ``--amplitude``, as a month's passengers or an hour's
load) or a sine of that amplitude; the level holds or wanders (a random
walk of ``--wander`` a commit); log-normal noise of CV 3 %, one to three
runs a commit. For each: the share of histories without a change that
raise one, and of those with a 15 % step at a random commit (60-180), the
share where it is found within 2 commits and the other changes raised.

    .venv/bin/python bench/seasons.py [--trials 40]
"""

from __future__ import annotations

import argparse

import numpy as np

from ttfb.stats import HistoryConfig, detect_history
from ttfb.stats.simulate import seasonal


def measure(cfg: HistoryConfig, shape: str, amplitude: float, wander: float,
            trials: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(3)
    alarmed = sum(bool(detect_history(seasonal(rng, shape, amplitude, wander), cfg))
                  for _ in range(trials))
    rng = np.random.default_rng(4)
    found = others = 0
    for _ in range(trials):
        at = int(rng.integers(60, 181))
        changes = detect_history(seasonal(rng, shape, amplitude, wander, 15.0, at), cfg)
        found += any(abs(c.index - at) <= 2 for c in changes)
        others += sum(abs(c.index - at) > 2 for c in changes)
    return alarmed, found, others


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    print(f"{'season':<8} {'amplitude':>9} {'wander':>6}  {'method':<8} {'no change: alarmed':>18}"
          f" {'15 % step: found':>16} {'others':>6}")
    for shape in ("profile", "sine"):
        for amplitude, wander in ((0.08, 0.0), (0.08, 0.005), (0.05, 0.005), (0.08, 0.01)):
            for name, cfg in (("scan", HistoryConfig(season_z=0)), ("seasons", HistoryConfig())):
                alarmed, found, others = measure(cfg, shape, amplitude, wander, args.trials)
                of = f"of {args.trials}"
                print(f"{shape:<8} {amplitude:>9.2f} {wander:>6.3f}  {name:<8} "
                      f"{alarmed:>8} {of:<10} {found:>6} {of:<9} {others:>6}")


if __name__ == "__main__":
    main()
