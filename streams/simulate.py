"""Drive the bisect fold against a simulated agent (tests and ``bench/bisect.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from streams.bisect import BisectBook, BisectPolicy, decide, from_json, to_json
from ttfb import events as ev


def simulate_bisect(n: int, level: Callable[[int], float], seed: int = 0, cv: float = 0.03,
                    fails: set[int] | None = None, restart_every: int = 0,
                    duplicate: bool = False, policy: BisectPolicy | None = None,
                    component: str = "config", direction: str = "regression",
                    affected: list[bool] | None = None) -> ev.BisectCompleted:
    """Bisect commits c00..c{n-1}; ``level(i)`` is commit i's mean in ms;
    ``affected``: the agent's hint, per commit, of which ones touch the scenario."""
    policy = policy or BisectPolicy(explain=False)
    rng = np.random.default_rng(seed)
    commits = [f"c{i:02d}" for i in range(n)]
    found = ev.RegressionConfirmed if direction == "regression" else ev.ImprovementConfirmed
    start = found(scenario="sim", component=component, commit=commits[-1],
                  good_commit=commits[0], direction=direction,  # type: ignore[arg-type]
                  detection_id="det")
    book, out = decide(BisectBook(), start, policy)
    request = out[0]
    assert isinstance(request, ev.CommitRangeRequested)
    queue: list[ev.Event] = [ev.CommitRangeListed(
        request_id=request.request_id, scenario="sim", repo="demo",
        correlation_id=request.correlation_id, commits=commits,
        authors=[f"a{i}" for i in range(n)], subjects=[f"s{i}" for i in range(n)],
        affected=affected or [])]
    applied = 0
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
            if isinstance(produced, ev.RunRequested):
                queue.append(_answer(produced, commits, level, rng, cv, fails, component))
    raise AssertionError("the bisect never completed")


def _answer(request: ev.RunRequested, commits: list[str], level: Callable[[int], float],
            rng: np.random.Generator, cv: float, fails: set[int] | None,
            component: str) -> ev.Event:
    i = commits.index(request.commit)
    if fails and i in fails:
        return ev.RunFailed(scenario="sim", commit=request.commit, purpose=request.purpose,
                            correlation_id=request.correlation_id, reason="workflow crashed")
    ms = level(i) * float(rng.lognormal(-0.5 * np.log1p(cv**2), np.sqrt(np.log1p(cv**2))))
    comps = {c: 10.0 for c in ev.COMPONENTS} | {component: ms}
    return ev.RunCompleted(scenario="sim", commit=request.commit, purpose=request.purpose,
                           correlation_id=request.correlation_id, ttfb_ms=sum(comps.values()),
                           components=comps)  # type: ignore[arg-type]
