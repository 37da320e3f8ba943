"""Change points of a whole history (``ttfb detect``): a rank scan over every
split, calibrated by permuting commits, applied by binary segmentation.

The streaming detector tests a window of a few commits; a history is all
there at once, so every split of it can be tested. For a segment of commits:

* its runs' values are ranked, and every split between commits gets the
  pooled two-sample t of the ranks; the split with the largest |t| is the
  candidate (a cold-cache mode or a heavy tail inflates a t-test of the
  logs far more than it moves ranks; an outlier is one rank among many);
* its p-value is the share of random orders of the commits whose best split
  reaches the same |t|: commits, not runs, are shuffled, so runs that share
  a commit's machine state stay together, and the level holds for any noise
  shape;
* ranks cannot tell a 2x step on the last few commits from a 5 % one on
  many, so the same scan of the log values goes first, at a tenth of the
  level (``log_share``): a large step is placed by its size, and the ranks'
  scan takes the rest of the level;
* a candidate is a change when p <= ``alpha``, its shift (of the medians,
  log scale) exceeds ``k`` times the robust run-to-run spread before it and
  ``min_effect_pct``, and a step fits the ranks better than a straight line
  does (slow drift is not a step).

A change splits its segment in two and each half is scanned again (binary
segmentation). A segment's best split over its whole length cannot show a
step backed out a few commits later (each side holds part of it), nor one
of several steps whose neighbours hide it; when that scan finds nothing,
the ranks are scanned once more over the segment's *seeded intervals*
(Kovacs et al., "Seeded binary segmentation", Biometrika 2023: at every
scale from half the segment down to ``seeded_shortest`` commits, intervals
of that length overlapping by half), with the largest |t| of any split of
any interval as the statistic and its own permutation p-value at
``seeded_share`` of the level; a candidate found there must be a step
within its interval. Then each change is tested again between its
neighbours, where one placed off by a neighbour it was found before moves
or goes; there, a split smaller than ``dependent_below_pct`` must clear its
bar with its |t| deflated by how much the commits left about the segments
found follow their neighbours (permuting commits assumes they do not: a
machine's slow drift, a trend or a season makes every split look
significant); a history with a season is read over whole periods instead
(``ttfb.stats.season``). A history whose commits are exchangeable raises a
false alarm with probability at most ``alpha``: its first test is three
permutation tests whose levels add up to it, and every later one runs only
after one has rejected. Pure numpy and scipy; permutations from ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ttfb.stats.comparisons import MAD_SCALE, compare
from ttfb.stats.detector import ChangePoint, Point
from ttfb.stats.season import period, seasonal_changes

Cells = tuple[np.ndarray, np.ndarray, np.ndarray]
CELLS_PER_CHUNK = 1_000_000  # permutation x commit cells computed at once (memory bound)
BATCH = 128  # permutations drawn at a time


@dataclass(frozen=True)
class HistoryConfig:
    """Offline detection over a whole history (``ttfb detect``)."""

    alpha: float = 0.02  # a history without a change shows one with this probability, at most
    permutations: int = 999
    min_commits: int = 2  # commits on each side of a split, at least
    k: float = 0.5  # the shift must exceed k times the robust run-to-run spread before it
    min_effect_pct: float = 1.0
    refine_sweeps: int = 3  # passes that test each change again between its neighbours
    log_share: float = 0.1  # of alpha, spent on the logs' scan
    seeded_share: float = 0.3  # of alpha, on the seeded intervals' scan (0: none)
    seeded_shortest: int = 16  # commits, the seeded intervals' shortest
    # significant splits offered to the guards, strongest first, at most (0:
    # every one; 1: the best alone, whose failing a guard ended the search)
    candidates: int = 0
    # the sweeps judge a split whose logs' means differ by less than this (%)
    # with its |t| divided by sqrt((1 + r) / (1 - r)), r the lag-1
    # autocorrelation of the commits' mean logs about the segments found; 0: off
    dependent_below_pct: float = 10.0
    season_z: float = 3.0  # a seasonal history's steps' robust z (``stats.season``; 0: off)
    seed: int = 0


def _side(cfg: HistoryConfig) -> int:
    """Commits on each side of a split, at least: two, as both sides'
    comparison needs two values."""
    return max(2, cfg.min_commits)


def _logs(points: Sequence[Point]) -> list[np.ndarray]:
    return [np.log(np.asarray([v for v in p.values if v > 0], dtype=float)) for p in points]


def _ranks(commits: list[np.ndarray]) -> list[np.ndarray]:
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate(commits))
    return np.split(ranks, np.cumsum([c.size for c in commits])[:-1])


def _split_t(sums: np.ndarray, counts: np.ndarray, squares: np.ndarray, lo: int) -> np.ndarray:
    """Pooled two-sample t of every split, rows of per-commit sums, counts and
    sums of squares (centred); column j is the split before commit ``lo + j``."""
    cs, cn, cq = sums.cumsum(1), counts.cumsum(1), squares.cumsum(1)
    s_left, n_left, q_left = cs[:, lo - 1:-lo], cn[:, lo - 1:-lo], cq[:, lo - 1:-lo]
    s_right, n_right = cs[:, -1:] - s_left, cn[:, -1:] - n_left
    q_right = cq[:, -1:] - q_left
    m_left, m_right = s_left / n_left, s_right / n_right
    rss = q_left - s_left * m_left + q_right - s_right * m_right
    var = np.maximum(rss / (cn[:, -1:] - 2), 1e-300)
    t: np.ndarray = (m_right - m_left) / np.sqrt(var * (1 / n_left + 1 / n_right))
    return t


def _permuted_maxima(cells: Cells, observed: float, alpha: float, permutations: int,
                     rng: np.random.Generator, best: Callable[[Cells], np.ndarray],
                     width: int) -> np.ndarray:
    """The largest |t| of shuffled commit orders (``best``, from rows of
    shuffled cells; ``width`` values a row): ``permutations`` of them, or
    fewer once enough reach |``observed``| that its p-value is certain to
    exceed alpha (``_significant`` reads the p-values off them)."""
    commits = cells[0].size
    enough = math.ceil(alpha * (permutations + 1))  # this many: p > alpha
    # in batches: most segments show p > alpha within the first
    chunk = max(1, min(BATCH, CELLS_PER_CHUNK // width))
    done = reached = 0
    maxima = []
    while done < permutations and reached < enough:
        n = min(chunk, permutations - done)
        order = np.argsort(rng.random((n, commits)), axis=1)
        shuffled = (cells[0][order], cells[1][order], cells[2][order])
        drawn = best(shuffled)
        maxima.append(drawn)
        reached += int((drawn >= abs(observed) * (1 - 1e-12)).sum())
        done += n
    return np.concatenate(maxima)


def _significant(t: np.ndarray, maxima: np.ndarray, alpha: float,
                 limit: int) -> list[tuple[int, float]]:
    """Indices of ``t`` whose |t| the shuffled orders' largest |t|
    (``maxima``) reach at most a share ``alpha`` of the time (the observed
    order counted), with that share, strongest first, at most ``limit`` (0:
    all); none unless the largest |t| is (``maxima`` stops short only where
    it is not). Under exchangeable commits the largest |t| of all passes with
    probability ``alpha``, so any split above the same bound may be the
    change (the one with the largest |t| can fail a guard another passes)."""
    order = np.argsort(-np.abs(t), kind="stable")[:limit or None]
    ranked = np.sort(maxima)
    out = []
    for i in order:
        above = maxima.size - int(np.searchsorted(ranked, abs(t[i]) * (1 - 1e-12), side="left"))
        p = (1 + above) / (1 + maxima.size)
        if p > alpha:
            break
        out.append((int(i), p))
    return out


def _cells(values: list[np.ndarray]) -> Cells:
    """Per-commit sums, counts and sums of squares of the centred values (ranks or logs)."""
    centre = float(np.concatenate(values).mean())
    return (np.array([float((v - centre).sum()) for v in values]),
            np.array([float(v.size) for v in values]),
            np.array([float(((v - centre) ** 2).sum()) for v in values]))


def _step_beats_line(ranks: list[np.ndarray], split: int) -> bool:
    """A step at ``split`` leaves less residual than a straight line through
    the ranks, around the split: as many commits each side as the shorter
    side has (a second step or a drift further away is not this one's)."""
    side = min(split, len(ranks) - split)
    ranks = ranks[split - side:split + side]
    split = side
    y = np.concatenate(ranks)
    x = np.concatenate([np.full(r.size, float(i)) for i, r in enumerate(ranks)])
    step = (x >= split).astype(float)

    def residual(regressor: np.ndarray) -> float:
        design = np.column_stack([np.ones_like(y), regressor])
        beta = np.linalg.lstsq(design, y, rcond=None)[0]
        return float(((y - design @ beta) ** 2).sum())

    return residual(step) < residual(x)


def _is_change(logs: list[np.ndarray], ranks: list[np.ndarray], split: int,
               cfg: HistoryConfig) -> bool:
    before, after = np.concatenate(logs[:split]), np.concatenate(logs[split:])
    shift = float(np.median(after) - np.median(before))
    spread = MAD_SCALE * float(np.median(np.abs(before - np.median(before))))
    return (abs(math.expm1(shift)) * 100 >= cfg.min_effect_pct and abs(shift) > cfg.k * spread
            and _step_beats_line(ranks, split))


def _scan(values: list[np.ndarray], lo: int, alpha: float, cfg: HistoryConfig,
          rng: np.random.Generator, divisor: float | np.ndarray = 1.0) -> list[tuple[int, float]]:
    """The splits of ``values`` (per commit) significant at ``alpha`` by the
    permutation distribution of the largest |t|, strongest first, with their
    p-values (``cfg.candidates`` of them at most, 0: all; none if the best
    is not); each split's observed |t| divided by its ``divisor``."""
    cells = _cells(values)
    t = _split_t(cells[0][None, :], cells[1][None, :], cells[2][None, :], lo)[0] / divisor
    maxima = _permuted_maxima(cells, float(np.abs(t).max()), alpha, cfg.permutations, rng,
                              lambda c: np.abs(_split_t(*c, lo)).max(axis=1), cells[0].size)
    return [(j + lo, q) for j, q in _significant(t, maxima, alpha, cfg.candidates)]


def _seeded_triples(commits: int, lo: int, shortest: int) -> tuple[np.ndarray, ...]:
    """(start, split, end) of every split of the seeded intervals of a segment
    of ``commits``: at each scale (half the last, from half the segment down
    to ``shortest`` commits) intervals of that length, each starting half a
    length after the last (Kovacs et al., "Seeded binary segmentation",
    Biometrika 2023); ``lo`` commits on each side of a split."""
    starts, splits, ends = [], [], []
    length = commits // 2
    while length >= max(shortest, 2 * lo):
        step = max(1, length // 2)
        for a in range(0, commits - length + 1, step):
            b = a + length
            for j in range(a + lo, b - lo + 1):
                starts.append(a)
                splits.append(j)
                ends.append(b)
        length //= 2
    return np.array(starts), np.array(splits), np.array(ends)


def _interval_t(sums: np.ndarray, counts: np.ndarray, squares: np.ndarray,
                triples: tuple[np.ndarray, ...]) -> np.ndarray:
    """Pooled two-sample t of each (start, split, end), rows of per-commit
    sums, counts and sums of squares."""
    zero = np.zeros((sums.shape[0], 1))
    cs, cn, cq = (np.concatenate([zero, x.cumsum(1)], axis=1) for x in (sums, counts, squares))
    a, j, b = triples
    s_left, n_left, q_left = cs[:, j] - cs[:, a], cn[:, j] - cn[:, a], cq[:, j] - cq[:, a]
    s_right, n_right, q_right = cs[:, b] - cs[:, j], cn[:, b] - cn[:, j], cq[:, b] - cq[:, j]
    m_left, m_right = s_left / n_left, s_right / n_right
    rss = q_left - s_left * m_left + q_right - s_right * m_right
    var = np.maximum(rss / (n_left + n_right - 2), 1e-300)
    t: np.ndarray = (m_right - m_left) / np.sqrt(var * (1 / n_left + 1 / n_right))
    return t


def _seeded_scan(values: list[np.ndarray], lo: int, alpha: float, cfg: HistoryConfig,
                 rng: np.random.Generator,
                 divisor: Callable[[tuple[np.ndarray, ...]], float | np.ndarray] = lambda _: 1.0,
                 ) -> list[tuple[int, float, int, int]]:
    """The splits inside the segment's seeded intervals significant at
    ``alpha``, strongest first, each with its p-value and its interval: a
    change the segment's own best split cannot show (a step backed out a few
    commits later, one of several steps, a step on a drift). p is the share
    of shuffled commit orders of the segment whose largest |t| over every
    interval reaches it, so the level holds over all intervals together.
    Each (start, split, end)'s observed |t| is divided by ``divisor``'s."""
    triples = _seeded_triples(len(values), lo, cfg.seeded_shortest)
    if triples[0].size == 0:
        return []
    cells = _cells(values)
    t = np.abs(_interval_t(cells[0][None, :], cells[1][None, :], cells[2][None, :], triples)[0])
    t = t / divisor(triples)
    maxima = _permuted_maxima(cells, float(t.max()), alpha, cfg.permutations, rng,
                              lambda c: np.abs(_interval_t(*c, triples)).max(axis=1),
                              triples[0].size)
    return [(int(triples[1][i]), q, int(triples[0][i]), int(triples[2][i]))
            for i, q in _significant(t, maxima, alpha, cfg.candidates)]


def _inflation(logs: list[np.ndarray], splits: list[int]) -> float:
    """How much dependence between neighbouring commits inflates a split's
    t: sqrt((1 + r) / (1 - r)), r the lag-1 autocorrelation (at least 0, at
    most 0.9) of the commits' mean logs about the means of the segments
    ``splits`` make; 1 where fewer than 8 neighbouring pairs share a segment."""
    means = np.array([float(v.mean()) for v in logs])
    bounds = [0, *splits, len(logs)]
    left, right = [], []
    for a, b in zip(bounds, bounds[1:], strict=False):
        residual = means[a:b] - means[a:b].mean()
        left.append(residual[:-1])
        right.append(residual[1:])
    x, y = np.concatenate(left), np.concatenate(right)
    scale = float((x ** 2).sum() + (y ** 2).sum()) / 2
    if x.size < 8 or scale <= 0:
        return 1.0
    r = min(max(float((x * y).sum()) / scale, 0.0), 0.9)
    return math.sqrt((1 + r) / (1 - r))


def _divisor(logs: list[np.ndarray], inflation: float,
             cfg: HistoryConfig) -> Callable[[tuple[np.ndarray, ...]], float | np.ndarray]:
    """Per (start, split, end) of ``logs``: ``inflation`` where the logs'
    means of the two sides differ by less than ``cfg.dependent_below_pct``,
    else 1 (the commits' sums read once for every scan of the segment)."""
    if inflation == 1.0:
        return lambda _: 1.0
    cs, cn = (np.concatenate([[0.0], x.cumsum()]) for x in _cells(logs)[:2])

    def per_split(triples: tuple[np.ndarray, ...]) -> np.ndarray:
        a, j, b = triples
        shift = np.abs((cs[b] - cs[j]) / (cn[b] - cn[j]) - (cs[j] - cs[a]) / (cn[j] - cn[a]))
        return np.where(np.expm1(shift) * 100 >= cfg.dependent_below_pct, 1.0, inflation)

    return per_split


def _best_split(logs: list[np.ndarray], lo: int, cfg: HistoryConfig,
                rng: np.random.Generator, inflation: float = 1.0) -> tuple[int, float] | None:
    """The segment's change, if it has one: the logs' best split at a small
    share of alpha (a large step, placed by its size: ranks cannot tell a
    2x step on a few commits from a 5 % one on many), else the ranks' best
    split at the rest, else the seeded intervals'. Each scan offers its
    significant splits strongest first; the first that is a change (big
    enough, a step rather than a drift) is the segment's. Below
    ``cfg.dependent_below_pct``, a split's |t| is divided by ``inflation``."""
    if len(logs) < 2 * lo or sum(v.size for v in logs) < 2 * lo + 2:
        return None
    ranks = _ranks(logs)
    divisor = _divisor(logs, inflation, cfg)
    splits = np.arange(lo, len(logs) - lo + 1)
    whole = divisor((np.zeros_like(splits), splits, np.full_like(splits, len(logs))))
    for values, alpha in ((logs, cfg.alpha * cfg.log_share),
                          (ranks, cfg.alpha * (1 - cfg.log_share - cfg.seeded_share))):
        for split, p in _scan(values, lo, alpha, cfg, rng, whole):
            if _is_change(logs, ranks, split, cfg):
                return split, p
    seeded = _seeded_scan(ranks, lo, cfg.alpha * cfg.seeded_share, cfg, rng, divisor) \
        if cfg.seeded_share > 0 else []
    for split, p, start, end in seeded:
        if _is_change(logs[start:end], ranks[start:end], split - start, cfg):
            return split, p
    return None


def _segments(logs: list[np.ndarray], cfg: HistoryConfig) -> list[tuple[int, float]]:
    """Binary segmentation, then each change tested again between its
    neighbours (where it moves to that segment's best split, or goes: a change
    found beside a misplaced one, in the misplaced one's segment, is its
    correction): (split, p) of every change, by position."""
    rng = np.random.default_rng(cfg.seed)
    lo = _side(cfg)
    found = []
    todo = [(0, len(logs))]
    while todo:
        start, end = todo.pop()
        change = _best_split(logs[start:end], lo, cfg, rng)
        if change is not None:
            found.append((start + change[0], change[1]))
            todo += [(start, start + change[0]), (start + change[0], end)]
    inflation = _inflation(logs, sorted(split for split, _ in found)) \
        if cfg.dependent_below_pct > 0 else 1.0
    for _ in range(cfg.refine_sweeps):
        splits = sorted(split for split, _ in found)
        kept: list[tuple[int, float]] = []
        for j in range(len(splits)):
            start = kept[-1][0] if kept else 0
            end = splits[j + 1] if j + 1 < len(splits) else len(logs)
            change = _best_split(logs[start:end], lo, cfg, rng, inflation)
            if change is not None:
                kept.append((start + change[0], change[1]))
        if [s for s, _ in kept] == splits:
            return kept
        found = kept
    return sorted(found)


def detect_history(points: Iterable[Point], cfg: HistoryConfig | None = None) -> list[ChangePoint]:
    """Every change point of a history (points in order). A commit with no
    positive value keeps its place (``index`` counts it) but takes no part.
    Each change's effect and CI compare the commits between its neighbouring
    changes (in a history with a season, a period's each side); its
    ``p_value`` is the scan's permutation p-value (or the season's peak's)."""
    cfg = cfg or HistoryConfig()
    pts = list(points)
    used = [i for i, p in enumerate(pts) if any(v > 0 for v in p.values)]
    if len(used) < 2 * _side(cfg):
        return []
    logs = _logs([pts[i] for i in used])
    means = np.array([float(v.mean()) for v in logs])
    season = period(means) if cfg.season_z > 0 else None
    found = _segments(logs, cfg) if season is None else \
        seasonal_changes(means, season, cfg.season_z, cfg.min_effect_pct)
    bounds = [0] + [split for split, _ in found] + [len(used)]
    out = []
    for j, (split, p) in enumerate(found):  # against its neighbours, or a period each side
        lo, hi = (bounds[j], bounds[j + 2]) if season is None else (split - season, split + season)
        before = [v for i in used[lo:split] for v in pts[i].values]
        after = [v for i in used[split:hi] for v in pts[i].values]
        comparison = replace(compare(before, after), p_value=p)
        first = pts[used[split]]
        out.append(ChangePoint(
            index=used[split], order=first.order, commit=first.commit,
            good_commit=pts[used[split - 1]].commit,
            direction="regression" if comparison.delta_log > 0 else "improvement",
            comparison=comparison))
    return out
