"""ROC calibration of the detector against a false-alarm budget.

Null series come from the series' own stable history by A/A resampling
(commits drawn with replacement, so the real noise shape is kept and any
change point destroyed); power comes from the same resampled series with a
multiplicative shift injected at a random commit. For every operating point
(alpha, k) the false-positive rate per test and the power at 2 %, 5 % and
10 % are estimated; the chosen point keeps the expected false alarms a week
within the budget and has the highest mean power.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ttfb.stats.detector import DetectorConfig, Point, detect

ALPHAS = (0.0005, 0.001, 0.005, 0.01, 0.05)
KS = (0.0, 0.5, 1.0)
SHIFTS_PCT = (2.0, 5.0, 10.0)


@dataclass(frozen=True)
class OperatingPoint:
    alpha: float
    k: float
    false_positive_rate: float  # per test (one test per commit)
    power: dict[str, float]  # shift label ("2%") -> detection rate
    expected_false_alarms_per_week: float

    @property
    def mean_power(self) -> float:
        return float(np.mean(list(self.power.values()))) if self.power else 0.0


@dataclass(frozen=True)
class Calibration:
    points: list[OperatingPoint]
    chosen: OperatingPoint
    tests_per_week: float
    budget_per_week: float
    confirm_alpha: float


def _resample(rng: np.random.Generator, history: Sequence[Point], length: int,
              shift_pct: float = 0.0, at: int | None = None) -> list[Point]:
    picks = rng.integers(0, len(history), size=length)
    out = []
    for i, pick in enumerate(picks):
        factor = 1 + shift_pct / 100 if at is not None and i >= at else 1.0
        out.append(Point(order=float(i), commit=f"r{i}",
                         values=tuple(v * factor for v in history[int(pick)].values)))
    return out


def calibrate(history: Sequence[Point], tests_per_week: float, budget_per_week: float = 1.0,
              base: DetectorConfig | None = None, trials: int = 60, length: int = 30,
              seed: int = 0, confirm_alpha: float = 1.0,
              alphas: Sequence[float] = ALPHAS, ks: Sequence[float] = KS,
              max_fpr: float = 1.0) -> Calibration:
    """Estimate the ROC on resampled history and choose the operating point.

    ``confirm_alpha`` is the false-positive rate of the confirmation step that
    follows every candidate (1.0 when there is none, as offline): the budget
    applies to confirmed alarms. ``max_fpr`` caps the candidate rate per test,
    since every candidate costs confirmation runs.
    """
    if len(history) < 4:
        raise ValueError("calibration needs at least 4 commits of stable history")
    base = base or DetectorConfig()
    rng = np.random.default_rng(seed)
    nulls = [_resample(rng, history, length) for _ in range(trials)]
    shifted = {s: [] for s in SHIFTS_PCT}  # type: dict[float, list[tuple[int, list[Point]]]]
    lo = base.min_back + 1
    for s in SHIFTS_PCT:
        for _ in range(trials):
            at = int(rng.integers(lo, length - base.fore + 1))
            shifted[s].append((at, _resample(rng, history, length, s, at)))
    tests = trials * max(1, length - base.min_back - base.fore + 1)
    points = []
    for alpha in alphas:
        for k in ks:
            cfg = base.with_point(alpha, k)
            fp = sum(len(detect(series, cfg)) for series in nulls)
            power = {}
            for s, cases in shifted.items():
                hits = sum(any(abs(c.index - at) <= 1 for c in detect(series, cfg))
                           for at, series in cases)
                power[f"{s:g}%"] = hits / len(cases)
            fpr = fp / tests
            points.append(OperatingPoint(alpha, k, fpr, power,
                                         fpr * confirm_alpha * tests_per_week))
    feasible = [p for p in points if p.expected_false_alarms_per_week <= budget_per_week
                and p.false_positive_rate <= max_fpr]
    chosen = max(feasible, key=lambda p: (p.mean_power, -p.false_positive_rate)) if feasible \
        else min(points, key=lambda p: (p.false_positive_rate, -p.mean_power))
    return Calibration(points, chosen, tests_per_week, budget_per_week, confirm_alpha)
