"""How a bisect ends: the change must reproduce, a second culprit is looked
for, and ``BisectCompleted`` names the culprit(s) with what grew."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from streams.bisect.model import contrasts, fresh_runs
from streams.bisect.policy import BisectPolicy
from streams.bisect.state import Bisect, endpoint_block, spent
from ttfb import events as ev
from ttfb.stats import compare
from ttfb.stats.changepoint import Contrast


def reproduction(b: Bisect, policy: BisectPolicy) -> str:
    """Whether the confirmed change still stands once the bisect has run its
    endpoints again (within blocks, as the search compares): ``stands``,
    ``retract`` or ``more`` (run the endpoints again first). Only the
    bisect's own runs of them (fresh: beyond the confirmation's) judge at
    first, since the confirmation's runs were chosen by their own
    significance and overstate the step. From ``reproduce_early_runs`` fresh
    runs of each endpoint it stands if they show the step clearly (one-sided
    p < ``reproduce_early_alpha``). Once each has ``reproduce_min_runs``:

    - it stands when they show the step in its direction (one-sided
      p < ``reproduce_alpha``);
    - it is retracted when they favour no step over a step of
      ``reproduce_min_effect_pct`` in its direction (the smallest change
      the detector raises) by a likelihood ratio of ``reproduce_odds`` or
      more: were the change that large or larger, they would with
      probability at most Phi(-sqrt(2 ln odds)) (1.6 % at 10) at a look;
    - otherwise more runs, up to ``reproduce_max_runs`` fresh ones, where
      all the endpoints' runs, the confirmation's included, must still show
      the step in its direction (two-sided p < ``reproduce_alpha``) for it
      to stand.

    A search over a long range has usually run the endpoints that often
    already; a short one, or a commit and its parent, has them run here.
    An endpoint whose workflow fails is not run again: the change stands."""
    fresh = min(fresh_runs(b))
    pair = [(0, len(b.commits) - 1)]
    sign = direction_sign(b)
    early = 0 < policy.reproduce_early_runs <= fresh < policy.reproduce_min_runs
    if early or fresh >= policy.reproduce_min_runs:
        (own,) = contrasts(b, pair, policy.paired, "fresh")
        if own is not None:
            step, p, _ = own
            level = policy.reproduce_early_alpha if early else policy.reproduce_alpha
            if step * sign > 0 and p / 2 < level:
                return "stands"
            if not early and odds_against(b, policy, own) >= policy.reproduce_odds:
                return "retract"
    if any(b.failed.get(c, 0) >= policy.batch for c in (b.commits[0], b.commits[-1])):
        return "stands"
    if fresh < policy.reproduce_max_runs:
        return "more"
    (every,) = contrasts(b, pair, policy.paired)
    shown = every is not None and every[0] * sign > 0 and every[1] < policy.reproduce_alpha
    return "stands" if shown else "retract"


def direction_sign(b: Bisect) -> float:
    """+1 for a regression (the step is up), -1 for an improvement."""
    return 1.0 if b.direction == "regression" else -1.0


def odds_against(b: Bisect, policy: BisectPolicy, own: Contrast | None = None) -> float:
    """How many times likelier the bisect's own runs of the endpoints (``own``:
    their contrast, read here if not given) are under no step than under
    a step of ``reproduce_min_effect_pct`` (the smallest change the
    detector raises) in the change's direction; 0 without such runs."""
    if own is None:
        (own,) = contrasts(b, [(0, len(b.commits) - 1)], policy.paired, "fresh")
        if own is None:
            return 0.0
    step, _, se = own
    smallest = direction_sign(b) * math.log1p(policy.reproduce_min_effect_pct / 100)
    # the log likelihood ratio of no step against the smallest one
    return math.exp(min(700.0, smallest * (smallest - 2 * step) / (2 * se * se)))


def reproduction_runs(b: Bisect, policy: BisectPolicy) -> list[ev.Event]:
    """Fresh runs of each endpoint, in a block of their own (good, bad, bad,
    good, ...): up to ``reproduce_early_runs``, then up to
    ``reproduce_min_runs``, then ``reproduce_min_runs`` more at a time (without
    the early reading, ``reproduce_min_runs`` more from the start), up to
    ``reproduce_max_runs``."""
    have = fresh_runs(b)
    least, early = min(have), policy.reproduce_early_runs
    if least < early:
        target = early
    elif early and least < policy.reproduce_min_runs:
        target = policy.reproduce_min_runs
    else:
        target = min(policy.reproduce_max_runs, least + policy.reproduce_min_runs)
    return endpoint_block(b, [max(0, target - n) for n in have], alternate=True)


def second_search(b: Bisect, policy: BisectPolicy) -> tuple[int, int] | None:
    """Endpoints of a search for a second, separable culprit, if one remains:
    the culprit's parent still differs from the good endpoint, or the culprit
    from the bad one, by a significant share of the whole effect (within
    blocks, as the search compares)."""
    first, last = b.culprits[0], len(b.commits) - 1
    sides = [(0, b.lo), (first, last)]  # left: good..last like-good; right: culprit..bad
    total, *rests = contrasts(b, [(0, last), *sides], policy.paired)
    if total is None or not total[0]:
        return None
    for (good, bad), rest in zip(sides, rests, strict=True):
        if good != bad and rest and rest[1] < policy.alpha and \
                rest[0] / total[0] >= policy.second_culprit_share and \
                abs(rest[0]) >= math.log1p(policy.second_culprit_min_pct / 100):
            return good, bad
    return None


def least(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each name's least time over a side's profiled runs; a name missing from
    a run took no time in it."""
    if not runs:
        return {}
    names = set().union(*runs)
    return {n: min(r.get(n, 0.0) for r in runs) for n in names}


def grown(good: dict[str, float], bad: dict[str, float], top: int = 10,
          changed: Iterable[str] = (), ours: Iterable[str] = (),
          material: float = 0.05, new_first: bool = False) -> list[dict[str, Any]]:
    """Profile entries whose cumulative time grew from good to bad. Among
    those that grew by at least ``material`` of the largest growth, what the
    culprit changed (``changed``: its functions, its files' modules) comes
    first, then the repository's own (``ours``), then, with ``new_first``,
    what only the bad side has (``new``: a module the change pulled in,
    where a module both sides import grew only with the machine's pace;
    material whatever it cost), then the rest; each by growth. ``where``
    says which an entry is."""
    changed, ours = set(changed), set(ours)

    def where(name: str) -> str:
        if name in changed:
            return "changed"
        if name in ours:
            return "repository"
        return "new" if new_first and name not in good else ""

    deltas: list[dict[str, Any]] = [
        {"name": name, "good_ms": round(good.get(name, 0.0), 3), "bad_ms": round(ms, 3),
         "delta_ms": round(ms - good.get(name, 0.0), 3), "where": where(name)}
        for name, ms in bad.items()]
    deltas = [d for d in deltas if d["delta_ms"] > 0]
    largest = max((d["delta_ms"] for d in deltas), default=0.0)
    rank = {"changed": 0, "repository": 1, "new": 2, "": 3}
    # a module only the bad side has is material whatever it cost: a stall in
    # one run's import of a shared module can grow it past any real addition.
    # Equal growths go by name: ``bad`` comes in a set's order, which differs
    # from process to process, and so did a replay's explanation
    deltas.sort(key=lambda d: (d["where"] != "new" and d["delta_ms"] < material * largest,
                               rank[d["where"]], -d["delta_ms"], d["name"]))
    return deltas[:top]


def explain(b: Bisect, parent: str, culprit: str) -> list[dict[str, Any]]:
    """What grew from the culprit's parent to the culprit, over their
    profiled runs (of an improvement: what shrank, with negative deltas)."""
    def side(commit: str) -> dict[str, float]:
        return least(b.profile_runs.get(commit) or
                     ([b.profiles[commit]] if commit in b.profiles else []))

    after = side(culprit)
    before = aligned(side(parent), after)
    # a module only one side imports is what the change added or removed
    new_first = b.component == "imports"
    if b.direction != "improvement":
        return grown(before, after, changed=b.changed, ours=b.ours, new_first=new_first)
    shrank = grown(after, before, changed=b.changed, ours=b.ours, new_first=new_first)
    return [{**row, "good_ms": row["bad_ms"], "bad_ms": row["good_ms"],
             "delta_ms": -row["delta_ms"],
             "where": "dropped" if row["where"] == "new" else row["where"]}
            for row in shrank]


def aligned(side: dict[str, float], to: dict[str, float]) -> dict[str, float]:
    """``side``'s functions (``file:line:name``) under ``to``'s line numbers:
    lines a change adds above a function move it, not change it. The k-th
    function of a name in a file on one side is the k-th on the other where
    both list as many; these pairs say how far the change moved each part
    of the file, and a function of a name the change added or removed one
    of (a new class's ``__init__``) is paired where the nearest pair above
    it, else the nearest below, says it moved to, if the other side has it
    there."""
    def groups(times: dict[str, float]) -> dict[tuple[str, str], dict[int, str]]:
        out: dict[tuple[str, str], dict[int, str]] = {}
        for key in times:
            file, line, name = (key.split(":", 2) + ["", ""])[:3]
            if line.isdigit() and name:
                out.setdefault((file, name), {})[int(line)] = key
        return out

    mine, theirs = groups(side), groups(to)
    as_many = {f for f, lines in mine.items() if len(theirs.get(f, {})) == len(lines)}
    renamed: dict[str, str] = {}
    moved: dict[str, list[tuple[int, int]]] = {}  # file -> (line, how far it moved)
    for function in as_many:
        lines, other = mine[function], theirs[function]
        for line, new in zip(sorted(lines), sorted(other), strict=True):
            renamed[lines[line]] = other[new]
            moved.setdefault(function[0], []).append((line, new - line))
    for function in mine.keys() - as_many:
        lines, other = mine[function], theirs.get(function, {})
        pairs = sorted(moved.get(function[0], []))
        for line, key in lines.items():
            above = next((s for at, s in reversed(pairs) if at <= line), 0)
            below = next((s for at, s in pairs if at > line), above)
            target = next((line + s for s in (above, below) if line + s in other), None)
            if target is not None:
                renamed[key] = other[target]
    return {renamed.get(k, k): v for k, v in side.items()}


def attributed_alert(done: ev.BisectCompleted, dashboard_url: str) -> ev.Alert:
    """The alert of a confirmed change, updated with its culprit, or retracted
    (status ``not_reproduced``, no culprit) when the bisect's runs of its
    endpoints no longer show it."""
    return ev.Alert(
        alert_id=f"{done.detection_id}:{done.component}", kind=done.direction,
        scenario=done.scenario, component=done.component, commit=done.bad,
        effect_ms=done.effect_ms, effect_pct=done.effect_pct, ci_low_pct=done.ci_low_pct,
        ci_high_pct=done.ci_high_pct, culprit=done.culprit,
        culprit_confidence=done.confidence, author=done.author, subject=done.subject,
        changed_files=done.changed_files,
        **done.whole(),
        status="attributed" if done.reproduced else "not_reproduced",
        link=f"{dashboard_url}/regressions?detection={done.detection_id}",
        producer="ttfb-bisect")


def step_sizes(b: Bisect, positions: list[int]) -> dict[int, float]:
    """Each culprit's step on the log scale: the mean of every run between it and
    the next culprit minus the mean of every run between the previous one and it."""
    bounds = [0, *positions, len(b.commits)]
    means = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        logs = [math.log(v) for c in b.commits[lo:hi] for v in b.samples.get(c, []) if v > 0]
        means.append(sum(logs) / len(logs) if logs else math.nan)
    out = {}
    for k, i in enumerate(positions):
        step = means[k + 1] - means[k]
        out[i] = step if math.isfinite(step) else 0.0
    return out


def completed(b: Bisect, error: str = "",
              inconclusive: tuple[str, str, float] | None = None) -> ev.BisectCompleted:
    """The bisect's result; ``inconclusive``: its budget ran out, and the
    culprit most likely lies after the first commit up to the second, with
    that posterior mass."""
    good, bad = b.samples.get(b.commits[0], []) if b.commits else [], \
        b.samples.get(b.commits[-1], []) if b.commits else []
    effect = compare(good, bad) if len(good) >= 2 and len(bad) >= 2 else None
    culprits = [b.commits[i] for i in b.culprits] if b.reproduced else []
    if len(culprits) > 1:  # the larger part first
        steps = step_sizes(b, sorted(b.culprits))
        culprits = [b.commits[i] for i in sorted(b.culprits, key=lambda i: -steps[i])]
    first = b.commits.index(culprits[0]) if culprits else -1
    explanation: list[dict[str, Any]] = []
    changed_files: list[str] = []
    if culprits and b.culprits[0] > 0:
        parent, culprit = b.commits[b.culprits[0] - 1], b.commits[b.culprits[0]]
        explanation, changed_files = explain(b, parent, culprit), list(b.changed_files)
    return ev.BisectCompleted(
        bisect_id=b.bisect_id, detection_id=b.detection_id, scenario=b.scenario,
        component=b.component, direction=b.direction,  # type: ignore[arg-type]
        good=b.good, bad=b.bad, culprit=culprits[0] if culprits else "",
        culprits=culprits, author=b.authors[first] if first >= 0 else "",
        subject=b.subjects[first] if first >= 0 else "",
        effect_ms=effect.effect_ms if effect else 0.0,
        effect_pct=effect.effect_pct if effect else 0.0,
        ci_low_pct=effect.ci_low_pct if effect else 0.0,
        ci_high_pct=effect.ci_high_pct if effect else 0.0,
        confidence=round(b.confidence, 6) if culprits else 0.0,
        steps=[ev.BisectStep(**s) for s in b.steps],
        runs_spent=spent(b), error=error, explanation=explanation,
        changed_files=changed_files,
        **b.whole,
        reproduced=b.reproduced, inconclusive=inconclusive is not None,
        likely_after=inconclusive[0] if inconclusive else "",
        likely_last=inconclusive[1] if inconclusive else "",
        likely_mass=round(inconclusive[2], 4) if inconclusive else 0.0,
        producer="ttfb-bisect")
