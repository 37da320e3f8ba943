"""Sequential classification of a commit as like-good or like-bad (Wald's SPRT).

The endpoints' samples give two hypotheses on the log scale: the commit's
runs come from N(mu_good, s) or from N(mu_bad, s), s pooled from both
endpoints. Each new run adds its log-likelihood ratio; the test stops as soon
as the sum crosses log((1 - beta) / alpha) ("bad") or log(beta / (1 - alpha))
("good"), so a clear commit costs two runs and only an ambiguous one costs
the maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from ttfb.stats.tests import clean_log


@dataclass(frozen=True)
class Endpoints:
    mu_good: float
    mu_bad: float
    sigma: float

    @classmethod
    def from_samples(cls, good: Sequence[float], bad: Sequence[float],
                     confidence: float = 0.9) -> Endpoints:
        """Hypotheses from the endpoints' runs (and runs already classified with them).

        sigma is the pooled standard deviation inflated to its upper
        ``confidence`` bound (chi-square): with a handful of runs the plain
        estimate is often too small, which would make the SPRT overconfident.
        """
        lg, lb = clean_log(good), clean_log(bad)
        if lg.size < 2 or lb.size < 2:
            raise ValueError("each endpoint needs at least 2 valid runs")
        df = lg.size + lb.size - 2
        pooled = float(np.sqrt((lg.var(ddof=1) * (lg.size - 1) + lb.var(ddof=1) *
                                (lb.size - 1)) / df))
        sigma = pooled * float(np.sqrt(df / chi2.ppf(1 - confidence, df)))
        # a floor keeps one lucky run from being "infinitely" decisive
        sigma = max(sigma, abs(float(lb.mean() - lg.mean())) / 20, 1e-4)
        return cls(float(lg.mean()), float(lb.mean()), sigma)

    @property
    def separation(self) -> float:
        """Distance between the hypotheses in standard deviations."""
        return abs(self.mu_bad - self.mu_good) / self.sigma


@dataclass(frozen=True)
class Verdict:
    decision: str  # "good", "bad" or "undecided"
    llr: float
    runs: int
    confidence: float  # 1 - the error rate bound of the decision reached


def classify(values: Sequence[float], ends: Endpoints, alpha: float = 0.01,
             beta: float = 0.01, max_runs: int = 12) -> Verdict:
    """SPRT over the runs so far; "undecided" asks for more runs (until max_runs)."""
    logs = np.log(np.asarray([v for v in values if v > 0], dtype=float))
    s2 = ends.sigma ** 2
    llr = float(np.sum(((logs - ends.mu_good) ** 2 - (logs - ends.mu_bad) ** 2) / (2 * s2)))
    upper, lower = np.log((1 - beta) / alpha), np.log(beta / (1 - alpha))
    if llr >= upper:
        return Verdict("bad", llr, logs.size, 1 - alpha)
    if llr <= lower:
        return Verdict("good", llr, logs.size, 1 - beta)
    if logs.size >= max_runs:  # truncated: take the likelier side, with its weaker confidence
        p_bad = float(1 / (1 + np.exp(-llr)))
        return Verdict("bad" if llr > 0 else "good", llr, logs.size, max(p_bad, 1 - p_bad))
    return Verdict("undecided", llr, logs.size, 0.0)
