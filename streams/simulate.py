"""Drive the bisect fold and the confirmation against a simulated agent (tests,
``bench/bisection.py`` and ``bench/confirmation.py``)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from streams.bisect import BisectBook, BisectPolicy, decide, from_json, to_json
from streams.detection import (
    Confirmation,
    Policy,
    ScenarioState,
)
from streams.detection.confirm import confirmation_result
from streams.detection.runs import confirm_runs
from ttfb import events as ev

# a run's components, from (rng, arm label, the look's level on the log scale)
Draw = Callable[[np.random.Generator, str, float], dict[str, float]]


def confirming(components: dict[str, str], policy: Policy) -> tuple[ScenarioState, Confirmation]:
    """A state with one confirmation under way, ``d``: commit ``b`` against
    ``a``, of ``components`` (component -> the candidate's direction)."""
    state = ScenarioState()
    state.confirming["d"] = pending = Confirmation(
        detection_id="d", commit="b", good_commit="a", components=components,
        hardware_id="", branch="main", runs_per_side=policy.confirm_first_runs, repo="sim")
    return state, pending


def confirm_run(commit: str, arm: str, components: dict[str, float], correlation_id: str = "d",
                scenario: str = "s") -> ev.RunCompleted:
    """The agent's answer to a confirmation run: ``components`` in ms."""
    return ev.RunCompleted(repo="sim", scenario=scenario, commit=commit, purpose="confirm", arm=arm,
                           correlation_id=correlation_id, ttfb_ms=sum(components.values()),
                           components=components)  # type: ignore[arg-type]


def simulate_confirmation(rng: np.random.Generator, policy: Policy, draw: Draw,
                          between: float = 0.0, named: dict[str, str] | None = None,
                          thresholds: dict[str, Any] | None = None) -> list[ev.Event]:
    """One candidate (``named``: component -> direction; an ``imports``
    regression by default) through the two-look confirmation, its runs
    answered in the order the fold asks for them; each look's runs share a
    level of their own, drawn with sd ``between`` (other work ran between the
    looks). ``thresholds``: the catalog's overrides in force (``ScenarioState.thresholds``).
    Returns the verdicts (a follow-up candidate's too, after it)."""
    state, pending = confirming(named or {"imports": "regression"}, policy)
    state.thresholds = dict(thresholds or {})
    out: list[ev.Event] = confirm_runs(pending, "s", policy.confirm_first_runs,
                                        warmup=policy.confirm_warmup)
    level = float(rng.normal(0.0, between))
    decided: list[ev.Event] = []
    while requests := [c for c in out if isinstance(c, ev.RunRequested)]:
        decided += [e for e in out if not isinstance(e, ev.RunRequested)]
        out = []
        for request in requests:
            side = "before" if request.commit == pending.good_commit else "after"
            components = draw(rng, side, level)  # a warm-up run is of one side too
            state, emitted = confirmation_result(state, confirm_run(
                request.commit, request.arm.label, components, request.correlation_id), policy)
            out += emitted
        level = float(rng.normal(0.0, between))  # the next look's runs
    return decided + out


def unnamed_component(shift: float, bimodal: bool) -> Draw:
    """imports as the candidate named it, unmoved, and one component the
    candidate did not name: first_step, ~100 ms and bimodal (40 % of runs
    near 200 ms: a cold cache, the lab's own work, on both sides), or data,
    ~300 ms and log-normal (8 %); ``shift`` moves it on the after side."""
    def draw(rng: np.random.Generator, arm: str, level: float) -> dict[str, float]:
        after = shift if arm == "after" else 0.0
        runs = {"imports": 2000.0 * float(rng.lognormal(level, 0.05))}
        if bimodal:
            mode = 200.0 if rng.random() < 0.4 else 100.0
            runs["first_step"] = mode * float(rng.lognormal(level + after, 0.08))
        else:
            runs["data"] = 300.0 * float(rng.lognormal(level + after, 0.08))
        return runs
    return draw


def carry_over(slow: float) -> Draw:
    """imports unmoved, but a run that follows a run of the good commit is
    ``slow`` (log) slower: whatever one run leaves for the next."""
    previous = [""]

    def draw(rng: np.random.Generator, arm: str, level: float) -> dict[str, float]:
        extra = slow if previous[0] == "before" else 0.0
        previous[0] = arm
        return {"imports": 2000.0 * float(rng.lognormal(level + extra, 0.05))}
    return draw


def wander(shift: float, step: float, noise: float = 0.05) -> Draw:
    """imports moved by ``shift`` (log) on the after side, on a machine whose
    level wanders from run to run (a random walk, steps of sd ``step``)
    besides each run's own noise: in the demo, one look's runs of a commit
    fell steadily from 2,739 to 1,801 ms."""
    walk = [0.0]

    def draw(rng: np.random.Generator, arm: str, level: float) -> dict[str, float]:
        walk[0] += float(rng.normal(0.0, step))
        moved = shift if arm == "after" else 0.0
        return {"imports": 2000.0 * float(np.exp(level + walk[0] + moved
                                                 + rng.normal(0.0, noise)))}
    return draw


def confirmed(verdicts: list[ev.Event], component: str | None = None) -> bool:
    """Whether ``component`` (any, when None) was confirmed among the verdicts."""
    return any(isinstance(e, (ev.RegressionConfirmed, ev.ImprovementConfirmed))
               and component in (None, e.component) for e in verdicts)


def simulate_bisect(n: int, level: Callable[[int], float], seed: int = 0, cv: float = 0.03,
                    fails: set[int] | None = None, restart_every: int = 0,
                    duplicate: bool = False, policy: BisectPolicy | None = None,
                    component: str = "config", direction: str = "regression",
                    affected: list[bool] | None = None,
                    drift: float = 0.0,
                    evidence: tuple[int, float] | None = None,
                    evidence_shift: float = 0.0, max_runs: int = 0,
                    progress: list[ev.BisectProgressed] | None = None,
                    outliers: float = 0.0, monitored: int = 0,
                    monitor_spread: float | None = None,
                    hint_late: bool = False,
                    monitor_level: Callable[[int], float | None] | None = None
                    ) -> ev.BisectCompleted:
    """Bisect commits c00..c{n-1}; ``level(i)`` is commit i's mean in ms;
    ``affected``: the agent's hint, per commit, of which ones touch the scenario;
    ``drift``: the machine's own level wanders from run to run, a mean-reverting
    walk (AR(1), 0.9 per run) whose spread is ``drift`` on the log scale;
    ``evidence``: the confirmation hands over (runs per endpoint, the log level
    the machine had then, minutes before the bisect); ``evidence_shift``: a
    log shift of the handed runs of the bad endpoint alone, as a confirmation
    fooled by its runs would hand over; ``outliers``: the share of runs a
    machine's hiccup makes 20-50 % slower; ``monitored``: the confirmation
    hands over this many monitoring runs of every commit, each commit's
    taken at a machine level of its own (drawn with the spread
    ``monitor_spread``, ``drift`` unless given: hours apart, nothing of the
    walk is left between them); ``hint_late``: the first listing comes
    without ``affected``, as from an agent that has not run the scenario
    yet, and the range listed again has it; ``monitor_level``: the mean of
    each commit's handed monitoring runs where it is not ``level`` (None: the
    commit has none, as one that touches none of the scenario's files). A
    listing is answered before any queued run, as an agent's queue takes it."""
    policy = policy or BisectPolicy(explain=False)
    rng = np.random.default_rng(seed)
    commits = [f"c{i:02d}" for i in range(n)]
    found = ev.RegressionConfirmed if direction == "regression" else ev.ImprovementConfirmed
    handed = _handed(commits, level, rng, cv, evidence, evidence_shift, monitored,
                     drift if monitor_spread is None else monitor_spread, monitor_level)
    start = found(scenario="sim", repo="sim", component=component, commit=commits[-1],
                  good_commit=commits[0], direction=direction,  # type: ignore[arg-type]
                  detection_id="det", bisect_max_runs=max_runs, **handed)
    book, out = decide(BisectBook(), start, policy)
    request = out[0]
    assert isinstance(request, ev.CommitRangeRequested)

    def listing(request: ev.CommitRangeRequested, hinted: bool = True) -> ev.CommitRangeListed:
        return ev.CommitRangeListed(
            request_id=request.request_id, scenario="sim", repo="demo",
            correlation_id=request.correlation_id, commits=commits,
            authors=[f"a{i}" for i in range(n)], subjects=[f"s{i}" for i in range(n)],
            affected=(affected or []) if hinted else [])

    queue: list[ev.Event] = [listing(request, hinted=not hint_late)]
    applied, machine = 0, 0.0  # the machine's own log level now
    while queue:
        event = queue.pop(0)
        applied += 1
        if restart_every and applied % restart_every == 0:  # the worker restarts
            book = from_json(json.loads(json.dumps(to_json(book))))
        book, out = decide(book, event, policy)
        if duplicate and isinstance(event, (ev.RunCompleted, ev.RunFailed)):
            book, again = decide(book, event, policy)  # a redelivery: no effect
            if again:
                raise AssertionError(f"a duplicate had an effect: {again}")
        for produced in out:
            if isinstance(produced, ev.BisectCompleted):
                return produced
            if isinstance(produced, ev.BisectProgressed) and progress is not None:
                progress.append(produced)
            if isinstance(produced, ev.CommitRangeRequested):  # listed again
                queue.insert(0, listing(produced))
            if isinstance(produced, ev.RunRequested):
                # AR(1) at 0.9: steps of sd drift * sqrt(1 - 0.9 ** 2) keep its spread at drift
                machine = 0.9 * machine + float(rng.normal(0.0, drift * math.sqrt(0.19)))
                # drawn only when asked for: other simulations keep their random streams
                hiccup = float(rng.uniform(1.2, 1.5)) if outliers and rng.random() < outliers \
                    else 1.0
                queue.append(_answer(produced, commits, level, rng, cv, fails, component,
                                     math.exp(machine) * hiccup))
    raise AssertionError("the bisect never completed")


def _handed(commits: list[str], level: Callable[[int], float], rng: np.random.Generator,
            cv: float, evidence: tuple[int, float] | None, evidence_shift: float,
            monitored: int, spread: float,
            monitor_level: Callable[[int], float | None] | None = None) -> dict[str, Any]:
    """What a confirmation hands the bisect (``simulate_bisect``)."""
    handed: dict[str, Any] = {}
    if evidence:
        runs, then = evidence
        handed = {f"evidence_{side}": [level(i) * math.exp(then + shift) * _noise(rng, cv)
                                       for _ in range(runs)]
                  for side, i, shift in (("before", 0, 0.0),
                                         ("after", len(commits) - 1, evidence_shift))}
    if monitored:
        means = [level(i) if monitor_level is None else monitor_level(i)
                 for i in range(len(commits))]
        handed["monitored"] = {
            c: [mean * math.exp(then) * _noise(rng, cv) for _ in range(monitored)]
            for c, mean in zip(commits, means, strict=True)
            for then in [float(rng.normal(0.0, spread))] if mean is not None}
    return handed


def _answer(request: ev.RunRequested, commits: list[str], level: Callable[[int], float],
            rng: np.random.Generator, cv: float, fails: set[int] | None,
            component: str, machine: float = 1.0) -> ev.Event:
    i = commits.index(request.commit)
    if fails and i in fails:
        return ev.RunFailed(repo=request.repo, scenario="sim", commit=request.commit,
                            purpose=request.purpose,
                            arm=request.arm.label, correlation_id=request.correlation_id,
                            reason="workflow crashed")
    ms = level(i) * machine * _noise(rng, cv)
    comps = {c: 10.0 for c in ev.COMPONENTS} | {component: ms}
    return ev.RunCompleted(repo=request.repo, scenario="sim", commit=request.commit,
                           purpose=request.purpose,
                           arm=request.arm.label, correlation_id=request.correlation_id,
                           ttfb_ms=sum(comps.values()), components=comps)  # type: ignore[arg-type]


def _noise(rng: np.random.Generator, cv: float) -> float:
    """A run's log-normal factor about its mean: coefficient of variation ``cv``."""
    return float(rng.lognormal(-0.5 * np.log1p(cv**2), np.sqrt(np.log1p(cv**2))))
