"""The windowed change detector: rolling baseline, Welch test, k·σ threshold.

A series (scenario, component, hardware, branch) is a sequence of commits,
each with one or more run values. The state keeps a rolling baseline of
accepted commits and a window of the newest ``fore`` commits. When the window
is full it is tested against the baseline; a candidate needs

* Welch p-value < ``alpha`` (log scale, outliers dropped),
* |shift| > ``k`` · σ, σ the baseline's run-to-run spread,
* |effect| >= ``min_effect_pct``.

A candidate's change point is refined to the split that maximises |t| inside
the window, and the baseline restarts there. Otherwise the oldest window
commit is accepted into the baseline (which keeps its newest ``back``
commits, so slow drift is followed rather than flagged).

``apply`` is a pure fold used both offline (``detect``) and by the stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from ttfb.stats.comparisons import Comparison, Sample, compare_samples
from ttfb.stats.remade import Remade


@dataclass(frozen=True)
class DetectorConfig(Remade):
    back: int = 12  # baseline commits kept
    fore: int = 4  # commits tested against the baseline
    min_back: int = 6  # a baseline needs this many commits before testing
    min_back_values: int = 0  # ... and this many run values
    alpha: float = 0.001
    k: float = 0.5
    min_effect_pct: float = 1.0
    min_effect_ms: float = 0.0  # ignore shifts too small to matter for TTFB
    conservative_df: bool = True  # False where fresh confirmation runs follow
    # a window that differs from the baseline at p < hold_p without being a
    # candidate is held (not accepted into the baseline) for up to ``hold``
    # more commits, and tested again with them: a shift too small to show in
    # one commit's few runs shows in two or three, where accepting it would
    # have hidden it in the baseline for good (0: off)
    hold_p: float = 0.0
    hold: int = 2

    def with_point(self, alpha: float, k: float) -> DetectorConfig:
        return replace(self, alpha=alpha, k=k)


# ``Point`` and ``SeriesState`` are values: never changed once made (a new
# state is made for every commit, sharing the points of the one before). They
# are not frozen dataclasses all the same: the fold makes one of each for
# every series of every commit, and a frozen dataclass sets each field
# through ``object.__setattr__``; compiled (``ttfb.native``) they are native
# classes, whose plain attributes the fold reads without a dict.
@dataclass(init=False)
class Point(Remade):
    order: float
    commit: str
    values: tuple[float, ...]
    # the log of each value, None where it has none (not positive): taken when
    # first read (a rebuild that takes recorded outcomes tests few commits)
    _logs: tuple[float | None, ...] | None = field(init=False, compare=False, repr=False)

    def __init__(self, order: float, commit: str, values: tuple[float, ...]) -> None:
        self.order, self.commit, self.values, self._logs = order, commit, values, None

    @property
    def logs(self) -> tuple[float | None, ...]:
        """The tests read a commit's values on the log scale, for every commit after it."""
        cached = self._logs
        if cached is None:
            cached = self._logs = tuple(math.log(v) if v > 0 else None for v in self.values)
        return cached


@dataclass(frozen=True)
class ChangePoint(Remade):
    index: int  # position of the first changed commit among the series' points
    order: float
    commit: str
    good_commit: str
    direction: str  # "regression" (slower) or "improvement"
    comparison: Comparison

    @property
    def effect_pct(self) -> float:
        return self.comparison.effect_pct

    @property
    def p_value(self) -> float:
        return self.comparison.p_value


@dataclass(init=False)
class SeriesState(Remade):
    """Everything the detector remembers about one series (a fold over points;
    a value, as ``Point``)."""

    baseline: tuple[Point, ...] = ()
    window: tuple[Point, ...] = ()
    seen: int = 0  # points applied so far (the index of the next one)
    changes: tuple[ChangePoint, ...] = ()
    # the baseline's runs summarised, and their number: taken when first read
    _reference: Sample | None = field(init=False, compare=False, repr=False)
    _runs: int = field(init=False, compare=False, repr=False)

    def __init__(self, baseline: tuple[Point, ...] = (), window: tuple[Point, ...] = (),
                 seen: int = 0, changes: tuple[ChangePoint, ...] = ()) -> None:
        self.baseline, self.window, self.seen, self.changes = baseline, window, seen, changes
        self._reference, self._runs = None, -1

    @property
    def reference(self) -> Sample:
        """The baseline's runs as the tests read them: summarised once for
        the window's test and the band."""
        cached = self._reference
        if cached is None:
            cached = self._reference = _sample(self.baseline)
        return cached

    @property
    def runs(self) -> int:
        """The baseline's run values."""
        cached = self._runs
        if cached < 0:
            cached = self._runs = sum(len(p.values) for p in self.baseline)
        return cached


def _sample(points: Sequence[Point]) -> Sample:
    return Sample([x for p in points for x in p.logs if x is not None])


def _logs(points: Sequence[Point]) -> list[float | None]:
    return [x for p in points for x in p.logs]


def band(state: SeriesState, cfg: DetectorConfig) -> tuple[float, float, float] | None:
    """What the next commit is tested against: the baseline's level (the
    geometric mean of its runs, outliers dropped as ``compare`` drops them)
    and, either side, the smallest shift that can make a candidate (``k``
    times the runs' spread, ``min_effect_pct``, ``min_effect_ms``); a commit
    inside it is never one, outside it the t-test decides. None while the
    baseline is too short to test against. (low, level, high) in the runs'
    unit."""
    if len(state.baseline) < cfg.min_back or state.runs < max(cfg.min_back_values, 2):
        return None
    sample = state.reference
    if sample.n < 2:
        return None
    center = sample.mean
    half = max(cfg.k * sample.sigma, math.log1p(cfg.min_effect_pct / 100))
    level = math.exp(center)
    return (max(0.0, min(math.exp(center - half), level - cfg.min_effect_ms)), level,
            max(math.exp(center + half), level + cfg.min_effect_ms))


def _is_candidate(c: Comparison, cfg: DetectorConfig) -> bool:
    return (c.p_value < cfg.alpha and abs(c.delta_log) > cfg.k * c.sigma_log
            and abs(c.effect_pct) >= cfg.min_effect_pct
            and abs(c.effect_ms) >= cfg.min_effect_ms)


def _refine(state: SeriesState, window: tuple[Point, ...], cfg: DetectorConfig,
            splits: Sequence[int] = ()) -> tuple[int, Comparison]:
    """The split inside the window with the largest |t| (at least 2 changed
    commits), or the best of ``splits``. Before a split: the baseline's
    number of runs, the newest of the baseline's and the window's before it."""
    baseline = state.baseline
    best: tuple[int, Comparison, Sample, Sample] | None = None
    for split in splits or range(0, max(1, len(window) - 1)):
        before = state.reference if split == 0 else Sample(
            [x for x in _logs(baseline + window[:split])[-state.runs:] if x is not None])
        after = _sample(window[split:])
        try:
            comparison = compare_samples(before, after, with_ci=False,
                                         conservative_df=cfg.conservative_df)
        except ValueError:
            continue
        if best is None or abs(comparison.t) > abs(best[1].t):
            best = (split, comparison, before, after)
    assert best is not None
    split, _, before, after = best
    return split, compare_samples(before, after, conservative_df=cfg.conservative_df)


def _window_test(state: SeriesState, window: tuple[Point, ...],
                 cfg: DetectorConfig) -> tuple[int, Comparison] | None:
    """The window against the baseline: where a change starts in it and its
    test. A window that holds commits kept back (``hold_p``) may change at
    its first commit or at the newest alone (a 40x step must not be diluted by
    the held commits before it); otherwise the whole window is tested, and only
    a candidate is refined to its split."""
    if cfg.hold_p and len(window) > cfg.fore:  # the whole window, or the newest alone
        return _refine(state, window, cfg, splits=(0, len(window) - 1))
    try:
        comparison = compare_samples(state.reference, _sample(window), with_ci=False,
                                     conservative_df=cfg.conservative_df)
    except ValueError:
        return None
    return _refine(state, window, cfg) if _is_candidate(comparison, cfg) else (0, comparison)


def apply(state: SeriesState, point: Point, cfg: DetectorConfig,
          held: bool | None = None) -> tuple[SeriesState, ChangePoint | None]:
    """Add one commit's values; return the new state and a change found now,
    if any. ``held``: where a test of this commit found no change, whether
    it kept the commit in the window (``kept_in_window``), as recorded then; given, it
    stands for the test, which is not run again."""
    window = state.window + (point,)
    seen = state.seen + 1
    baseline = state.baseline
    if len(window) < cfg.fore or (len(window) < cfg.fore + cfg.hold and len(point.values) < 2
                                  and sum(len(p.values) for p in window) < 2):
        # a window is tested once it has two runs: commits of one run each wait for the next
        return SeriesState(state.baseline, window, seen, state.changes), None
    if held:
        return SeriesState(baseline, window, seen, state.changes), None
    if held is None and len(baseline) >= cfg.min_back and state.runs >= cfg.min_back_values:
        tested = _window_test(state, window, cfg)
        if tested is not None:
            split, refined = tested
            candidate = _is_candidate(refined, cfg)
            if not candidate and refined.p_value < cfg.hold_p and \
                    len(window) < cfg.fore + cfg.hold:
                # held for another look
                return SeriesState(baseline, window, seen, state.changes), None
            if candidate:
                first = window[split]
                index = seen - len(window) + split
                good = window[split - 1].commit if split else baseline[-1].commit
                change = ChangePoint(
                    index=index, order=first.order, commit=first.commit, good_commit=good,
                    direction="regression" if refined.delta_log > 0 else "improvement",
                    comparison=refined)
                # the baseline restarts at the change: only post-change commits remain
                return SeriesState(baseline=(), window=window[split:], seen=seen,
                                   changes=state.changes + (change,)), change
    return _accepted(baseline, window, seen, state.changes, cfg), None


def kept_in_window(before: SeriesState, after: SeriesState) -> bool:
    """Whether ``apply`` kept its commit in the window without a change (held
    for another look, or waiting for more runs): the window grew."""
    return len(after.window) > len(before.window) and len(after.changes) == len(before.changes)


def accept(state: SeriesState, cfg: DetectorConfig) -> SeriesState:
    """Move the oldest window commits into the baseline, keeping ``fore - 1``.

    After a restart the window can hold more than ``fore`` commits while the
    baseline is too short to test; accepting only one a time would leave the
    newest commit untested for ever (it would be tested only as part of a
    longer window later, and a change found there is not at the newest commit).
    """
    return _accepted(state.baseline, state.window, state.seen, state.changes, cfg)


def _accepted(baseline: tuple[Point, ...], window: tuple[Point, ...], seen: int,
              changes: tuple[ChangePoint, ...], cfg: DetectorConfig) -> SeriesState:
    # constructed once, not ``replace``d: the fold does this for every series of every commit
    n = max(1, len(window) - cfg.fore + 1)
    return SeriesState((baseline + window[:n])[-cfg.back:], window[n:], seen, changes)


def detect(points: Iterable[Point], cfg: DetectorConfig | None = None) -> list[ChangePoint]:
    """All change points of a series (points in order)."""
    cfg = cfg or DetectorConfig()
    state = SeriesState()
    for point in points:
        state, _ = apply(state, point, cfg)
    return list(state.changes)


def group_points(rows: Iterable[tuple[float, float, str]]) -> list[Point]:
    """(order, value, commit) rows -> one Point per distinct order, in order."""
    by_order: dict[float, tuple[str, list[float]]] = {}
    for order, value, commit in rows:
        entry = by_order.setdefault(order, (commit, []))
        entry[1].append(value)
    return [Point(order=o, commit=c, values=tuple(v))
            for o, (c, v) in sorted(by_order.items())]
