"""The detector checked statistically: rates over many seeded series."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from ttfb.stats import (
    DetectorConfig,
    Point,
    benjamini_hochberg,
    compare,
    compare_blocked,
    compare_paired,
    counterbalanced,
    detect,
    rank_p_blocked,
)
from ttfb.stats.calibration import calibrate
from ttfb.stats.simulate import SHAPES, series

CFG = DetectorConfig(alpha=0.01, k=0.5, fore=6)
LENGTH = 30


def test_false_positive_rate_is_at_most_nominal_over_2000_null_series() -> None:
    rng = np.random.default_rng(20261127)
    false_alarms, tests = 0, 0
    for i in range(2000):
        s = series(rng, length=LENGTH, cv=float(rng.uniform(0.02, 0.10)),
                   runs=int(rng.integers(1, 4)), shape=SHAPES[i % len(SHAPES)])
        false_alarms += len(detect(s.points, CFG))
        tests += LENGTH - CFG.min_back - CFG.fore + 1
    rate = false_alarms / tests
    assert rate <= CFG.alpha, f"false-positive rate {rate:.4f} above nominal {CFG.alpha}"


@pytest.mark.parametrize(("cv", "runs", "shift", "power"), [
    (0.03, 3, 10.0, 0.95),
    (0.03, 3, 5.0, 0.80),
    (0.03, 1, 10.0, 0.85),
    (0.05, 3, 10.0, 0.85),
])
def test_power_on_shifted_series(cv: float, runs: int, shift: float, power: float) -> None:
    rng = np.random.default_rng(int(cv * 1000) + runs * 7 + int(shift))
    hits = 0
    trials = 300
    for _ in range(trials):
        s = series(rng, length=LENGTH, cv=cv, runs=runs, shift_pct=shift, change_index=15)
        hits += any(abs(c.index - 15) <= 1 and c.direction == "regression"
                    for c in detect(s.points, CFG))
    assert hits / trials >= power, f"power {hits / trials:.2f} < {power}"


def test_improvements_are_detected_with_their_direction() -> None:
    rng = np.random.default_rng(7)
    found = [detect(series(rng, length=LENGTH, cv=0.03, runs=3, shift_pct=-10.0,
                           change_index=15).points, CFG) for _ in range(100)]
    hits = sum(any(c.direction == "improvement" and abs(c.index - 15) <= 1 for c in f)
               for f in found)
    assert hits >= 90


def test_exact_index_on_a_clear_step() -> None:
    values = [100.0, 101.0, 99.0, 100.5, 99.5, 100.2, 100.1, 99.8, 100.3, 99.9] + \
             [120.0, 121.0, 119.0, 120.5, 119.5, 120.2, 120.1, 119.8]
    points = [Point(float(i), f"c{i}", (v, v * 1.001)) for i, v in enumerate(values)]
    changes = detect(points, CFG)
    assert [(c.index, c.commit, c.good_commit, c.direction) for c in changes] == \
        [(10, "c10", "c9", "regression")]
    assert 18 < changes[0].effect_pct < 22


def test_every_new_commit_is_tested_after_back_to_back_changes() -> None:
    """A change found at the window's first commit restarts the baseline with the
    window; the next commits must still be tested as they arrive (one at a time
    in the stream), not only later as part of a longer window."""
    from ttfb.stats import SeriesState, apply

    cfg = DetectorConfig(back=12, fore=1, min_back=1, min_back_values=4, alpha=0.05, k=1.0,
                         min_effect_pct=3.0, conservative_df=False)
    rng = np.random.default_rng(3)
    levels = [100.0] * 6 + [150.0] * 3 + [300.0]
    state, found = SeriesState(), []
    for i, level in enumerate(levels):
        point = Point(float(i), f"c{i}", tuple(level * rng.lognormal(0, 0.02, 3)))
        state, change = apply(state, point, cfg)
        if change is not None:
            found.append((change.commit, point.commit))
        assert len(state.window) <= cfg.fore
    # each change is found at the commit that made it, when that commit arrives
    assert found == [("c6", "c6"), ("c9", "c9")]


def test_confidence_interval_covers_the_true_shift() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(2000):
        a = np.exp(rng.normal(8.0, 0.04, 10))
        b = np.exp(rng.normal(8.0 + np.log(1.05), 0.04, 10))
        c = compare(a, b)
        covered += c.ci_low_pct <= 5.0 <= c.ci_high_pct
    # nominal 95 %, less three Monte Carlo standard errors (sqrt(.95 * .05 / 2000))
    assert covered / 2000 >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / 2000)


def test_benjamini_hochberg() -> None:
    assert benjamini_hochberg([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205],
                              q=0.05) == [True, True, False, False, False, False, False, False]
    assert benjamini_hochberg([]) == []


def test_benjamini_hochberg_controls_fdr_across_components() -> None:
    rng = np.random.default_rng(3)
    proportions = []
    for _ in range(4000):
        # 7 components, 2 really moved; FDR = E[false discoveries / discoveries]
        p = np.concatenate([rng.uniform(size=5), rng.uniform(0, 0.001, size=2)])
        rejected = benjamini_hochberg(p.tolist(), q=0.05)
        proportions.append(sum(rejected[:5]) / max(sum(rejected), 1))
    assert float(np.mean(proportions)) <= 0.05


def test_rank_test_in_blocks_holds_its_level_and_ignores_the_blocks_level() -> None:
    """Two looks of 4 + 4 runs whose levels differ by sd 15 %: ranked within
    each look, the exact test keeps its level over 2,000 null pairs (0.027 at
    0.05: the 70 orders of a look make it discrete) and finds a 15 % shift
    that ranking all 16 runs together (Mann-Whitney) finds 65 % of the time."""
    from scipy import stats

    rng = np.random.default_rng(31)

    def draw(shift: float) -> tuple[list[list[float]], list[list[float]]]:
        levels = rng.normal(0.0, 0.15, 2)
        return ([list(np.exp(lv + rng.normal(0.0, 0.05, 4))) for lv in levels],
                [list(np.exp(lv + shift + rng.normal(0.0, 0.05, 4))) for lv in levels])

    null = [rank_p_blocked(*draw(0.0)) < 0.05 for _ in range(2000)]
    assert np.mean(null) <= 0.05  # binomial sd at 0.05 over 2000: 0.005
    shifted = [draw(float(np.log1p(0.15))) for _ in range(300)]
    blocked = np.mean([rank_p_blocked(a, b) < 0.05 for a, b in shifted])
    pooled = np.mean([stats.mannwhitneyu(sum(b, []), sum(a, [])).pvalue < 0.05
                      for a, b in shifted])
    assert blocked >= 0.9 and blocked >= pooled + 0.3, (blocked, pooled)


def test_rank_test_is_exact_mann_whitney_on_one_block() -> None:
    from scipy import stats

    rng = np.random.default_rng(32)
    for _ in range(20):
        a, b = list(rng.normal(0.0, 1.0, 8)), list(rng.normal(0.5, 1.0, 7))
        assert rank_p_blocked([a], [b]) == pytest.approx(
            stats.mannwhitneyu(b, a, method="exact").pvalue)


def test_paired_comparison_is_the_paired_t_test_of_neighbours_within_blocks() -> None:
    """The i-th A run against the i-th B run of the same block, on the logs;
    a block's level, and B runs left without a partner, change nothing."""
    from scipy import stats

    rng = np.random.default_rng(33)
    for _ in range(20):
        a = [list(np.exp(rng.normal(0.0, 0.1, 4))) for _ in range(2)]
        b = [list(np.exp(rng.normal(0.05, 0.1, 4))) for _ in range(2)]
        c = compare_paired(a, b)
        expected = stats.ttest_rel(np.log(sum(b, [])), np.log(sum(a, [])))
        assert c.p_value == pytest.approx(expected.pvalue)
        assert c.delta_log == pytest.approx(float(np.mean(np.log(sum(b, [])) - np.log(sum(a, [])))))
        assert c.ci_low_pct < c.effect_pct < c.ci_high_pct
        moved = compare_paired([a[0], [x * 1.3 for x in a[1]]],
                               [b[0], [x * 1.3 for x in b[1]] + [9.0]])
        assert moved.p_value == pytest.approx(c.p_value)
    with pytest.raises(ValueError, match="2 pairs"):
        compare_paired([[1.0, 2.0]], [[1.5]])


def test_paired_comparison_holds_its_level_on_a_wandering_machine_and_finds_more() -> None:
    """The level wanders from run to run (a random walk, steps of 5 %) besides
    each run's 5 % noise; 8 + 8 counterbalanced runs in two looks. Pairing
    neighbours keeps the level over 4,000 null sets and finds a 10 % shift
    more often than comparing the two sides' samples within each look."""
    rng = np.random.default_rng(34)
    order = counterbalanced(4) + counterbalanced(4, first=1)

    def draw(shift: float) -> tuple[list[list[float]], list[list[float]]]:
        walk = np.cumsum(rng.normal(0.0, 0.05, len(order))) + rng.normal(0.0, 0.05, len(order))
        values = np.exp(walk + shift * np.asarray(order))
        sides = [[[float(v) for v, arm in zip(values[k:k + 8], order[k:k + 8], strict=True)
                   if arm == side] for k in (0, 8)] for side in (0, 1)]
        return sides[0], sides[1]

    null = [compare_paired(*draw(0.0)).p_value < 0.05 for _ in range(4000)]
    assert np.mean(null) <= 0.05 + 0.007  # binomial sd at 0.05 over 4000: 0.0034
    shifted = [draw(float(np.log1p(0.10))) for _ in range(400)]
    paired = np.mean([compare_paired(a, b).p_value < 0.01 for a, b in shifted])
    blocked = np.mean([compare_blocked(a, b).p_value < 0.01 for a, b in shifted])
    assert paired >= blocked + 0.1, (paired, blocked)


def test_counterbalanced_order_puts_each_arm_behind_each_arm_as_often() -> None:
    order = counterbalanced(8)
    assert order[:4] == [0, 1, 1, 0] and order.count(0) == order.count(1) == 8
    follows = [(a, b) for a, b in zip(order, order[1:], strict=False)]
    # of the runs that follow another, each arm follows each arm 3 or 4 times in 15
    assert all(abs(follows.count((a, b)) - 15 / 4) < 1 for a in (0, 1) for b in (0, 1))


def test_calibration_respects_the_budget_and_prefers_power() -> None:
    rng = np.random.default_rng(5)
    history = series(rng, length=30, cv=0.04, runs=2).points
    result = calibrate(history, tests_per_week=500, budget_per_week=1.0, trials=30,
                       confirm_alpha=0.05, seed=1)
    assert result.chosen.expected_false_alarms_per_week <= 1.0
    feasible = [p for p in result.points if p.expected_false_alarms_per_week <= 1.0]
    assert result.chosen.mean_power == max(p.mean_power for p in feasible)
    assert set(result.chosen.power) == {"2%", "5%", "10%"}
    strict = calibrate(history, tests_per_week=500, budget_per_week=0.01, trials=30, seed=1)
    assert strict.chosen.false_positive_rate <= result.chosen.false_positive_rate


def _screened(cfg: DetectorConfig, shift: float, trials: int, seed: int) -> tuple[float, float]:
    """The streaming screen over 12-commit series (5 runs, then 3 a commit, CV
    5 %): candidates per null test, and the share of series shifted by
    ``shift`` at commit 6 found there or within the next 2 commits."""
    from ttfb.stats.detector import SeriesState, apply

    rng = np.random.default_rng(seed)
    candidates = tests = hits = 0
    for _ in range(trials):
        state, found = SeriesState(), None
        for i in range(12):
            moved = math.log1p(shift) if i >= 6 else 0.0
            values = tuple(2000 * np.exp(moved + rng.normal(0, 0.05, 5 if i == 0 else 3)))
            state, change = apply(state, Point(float(i), f"c{i}", values), cfg)
            tests += i > 0 and not (shift and i >= 6)
            if change is not None and shift and i >= 6:
                found = i if found is None else found
            elif change is not None:
                candidates += 1
        hits += found is not None and found <= 8
    return candidates / tests, hits / trials


def test_holding_a_doubtful_commit_finds_small_shifts_for_a_few_more_candidates() -> None:
    from streams.detection import Policy

    held = Policy().detector
    plain = dataclasses.replace(held, hold_p=0.0)
    assert held.hold_p > 0
    null_held, _ = _screened(held, 0.0, 1500, 1)
    null_plain, _ = _screened(plain, 0.0, 1500, 1)
    _, power_held = _screened(held, 0.10, 800, 2)
    _, power_plain = _screened(plain, 0.10, 800, 2)
    assert power_held >= power_plain + 0.05, (power_held, power_plain)
    # a held window is tested again, whole and at its newest commit: more
    # candidates, each confirmed
    assert null_held <= 1.5 * null_plain and null_held <= 0.07, (null_held, null_plain)


def test_the_streams_screen_tests_commits_of_one_run_each() -> None:
    """A window of one run cannot be compared: with one run a commit the
    screen (window of one commit) waits for the next and tests the two, so a
    cheap one-run monitoring finds most 10 % steps at CV 3 % (within two commits),
    and on null series raises candidates at most at its level per commit."""
    from streams.detection import Policy
    from ttfb.stats import SeriesState, apply

    cfg = Policy().detector
    rng = np.random.default_rng(20261203)
    hits, raised, tested = 0, 0, 0
    for trial in range(400):
        step = 1.10 if trial % 2 else 1.0
        state = SeriesState()
        found = []
        for i in range(60):
            value = 1000.0 * (step if i >= 30 else 1.0) * math.exp(rng.normal(0.0, 0.03))
            state, change = apply(state, Point(float(i), f"c{i}", (value,)), cfg)
            if change is not None:
                found.append(change.index)
        if step > 1:
            hits += any(abs(f - 30) <= 2 for f in found)
        else:
            raised += len(found)
            tested += 60 - cfg.min_back
    assert hits / 200 >= 0.75, hits
    assert raised / tested <= cfg.alpha, (raised, tested)
