"""How a confirmation compares its two sides, component by component."""

from __future__ import annotations

import dataclasses

from streams.detection.overrides import config_for
from streams.detection.policy import TOTAL, Policy
from streams.detection.state import Confirmation, ScenarioState
from ttfb.stats import (
    Comparison,
    benjamini_hochberg,
    compare_blocked,
    compare_paired,
    rank_p_blocked,
)


def also_moved(c: Confirmation, comparisons: dict[str, Comparison], alpha: float,
                policy: Policy, state: ScenarioState, mark: bool = True) -> dict[str, Comparison]:
    """Components the candidate did not name (``comparisons``, from
    ``unnamed_components``) that the fresh runs show moving
    (BH at the level of the deciding look, and big enough to matter): the
    verdict names every component that moved, not only the suspected one.
    Without ``mark``, a screen at the first look: each component at ``alpha``
    on its own (it only buys the second batch, whose final look decides).

    Nothing in the history pointed at these, so the verdict (``mark``) also
    asks a rank test to agree: each component's p-value is the larger of the
    t-test's and the rank test's (an intersection-union test, at the level of
    each). A bimodal component whose fast mode happened to fill one arm's
    runs passes a t-test more often than its level; its ranks do not.
    """
    big = big_enough(c, comparisons, policy, state)
    if not mark:  # a screen for more runs: each component on its own
        return {n: comparisons[n] for n in big if comparisons[n].p_value < alpha}
    p_values = [max(comparisons[n].p_value, rank_p_blocked(*c.sides(n))) for n in big]
    keep = benjamini_hochberg(p_values, q=alpha)
    moved = {n: comparisons[n] for n, k in zip(big, keep, strict=True) if k}
    for n, cmp in moved.items():
        c.components[n] = "regression" if cmp.delta_log > 0 else "improvement"
        c.decided[n] = True
    return moved


def unnamed_components(c: Confirmation) -> list[str]:
    """The components measured on both sides that the candidate did not name;
    none for a follow-up, which tests its own component only (its parent
    tested the others, and would otherwise see them confirmed again)."""
    if c.follow_up or not c.before or not c.after:
        return []
    return sorted((set(c.before[0]) & set(c.after[0])) - set(c.components) - {TOTAL})


def big_enough(c: Confirmation, comparisons: dict[str, Comparison], policy: Policy,
               state: ScenarioState | None = None) -> list[str]:
    """The components whose shift is big enough to matter, as the screen
    reckons it: as a share of the component and in ms as a share of TTFB (the
    good commit's runs here), each as the catalog's overrides in ``state``
    set it for the scenario and the component."""
    if not comparisons or not c.before:
        return []
    ttfb = sum(r[TOTAL] for r in c.before) / len(c.before)
    floor = dataclasses.replace(policy.detector,
                                min_effect_ms=policy.min_effect_ttfb_pct / 100 * ttfb)
    big = []
    for n, cmp in comparisons.items():
        cfg = floor if state is None else config_for(state, n, floor)
        if abs(cmp.effect_pct) >= cfg.min_effect_pct and abs(cmp.effect_ms) >= cfg.min_effect_ms:
            big.append(n)
    return big


def compare_sides(c: Confirmation, names: list[str],
                   paired: bool = False) -> dict[str, Comparison]:
    """Each look's runs are a block: the machine's level between two looks
    (other work ran in between) is not taken for the shift. ``paired``: each
    run against its neighbour of the other side, which leaves out the level's
    wander within a look too."""
    test = compare_paired if paired else compare_blocked
    comparisons = {}
    for n in sorted(names):
        try:
            comparisons[n] = test(*c.sides(n))
        except ValueError:
            continue
    return comparisons


def directed(c: Confirmation, comparisons: dict[str, Comparison]) -> dict[str, Comparison]:
    """The named components' p-values, one-sided in the candidate's direction.

    The candidate says which way each component moved before any fresh run is
    made, and only that way can be confirmed: a two-sided level would spend
    half the false-alarm budget on verdicts that cannot happen. So the fresh
    runs test "moved that way" at the whole level (a shift the other way has
    p > 0.5)."""
    return {n: one_sided(cmp, c.components[n]) for n, cmp in comparisons.items()}


def one_sided(cmp: Comparison, direction: str) -> Comparison:
    """``cmp`` with its two-sided p-value made one-sided in ``direction``."""
    agrees = (cmp.delta_log > 0) == (direction == "regression")
    return dataclasses.replace(cmp, p_value=cmp.p_value / 2 if agrees else 1 - cmp.p_value / 2)


def significant(c: Confirmation, comparisons: dict[str, Comparison], alpha: float) -> set[str]:
    """Components still open that move as the candidate said (their one-sided
    p-values), BH at ``alpha``."""
    open_ = [n for n in comparisons if n not in c.decided]
    ok = benjamini_hochberg([comparisons[n].p_value for n in open_], q=alpha)
    return {n for n, keep in zip(open_, ok, strict=True) if keep}

