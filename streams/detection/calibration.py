"""The calibration agent's answer: an operating point from the scenario's
own history."""

from __future__ import annotations

from streams.detection.policy import Policy
from ttfb import events as ev
from ttfb.stats import Point
from ttfb.stats.calibration import OperatingPoint, calibrate


def calibration_answer(request: ev.CalibrationRequested,
                       policy: Policy) -> ev.ThresholdCalibrated:
    """ROC on the scenario's own accepted history (pooled: the total TTFB series).

    Pure and deterministic (seeded by the history's length), so a request
    answered twice gets the same answer; the calibration agent runs it off the
    fold's path, in a worker process.
    """
    history = [Point(float(i), f"h{i}", tuple(v)) for i, v in enumerate(request.history)]
    budget = request.budget_per_week or policy.budget_per_week
    result = calibrate(history, tests_per_week=policy.tests_per_week,
                       budget_per_week=budget, base=policy.detector,
                       trials=policy.calibration_trials, length=max(12, len(history)),
                       seed=request.accepted, confirm_alpha=policy.confirm_alpha,
                       alphas=(0.001, 0.01, 0.05), ks=(0.5, 1.0),
                       max_fpr=policy.max_candidate_rate)

    def point(p: OperatingPoint) -> ev.RocPoint:
        return ev.RocPoint(threshold=p.alpha, false_positive_rate=p.false_positive_rate,
                           power=p.power)

    return ev.ThresholdCalibrated(
        scenario=request.scenario, series=f"{request.scenario}/ttfb (pooled)",
        tests_per_week=policy.tests_per_week, budget_per_week=budget,
        points=[point(p) for p in result.points], chosen=point(result.chosen),
        chosen_k=result.chosen.k, accepted=request.accepted, producer="ttfb-calibration")
