"""The levels an A/B verdict judges each component by (``ttfb ab`` and
``ttfb check``), and what "no change" means in an experiment's own terms."""

from __future__ import annotations

from ttfb import events as ev

ALPHA = 0.05  # false-discovery rate across the components that matter (the CIs are 95 %)
MIN_EFFECT_PCT = 1.0  # of the component
MIN_SHARE_PCT = 1.5  # of A's TTFB: a smaller move is "no change", whatever its p


def verdict_rule(result: ev.ExperimentCompleted) -> str:
    """What "no change" means in ``result``'s table, in its own milliseconds
    (a component can show p < 0.05 and still be one)."""
    total = next(c for c in result.components if c.component == "ttfb")
    floor = MIN_SHARE_PCT / 100 * total.mean_a_ms
    return (f"no change: moved less than {floor:,.0f} ms ({MIN_SHARE_PCT:g} % of A's TTFB) or"
            f" {MIN_EFFECT_PCT:g} % of itself, or not significant (false-discovery rate"
            f" {ALPHA:g})")
