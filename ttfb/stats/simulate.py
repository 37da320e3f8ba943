"""Seeded synthetic TTFB series with the noise shapes seen in practice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttfb.stats.detector import Point

SHAPES = ("lognormal", "bimodal", "outliers", "drift")


@dataclass(frozen=True)
class Series:
    points: list[Point]
    change_index: int | None  # index of the first shifted commit, None for null series
    shift_pct: float


def noise(rng: np.random.Generator, n: int, cv: float, shape: str) -> np.ndarray:
    """Multiplicative noise with coefficient of variation ~``cv``."""
    sigma = np.sqrt(np.log1p(cv**2))
    base = rng.lognormal(-sigma**2 / 2, sigma, n)
    if shape == "bimodal":  # a cold cache now and then: +15 % on ~15 % of runs
        base = base * np.where(rng.random(n) < 0.15, 1.15, 1.0)
    elif shape == "outliers":  # rare heavy outliers: 2-4x
        base = base * np.where(rng.random(n) < 0.03, rng.uniform(2, 4, n), 1.0)
    return base


def series(rng: np.random.Generator, length: int = 40, cv: float = 0.04,
           shift_pct: float = 0.0, change_index: int | None = None, runs: int = 1,
           shape: str = "lognormal", level_ms: float = 3000.0) -> Series:
    """One series; ``shift_pct`` applied from ``change_index`` on (multiplicative)."""
    points = []
    drift = np.linspace(0, rng.normal(0, 0.02), length) if shape == "drift" else np.zeros(length)
    for i in range(length):
        factor = 1.0 + (shift_pct / 100 if change_index is not None and i >= change_index
                        else 0.0)
        values = level_ms * factor * np.exp(drift[i]) * noise(rng, runs, cv, shape)
        points.append(Point(order=float(i), commit=f"c{i:04d}", values=tuple(values.tolist())))
    return Series(points, change_index, shift_pct)


def seasonal(rng: np.random.Generator, shape: str = "profile", amplitude: float = 0.08,
             wander: float = 0.005, step_pct: float = 0.0, at: int = 0, length: int = 240,
             season: int = 12) -> list[Point]:
    """A history with a season of ``season`` commits: each phase a level of
    its own (sd ``amplitude``, as a month's passengers or an hour's load;
    ``shape`` "profile") or a sine of that amplitude ("sine"), on a level
    that wanders (a random walk of ``wander`` a commit), log-normal noise
    of CV 3 %, one to three runs a commit; ``step_pct`` from commit ``at`` on."""
    phases = np.arange(season)
    profile = rng.normal(0, amplitude, season) if shape == "profile" else \
        amplitude * np.sin(2 * np.pi * phases / season + rng.uniform(0, 2 * np.pi))
    level = np.cumsum(rng.normal(0, wander, length)) + profile[np.arange(length) % season]
    level[at:] += np.log1p(step_pct / 100)
    runs = int(rng.integers(1, 4))
    return [Point(float(i), f"c{i}", tuple(1000 * np.exp(level[i] + rng.normal(0, 0.03, runs))))
            for i in range(length)]
