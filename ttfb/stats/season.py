"""Changes of a history with a season (``ttfb detect``).

The rank scan's permutation test assumes commits are exchangeable. A season
breaks that as nothing else does: a machine's nightly load, a weekly batch
job or a monthly cycle makes every commit follow its phase, so the season's
rises and falls, on a level that also wanders, read as a staircase of
changes. A person reading such a history looks past the season at its
level over whole periods; so does ``ttfb detect``:

* a history has a season of ``period`` commits when the commit-to-commit
  differences of its commits' mean logs correlate at that lag and again at
  twice it (a season repeats), each at least ``4 / sqrt(n)`` (four standard
  errors of a correlation of n independent differences), and at the period
  by at least 0.3 more than at half of it (a smooth trend's or a wander's
  differences correlate at every lag alike; a season's peak at its period);
* its changes are read from the difference of the mean log of the ``period``
  commits after each commit and the ``period`` commits before it: a whole
  period on each side, so the season cancels; a trend adds about the same
  everywhere (the median of the differences); a step adds a peak of its
  size centred on it. A change is such a peak, a period or more from any
  larger one, at least ``z`` robust standard deviations (the differences'
  median absolute deviation, scaled: a wander widens it) from the median,
  and at least ``min_effect_pct``.

``z`` (3) was chosen on the tune part of ``bench/heldout.py``'s real series;
no history of ``bench/detection.py``'s or ``heldout.py``'s synthetic suites
has a season by this test, so the scan reads them as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

from ttfb.stats.comparisons import MAD_SCALE
from ttfb.stats.detector import Point

REPEATS = 4.0  # standard errors of a lag's correlation, at the period and at twice it
PEAK = 0.3  # the period's correlation above half the period's
NEAR = 0.1  # a divisor of the strongest peak that peaks this close is the period


def _correlation(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    scale = float((x * x).sum())
    return float((x[:-lag] * x[lag:]).sum()) / scale if scale > 0 else 0.0


def period(means: np.ndarray) -> int | None:
    """The season of a history (its commits' mean logs, in order), in
    commits, or None: of the lags from 4 to a sixth of the history whose
    correlation is such a peak, the strongest, or the shortest of its
    divisors that peaks almost as high (a season's multiples peak too)."""
    d = np.diff(means)
    floor = REPEATS / math.sqrt(max(d.size, 1))
    r = [0.0, *(_correlation(d, lag) for lag in range(1, d.size // 3 + 1))]
    peaks = [lag for lag in range(4, d.size // 6 + 1)
             if min(r[lag], r[2 * lag]) >= floor and r[lag] - r[lag // 2] >= PEAK]
    if not peaks:
        return None
    strongest = max(peaks, key=lambda lag: r[lag])
    return min(lag for lag in peaks if strongest % lag == 0 and r[lag] >= r[strongest] - NEAR)


def season_of(points: Sequence[Point]) -> int | None:
    """``period`` of a history's points (those with a positive value)."""
    return period(np.array([float(np.log([v for v in p.values if v > 0]).mean())
                            for p in points if any(v > 0 for v in p.values)]))


def seasonal_changes(means: np.ndarray, season: int, z: float,
                     min_effect_pct: float) -> list[tuple[int, float]]:
    """(split, p) of each change of a history with a season of ``season``
    commits, by position; p is the normal tail of the peak's own z (not
    corrected for the history's many windows: the bar is ``z``)."""
    splits = np.arange(season, means.size - season + 1)
    if splits.size == 0:
        return []
    cumulative = np.concatenate([[0.0], np.cumsum(means)])
    moved = (cumulative[splits + season] - 2 * cumulative[splits]
             + cumulative[splits - season]) / season
    moved -= np.median(moved)
    scale = MAD_SCALE * float(np.median(np.abs(moved)))
    if scale <= 0:
        return []
    score = np.abs(moved) / scale
    found: list[tuple[int, float]] = []
    for i in np.argsort(-score, kind="stable"):
        if score[i] < z:
            break
        if abs(math.expm1(moved[i])) * 100 >= min_effect_pct and \
                all(abs(int(splits[i]) - j) >= season for j, _ in found):
            found.append((int(splits[i]), 2 * float(norm.sf(score[i]))))
    return sorted(found)
