"""Two-sample tests on TTFB samples, robust to the shapes TTFB really has.

Samples are compared on the log scale: TTFB is log-normal-ish and shifts are
multiplicative, so a log shift is a percent effect. Outliers (a cold cache, a
noisy neighbour) are dropped per sample by a median/MAD rule before Welch's
t-test. numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

MAD_SCALE = 1.4826
OUTLIER_MADS = 5.0
MIN_CLEAN = 8


def clean_log(values: Sequence[float] | np.ndarray, mads: float = OUTLIER_MADS) -> np.ndarray:
    """Log of the positive values, without points beyond ``mads`` robust deviations."""
    arr = np.asarray(values, dtype=float)
    arr = np.log(arr[arr > 0])
    if arr.size < MIN_CLEAN:  # a MAD from a handful of points would drop real data
        return arr
    center = np.median(arr)
    spread = MAD_SCALE * np.median(np.abs(arr - center))
    if spread <= 0:
        return arr
    return arr[np.abs(arr - center) <= mads * spread]


def robust_sigma(logs: np.ndarray) -> float:
    """Run-to-run spread (log scale): MAD-based, std when the MAD is degenerate."""
    if logs.size < 2:
        return 0.0
    spread = MAD_SCALE * float(np.median(np.abs(logs - np.median(logs))))
    return spread if spread > 0 else float(np.std(logs, ddof=1))


@dataclass(frozen=True)
class Comparison:
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
    la, lb = clean_log(a), clean_log(b)
    if la.size < 2 or lb.size < 2:
        raise ValueError(f"need at least 2 valid values per sample, got {la.size} and {lb.size}")
    delta = float(lb.mean() - la.mean())
    va, vb = la.var(ddof=1) / la.size, lb.var(ddof=1) / lb.size
    se = float(np.sqrt(va + vb))
    if se == 0.0:
        t, p, df = (0.0, 1.0, 1.0) if delta == 0 else (np.inf * np.sign(delta), 0.0, 1.0)
    else:
        t = delta / se
        # Welch's statistic with Hsu's conservative degrees of freedom,
        # min(n_a, n_b) - 1: Welch-Satterthwaite's df is anti-conservative for
        # the small, unequal windows a detector tests (12 vs 4 commits)
        if conservative_df:
            df = float(max(min(la.size, lb.size) - 1, 1))
        else:
            df = (va + vb) ** 2 / (va**2 / max(la.size - 1, 1) + vb**2 / max(lb.size - 1, 1))
        p = float(2 * sps.t.sf(abs(t), df))
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * se if se and with_ci else 0.0
    return Comparison(
        n_a=int(la.size), n_b=int(lb.size),
        mean_a=float(np.exp(la.mean())), mean_b=float(np.exp(lb.mean())),
        delta_log=delta, effect_pct=float(np.expm1(delta) * 100),
        ci_low_pct=float(np.expm1(delta - half) * 100),
        ci_high_pct=float(np.expm1(delta + half) * 100),
        t=float(t), p_value=float(p), sigma_log=robust_sigma(la),
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
