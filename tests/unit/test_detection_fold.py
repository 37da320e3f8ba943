"""The detection/confirmation fold, without Kafka."""

from __future__ import annotations

import json

import numpy as np

from streams.detection import Policy, ScenarioState, decide, from_json, to_json
from ttfb import events as ev

BASE = {"queue": 1.0, "startup": 40.0, "imports": 2000.0, "config": 10.0, "data": 200.0,
        "model": 900.0, "first_step": 20.0}


def run(rng: np.random.Generator, commit: str, rep: int, *, purpose: str = "monitor",
        bump: dict[str, float] | None = None, arm: str = "default", corr: str = "",
        total: int = 3) -> ev.RunCompleted:
    comps = {k: v * float(rng.lognormal(0, 0.02)) + (bump or {}).get(k, 0.0)
             for k, v in BASE.items()}
    return ev.RunCompleted(scenario="lm", commit=commit, repetition=rep, runs_total=total,
                           purpose=purpose, arm=arm, correlation_id=corr,  # type: ignore[arg-type]
                           ttfb_ms=sum(comps.values()), components=comps,  # type: ignore[arg-type]
                           author="Bo Chen", subject=f"change {commit}")


def feed(state: ScenarioState, events: list[ev.Event]) -> tuple[ScenarioState, list[ev.Event]]:
    out: list[ev.Event] = []
    for e in events:
        state, emitted = decide(state, e, Policy())
        out += emitted
    return state, out


def monitor(rng: np.random.Generator, commits: int, start: int = 0,
            bump_from: int | None = None, bump: dict[str, float] | None = None) -> list[ev.Event]:
    events: list[ev.Event] = []
    for i in range(start, start + commits):
        b = bump if bump_from is not None and i >= bump_from else None
        events += [run(rng, f"c{i}", r, bump=b) for r in range(3)]
    return events


def test_regression_is_candidate_then_confirmed_with_an_alert() -> None:
    rng = np.random.default_rng(1)
    state, out = feed(ScenarioState(), monitor(rng, 6))
    assert out == []
    state, out = feed(state, monitor(rng, 1, start=6, bump_from=6, bump={"config": 350.0}))
    candidates = [e for e in out if isinstance(e, ev.CandidateDetected)]
    commands = [e for e in out if isinstance(e, ev.RunRequested)]
    assert [(c.component, c.commit, c.good_commit, c.direction) for c in candidates] == \
        [("config", "c6", "c5", "regression")]
    assert [(c.arm.label, c.commit) for c in commands[:4]] == \
        [("before", "c5"), ("after", "c6"), ("before", "c5"), ("after", "c6")]
    per_side = Policy().confirm_runs
    assert len(commands) == 2 * per_side and all(c.purpose == "confirm" for c in commands)
    det = candidates[0].detection_id
    fresh = [run(rng, c.commit, 0, purpose="confirm", arm=c.arm.label, corr=det, total=1,
                 bump={"config": 350.0} if c.arm.label == "after" else None) for c in commands]
    state, out = feed(state, fresh)
    confirmed = [e for e in out if isinstance(e, ev.RegressionConfirmed)]
    alerts = [e for e in out if isinstance(e, ev.Alert)]
    assert [(c.component, c.commit, c.runs_spent) for c in confirmed] == \
        [("config", "c6", 2 * per_side)]
    assert confirmed[0].effect_pct > 3000 and confirmed[0].p_value < 0.01
    assert confirmed[0].ci_low_pct <= confirmed[0].effect_pct <= confirmed[0].ci_high_pct
    assert [(a.kind, a.component, a.author, a.subject) for a in alerts] == \
        [("regression", "config", "Bo Chen", "change c6")]
    assert state.confirming == {}


def test_a_candidate_that_does_not_replicate_is_dismissed() -> None:
    rng = np.random.default_rng(2)
    state, _ = feed(ScenarioState(), monitor(rng, 6))
    state, out = feed(state, monitor(rng, 1, start=6, bump_from=6, bump={"data": 300.0}))
    commands = [e for e in out if isinstance(e, ev.RunRequested)]
    det = next(e for e in out if isinstance(e, ev.CandidateDetected)).detection_id
    fresh = [run(rng, c.commit, 0, purpose="confirm", arm=c.arm.label, corr=det, total=1)
             for c in commands]  # the fresh runs show no difference
    state, out = feed(state, fresh)
    assert [type(e).__name__ for e in out] == ["DetectionDismissed"]


def test_ordinary_commits_raise_nothing_over_many_seeds() -> None:
    flagged = tested = 0
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        _, out = feed(ScenarioState(), monitor(rng, 25))
        flagged += len({e.commit for e in out if isinstance(e, ev.CandidateDetected)})
        tested += 25 - 2  # the first two commits form the baseline
    # a candidate costs confirmation runs (and is dismissed): keep them rare
    assert flagged / tested <= 0.01


def test_improvement_in_imports_is_found() -> None:
    rng = np.random.default_rng(3)
    state, _ = feed(ScenarioState(), monitor(rng, 6))
    _, out = feed(state, monitor(rng, 1, start=6, bump_from=6, bump={"imports": -360.0}))
    found = [(e.component, e.direction) for e in out if isinstance(e, ev.CandidateDetected)]
    assert found == [("imports", "improvement")]


def test_duplicates_change_nothing_and_state_survives_json() -> None:
    rng = np.random.default_rng(4)
    events = monitor(rng, 6)
    once, _ = feed(ScenarioState(), events)
    twice, out = feed(from_json(json.loads(json.dumps(to_json(once)))), events)
    assert out == [] and to_json(twice) == to_json(once)
    bumped = monitor(rng, 1, start=6, bump_from=6, bump={"config": 350.0})
    a, out_a = feed(once, bumped)
    b, out_b = feed(from_json(json.loads(json.dumps(to_json(once)))), bumped)
    assert [type(e).__name__ for e in out_a] == [type(e).__name__ for e in out_b]
    assert to_json(a)["series"] == to_json(b)["series"]


def test_thresholds_are_calibrated_as_history_grows() -> None:
    rng = np.random.default_rng(5)
    state, out = feed(ScenarioState(), monitor(rng, 9))  # 8 accepted after the first
    calibrated = [e for e in out if isinstance(e, ev.ThresholdCalibrated)]
    assert len(calibrated) == 1
    event = calibrated[0]
    assert event.budget_per_week == 1.0 and len(event.points) == 6
    assert set(event.chosen.power) == {"2%", "5%", "10%"}
    # the chosen point keeps the expected confirmed false alarms within the budget
    policy = Policy()
    assert event.chosen.false_positive_rate * policy.confirm_alpha * \
        policy.tests_per_week <= policy.budget_per_week
    assert state.operating and state.operating[0] == event.chosen.threshold
