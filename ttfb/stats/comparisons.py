"""Two-sample tests on TTFB samples, robust to the shapes TTFB really has.

Samples are compared on the log scale: TTFB is log-normal-ish and shifts are
multiplicative, so a log shift is a percent effect. Outliers (a cold cache, a
noisy neighbour) are dropped per sample by a median/MAD rule before Welch's
t-test. numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from scipy import special

from ttfb.stats.remade import Remade

MAD_SCALE = 1.4826
OUTLIER_MADS = 5.0
MIN_CLEAN = 8


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _floats(values: Sequence[float] | np.ndarray) -> list[float]:
    return cast(list[float], values.tolist()) if isinstance(values, np.ndarray) else list(values)


def _clean(values: Sequence[float] | np.ndarray, mads: float = OUTLIER_MADS) -> list[float]:
    # plain Python: the samples a detector tests are tens of values, where
    # numpy's per-call overhead is most of the cost (the fold calls this for
    # every component of every commit, the calibration thousands of times)
    return _cleaned([math.log(v) for v in _floats(values) if v > 0], mads)[0]


def _cleaned(logs: list[float], mads: float = OUTLIER_MADS) -> tuple[list[float], float | None]:
    """``logs`` without points beyond ``mads`` robust deviations, and the MAD
    spread of what it returns where that is the spread it cleaned by
    (nothing dropped), else None."""
    if len(logs) < MIN_CLEAN:  # a MAD from a handful of points would drop real data
        return logs, None
    center = _median(logs)
    deviations = [abs(x - center) for x in logs]
    spread = MAD_SCALE * _median(deviations)
    if spread <= 0:
        return logs, None
    limit = mads * spread
    if max(deviations) <= limit:  # mostly so: nothing to drop
        return logs, spread
    return [x for x, d in zip(logs, deviations, strict=True) if d <= limit], None


def _mean_var(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    mean = sum(xs) / n
    return mean, sum([(x - mean) ** 2 for x in xs]) / (n - 1) if n > 1 else 0.0


def robust_sigma(logs: Sequence[float] | np.ndarray) -> float:
    """Run-to-run spread (log scale): MAD-based, std when the MAD is degenerate."""
    xs = _floats(logs)
    if len(xs) < 2:
        return 0.0
    center = _median(xs)
    spread = MAD_SCALE * _median([abs(x - center) for x in xs])
    return spread if spread > 0 else math.sqrt(_mean_var(xs)[1])


class Sample:
    """A sample as the tests read it: the log of its positive values,
    outliers dropped (``_clean``), their mean and variance, and their
    run-to-run spread (``robust_sigma``, on first use). A detector tests one
    baseline against a window and draws its band from it: summarised once,
    it is read by both."""

    __slots__ = ("logs", "mean", "var", "_sigma")

    def __init__(self, logs: list[float]) -> None:
        """``logs``: the log of a sample's positive values, uncleaned."""
        # the spread it was cleaned by is its robust sigma if nothing was dropped
        self.logs, self._sigma = _cleaned(logs)
        self.mean, self.var = _mean_var(self.logs) if self.logs else (math.nan, math.nan)

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Sample:
        return cls([math.log(v) for v in _floats(values) if v > 0])

    @property
    def n(self) -> int:
        return len(self.logs)

    @property
    def sigma(self) -> float:
        if self._sigma is None:
            self._sigma = robust_sigma(self.logs)
        return self._sigma


@dataclass(frozen=True)
class Comparison(Remade):
    """Sample B against sample A (B's change relative to A)."""

    n_a: int
    n_b: int
    mean_a: float  # geometric means, in the samples' unit (ms)
    mean_b: float
    delta_log: float
    effect_pct: float
    ci_low_pct: float
    ci_high_pct: float
    t: float
    p_value: float
    sigma_log: float  # run-to-run spread of A

    @property
    def effect_ms(self) -> float:
        return self.mean_b - self.mean_a


def compare(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
            confidence: float = 0.95, with_ci: bool = True,
            conservative_df: bool = True) -> Comparison:
    """Welch's t-test of log(B) against log(A) with a CI of the percent change.

    ``conservative_df`` uses Hsu's min(n_a, n_b) - 1 degrees of freedom, which
    keeps the size at or below alpha for small unequal samples; without it,
    Welch-Satterthwaite's df (more power, slightly liberal), for callers whose
    findings are confirmed by fresh runs anyway.
    """
    return compare_samples(Sample.of(a), Sample.of(b), confidence, with_ci, conservative_df)


def compare_samples(a: Sample, b: Sample, confidence: float = 0.95, with_ci: bool = True,
                    conservative_df: bool = True) -> Comparison:
    """``compare`` of two samples already summarised."""
    na, nb = a.n, b.n
    if na < 2 or nb < 2:
        raise ValueError(f"need at least 2 valid values per sample, got {na} and {nb}")
    mean_a, var_a, mean_b, var_b = a.mean, a.var, b.mean, b.var
    va, vb = var_a / na, var_b / nb
    se = math.sqrt(va + vb)
    # Welch's statistic with Hsu's conservative degrees of freedom,
    # min(n_a, n_b) - 1: Welch-Satterthwaite's df is anti-conservative for
    # the small, unequal windows a detector tests (12 vs 4 commits)
    if conservative_df or se == 0.0:
        df = float(max(min(na, nb) - 1, 1))
    else:
        df = (va + vb) ** 2 / (va**2 / max(na - 1, 1) + vb**2 / max(nb - 1, 1))
    return _t_result(na, nb, mean_a, mean_b - mean_a, se, df, confidence, with_ci, a.sigma)


def _t_result(n_a: int, n_b: int, mean_a: float, delta: float, se: float, df: float,
              confidence: float, with_ci: bool, sigma_log: float) -> Comparison:
    """The t-test of a log shift ``delta`` with standard error ``se`` and
    ``df`` degrees of freedom, and its CI, as percent changes of B against A."""
    if se == 0.0:
        t, p = (0.0, 1.0) if delta == 0 else (math.copysign(math.inf, delta), 0.0)
    else:
        t = delta / se
        p = float(2 * special.stdtr(df, -abs(t)))
    half = float(special.stdtrit(df, 0.5 + confidence / 2)) * se if se and with_ci else 0.0
    return Comparison(
        n_a=n_a, n_b=n_b,
        mean_a=math.exp(mean_a), mean_b=math.exp(mean_a + delta),
        delta_log=delta, effect_pct=math.expm1(delta) * 100,
        ci_low_pct=math.expm1(delta - half) * 100,
        ci_high_pct=math.expm1(delta + half) * 100,
        t=float(t), p_value=float(p), sigma_log=sigma_log,
    )


def benjamini_hochberg(p_values: Sequence[float], q: float = 0.05) -> list[bool]:
    """Which hypotheses are rejected at false-discovery rate ``q``."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p)
    ranked = p[order] <= q * (np.arange(1, m + 1) / m)
    cutoff = int(np.max(np.nonzero(ranked)[0])) + 1 if ranked.any() else 0
    rejected = np.zeros(m, dtype=bool)
    rejected[order[:cutoff]] = True
    return rejected.tolist()


def _blocks(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]
            ) -> list[tuple[Sequence[float], Sequence[float]]]:
    """Each block's two samples, A's and B's; both sides need the same blocks."""
    if len(a) != len(b):
        raise ValueError(f"need the same blocks on both sides, got {len(a)} and {len(b)}")
    return list(zip(a, b, strict=True))


def compare_blocked(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]],
                    confidence: float = 0.95) -> Comparison:
    """B against A measured in blocks: batches of interleaved runs, each run
    back to back, with other work (and a different machine state) between
    batches. A block's level is a nuisance: the shift is estimated within
    each block and pooled across them (inverse-variance weights), the
    variance is pooled within the block-and-arm cells, and the t-test has
    N - 2·blocks degrees of freedom. With one block this is the pooled
    two-sample t-test on the logs; with several, a machine that got 20 %
    slower between two batches no longer hides a shift inside either.
    """
    cells = [(_clean(x), _clean(y)) for x, y in _blocks(a, b)]
    cells = [(x, y) for x, y in cells if x and y]
    ss = weight = weighted = 0.0
    df = 0
    for xs, ys in cells:
        (mx, vx), (my, vy) = _mean_var(xs), _mean_var(ys)
        ss += vx * (len(xs) - 1) + vy * (len(ys) - 1)
        df += len(xs) + len(ys) - 2
        w = 1.0 / (1.0 / len(xs) + 1.0 / len(ys))
        weight += w
        weighted += w * (my - mx)
    if df < 1:
        raise ValueError("need at least one degree of freedom within the blocks")
    s = math.sqrt(ss / df)
    la = [x for xs, _ in cells for x in xs]
    return _t_result(len(la), sum(len(ys) for _, ys in cells), sum(la) / len(la),
                     weighted / weight, s / math.sqrt(weight), df, confidence, True, s)


def compare_paired(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]],
                   confidence: float = 0.95) -> Comparison:
    """B against A from interleaved runs, each B run paired with the A run
    next to it: within each block (a batch of runs, as for
    :func:`compare_blocked`) the i-th A run with the i-th B run, which in a
    :func:`counterbalanced` order (A, B, B, A, ...) are neighbours. The test
    is the one-sample t-test of the pairs' log differences, with pairs - 1
    degrees of freedom.

    The machine's level wanders between runs, not only between batches (in
    the demo, a look's runs of one commit spanned 1,801-2,739 ms and fell
    steadily across it): neighbours share most of it, so it leaves the
    differences, where a comparison of the two arms' samples counts it as
    noise. Under a random walk of the level the pairs' differences are
    independent and centred on the shift, so the level holds; a run's
    effect on the next (a carry-over) falls on each side as often in the
    counterbalanced order and cancels in their mean.
    """
    pairs = [(math.log(x), math.log(y)) for xs, ys in _blocks(a, b)
             for x, y in zip(_floats(xs), _floats(ys), strict=False) if x > 0 and y > 0]
    diffs = [y - x for x, y in pairs]  # all of them: dropping "outliers" among a
    # handful of differences shrinks their spread, and the test's level with it
    if len(diffs) < 2:
        raise ValueError(f"need at least 2 pairs of runs, got {len(diffs)}")
    delta, var = _mean_var(diffs)
    spread = math.sqrt(var)
    mean_a = sum(x for x, _ in pairs) / len(pairs)
    return _t_result(len(pairs), len(pairs), mean_a, delta, spread / math.sqrt(len(diffs)),
                     float(len(diffs) - 1), confidence, True, spread / math.sqrt(2))


def counterbalanced(pairs: int, first: int = 0) -> list[int]:
    """The order of ``pairs`` interleaved runs of two arms (0, 1, 1, 0, 0, 1, ...
    with ``first`` = 0; 1, 0, 0, 1, ... with 1): drift hits both arms alike,
    and each arm follows each arm as often, so whatever one run leaves behind
    for the next (a cache, the lab's work on the run just finished) cannot
    fall on one arm only, as A, B, A, B lets it."""
    start = (0, 1) if first == 0 else (1, 0)
    return [side for i in range(pairs) for side in (start if i % 2 == 0 else start[::-1])]


def _rank_sum_null(doubled_ranks: list[int], n: int) -> np.ndarray:
    """Exact distribution of the sum of ``n`` of the (doubled, so integer
    midranks) ranks drawn without replacement: index = doubled rank sum."""
    top = sum(doubled_ranks)
    ways = np.zeros((n + 1, top + 1))
    ways[0, 0] = 1.0
    for r in doubled_ranks:  # 0/1 knapsack: the right side is read before it is written
        ways[1:, r:] = ways[1:, r:] + ways[:-1, :top + 1 - r]
    exact: np.ndarray = ways[n] / ways[n].sum()
    return exact


def rank_p_blocked(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float:
    """Two-sided p-value of a stratified rank test (Wilcoxon rank sums, van
    Elteren's design) of B against A measured in the same blocks as
    :func:`compare_blocked`: values are ranked within their block, so a
    block's level is not read as a shift, and the p-value is exact (the
    permutation distribution of the summed rank sums, ties as midranks).
    Ranks only see order: a bimodal component (cold and warm caches) whose
    fast mode happened to fill one arm's runs does not look as far apart as
    its means suggest.
    """
    from scipy import stats  # ~1 s to import: only confirmations need it

    null = np.ones(1)
    observed = 0
    for block_a, block_b in _blocks(a, b):
        xs, ys = _floats(block_a), _floats(block_b)
        if not xs or not ys:
            continue
        doubled = [round(2 * r) for r in stats.rankdata(xs + ys)]
        observed += sum(doubled[len(xs):])
        null = np.convolve(null, _rank_sum_null(doubled, len(ys)))
    if null.size == 1:
        raise ValueError("need values on both sides of at least one block")
    sums = np.arange(null.size)
    center = float(sums @ null)
    far = np.abs(sums - center) >= abs(observed - center) - 1e-9
    return min(1.0, float(null[far].sum()))
