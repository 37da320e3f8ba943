"""The bisect coordinator as a pure fold: confirmed regression -> culprit commit.

1. ``RegressionConfirmed`` -> ``CommitRangeRequested`` (an agent lists good..bad).
2. ``CommitRangeListed`` -> endpoint runs, interleaved (good, bad, good, ...).
3. Binary search: the midpoint runs in batches of ``batch`` runs and is
   classified like-good / like-bad by an SPRT against the endpoints, stopping
   as soon as the decision is clear at the configured error rates.
4. A commit whose workflow fails is skipped (like ``git bisect skip``).
5. When the culprit still differs from the bad endpoint by a significant part
   of the effect, a second search over the rest of the range reports the
   second culprit.
6. One profiled run of the culprit and of its parent explain the regression
   (functions whose cumulative time grew most); then ``BisectCompleted``.

Duplicated events and commands do no harm: results are counted per run id.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ttfb import events as ev
from ttfb.stats import compare
from ttfb.stats.sprt import Endpoints, classify

MAX_RANGE = 1000


@dataclass(frozen=True)
class BisectPolicy:
    endpoint_runs: int = 8
    batch: int = 2
    max_runs_per_step: int = 10  # raised for close endpoints, see _max_runs
    max_runs_cap: int = 40
    alpha: float = 0.005
    beta: float = 0.005
    second_culprit_share: float = 0.25  # the rest must be >= this share of the effect
    explain: bool = True


@dataclass
class Bisect:
    bisect_id: str
    detection_id: str
    scenario: str
    component: str
    repo: str
    branch: str
    good: str
    bad: str
    phase: str = "range"  # range, endpoints, search, explain, done
    commits: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    lo: int = 0
    hi: int = 0
    current: int = -1
    samples: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    requested: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    culprits: list[int] = field(default_factory=list)
    confidence: float = 1.0
    profiles: dict[str, dict[str, float]] = field(default_factory=dict)
    preloaded: dict[str, int] = field(default_factory=dict)  # samples known before requesting
    search_good: int = 0  # indices whose samples are the current search's endpoints
    search_bad: int = -1


@dataclass
class BisectBook:
    """All bisects of one scenario."""

    bisects: dict[str, Bisect] = field(default_factory=dict)
    by_detection: dict[str, str] = field(default_factory=dict)


def to_json(book: BisectBook) -> dict[str, Any]:
    return {"bisects": {k: dataclasses.asdict(v) for k, v in book.bisects.items()},
            "by_detection": book.by_detection}


def from_json(data: dict[str, Any] | None) -> BisectBook:
    if not data:
        return BisectBook()
    return BisectBook({k: Bisect(**v) for k, v in data["bisects"].items()},
                      dict(data["by_detection"]))


def decide(book: BisectBook, event: ev.Event,
           policy: BisectPolicy) -> tuple[BisectBook, list[ev.Event]]:
    """Apply one event; returns the new book and the events to emit.

    The book is copied only for events that concern a bisect: every monitoring
    run passes through here and most leave the book as it is.
    """
    if isinstance(event, ev.RegressionConfirmed):
        book = copy.deepcopy(book)
        return book, _start(book, event)
    if isinstance(event, ev.CommitRangeListed) and event.correlation_id in book.bisects:
        book = copy.deepcopy(book)
        return book, _on_range(book.bisects[event.correlation_id], event, policy)
    if isinstance(event, (ev.RunCompleted, ev.RunFailed)) and \
            event.purpose in ("bisect", "explain") and event.correlation_id in book.bisects:
        current = book.bisects[event.correlation_id]
        if current.phase == "done" or event.run_id in current.run_ids:
            return book, []
        book = copy.deepcopy(book)
        b = book.bisects[event.correlation_id]
        b.run_ids.append(event.run_id)
        _record(b, event)
        return book, _advance(b, policy)
    return book, []


def _start(book: BisectBook, found: ev.RegressionConfirmed) -> list[ev.Event]:
    if found.detection_id in book.by_detection:
        return []  # one bisect per detection, whichever component confirmed first
    bisect_id = ev.derived_id("bisect", found.detection_id)
    book.by_detection[found.detection_id] = bisect_id
    book.bisects[bisect_id] = Bisect(
        bisect_id=bisect_id, detection_id=found.detection_id, scenario=found.scenario,
        component=found.component, repo=found.repo, branch=found.branch,
        good=found.good_commit, bad=found.commit,
        # the confirmation's fresh runs of both ends are the endpoints' first samples
        samples={k: list(v) for k, v in ((found.good_commit, found.evidence_before),
                                         (found.commit, found.evidence_after)) if v})
    return [ev.CommitRangeRequested(scenario=found.scenario, repo=found.repo,
                                    good=found.good_commit, bad=found.commit,
                                    correlation_id=bisect_id, producer="ttfb-bisect")]


def _runs(b: Bisect, commit: str, count: int, purpose: str = "bisect",
          profile: bool = False) -> list[ev.Event]:
    b.requested[commit] = b.requested.get(commit, 0) + count
    return [ev.RunRequested(scenario=b.scenario, repo=b.repo, commit=commit, branch=b.branch,
                            runs=1, purpose=purpose, correlation_id=b.bisect_id,  # type: ignore[arg-type]
                            profile=profile, arm=ev.Arm(label=purpose),
                            producer="ttfb-bisect") for _ in range(count)]


def _on_range(b: Bisect, listed: ev.CommitRangeListed, policy: BisectPolicy) -> list[ev.Event]:
    if b.phase != "range":
        return []
    if listed.error or len(listed.commits) < 2:
        b.phase = "done"
        return [_completed(b, error=listed.error or "empty commit range")]
    if len(listed.commits) - 1 > MAX_RANGE:
        b.phase = "done"
        return [_completed(b, error=f"range of {len(listed.commits) - 1} commits exceeds "
                                    f"{MAX_RANGE}; narrow it with a closer good commit")]
    b.commits, b.authors, b.subjects = listed.commits, listed.authors, listed.subjects
    b.lo, b.hi, b.phase = 0, len(b.commits) - 1, "endpoints"
    # the agent lists full shas: carry over samples known under the names it was given
    for given, full in ((b.good, b.commits[0]), (b.bad, b.commits[-1])):
        if given != full and given in b.samples:
            b.samples[full] = b.samples.pop(given)
    b.preloaded = {c: len(b.samples.get(c, [])) for c in (b.commits[0], b.commits[-1])}
    missing = [max(0, policy.endpoint_runs - b.preloaded[c])
               for c in (b.commits[0], b.commits[-1])]
    if not any(missing):
        return _advance(b, policy)
    out: list[ev.Event] = []
    for i in range(max(missing)):  # interleaved endpoints
        out += _runs(b, b.commits[0], 1) if i < missing[0] else []
        out += _runs(b, b.commits[-1], 1) if i < missing[1] else []
    return out


def _record(b: Bisect, event: ev.RunCompleted | ev.RunFailed) -> None:
    if isinstance(event, ev.RunFailed):
        b.failed[event.commit] = b.failed.get(event.commit, 0) + 1
        return
    if event.purpose == "explain":
        b.profiles[event.commit] = dict(event.profile.get("cumulative_ms", {}))
        return
    value = event.ttfb_ms if b.component == "ttfb" else event.components.get(b.component)  # type: ignore[call-overload]
    if value is not None:
        b.samples.setdefault(event.commit, []).append(float(value))


def _received(b: Bisect, commit: str) -> int:
    return len(b.samples.get(commit, [])) + b.failed.get(commit, 0)


def _advance(b: Bisect, policy: BisectPolicy) -> list[ev.Event]:
    if b.phase == "endpoints":
        ends = (b.commits[0], b.commits[-1])
        if any(_received(b, c) < b.preloaded.get(c, 0) + b.requested.get(c, 0) for c in ends):
            return []
        b.phase = "search"
        b.search_good, b.search_bad = 0, len(b.commits) - 1
        return _next_step(b, policy)
    if b.phase == "search":
        commit = b.commits[b.current]
        if _received(b, commit) < b.requested.get(commit, 0):
            return []
        return _judge(b, policy)
    if b.phase == "explain":
        parent, culprit = b.commits[b.culprits[0] - 1], b.commits[b.culprits[0]]
        if parent in b.profiles and culprit in b.profiles:
            b.phase = "done"
            return [_completed(b)]
    return []


def _endpoints(b: Bisect) -> Endpoints:
    """The current search's hypotheses; classified commits add their runs to a side."""
    good = list(b.samples.get(b.commits[b.search_good], []))
    bad = list(b.samples.get(b.commits[b.search_bad], []))
    for step in b.steps:
        index = b.commits.index(step["commit"])
        # only clear SPRT decisions join a side: a truncated guess could be wrong
        # and would bias every later step
        if b.search_good < index < b.search_bad and step["decision"] in ("good", "bad") \
                and step.get("clear", True):
            (good if step["decision"] == "good" else bad).extend(b.samples[step["commit"]])
    return Endpoints.from_samples(good, bad)


def _max_runs(ends: Endpoints, policy: BisectPolicy) -> int:
    """Runs after which a step decides by the likelier side.

    Enough that a truncated decision errs less than 1 % of the time: with the
    hypotheses d standard deviations apart, n >= (2 * 2.576 / d)^2.
    """
    needed = math.ceil((2 * 2.576 / max(ends.separation, 1e-6)) ** 2)
    return int(min(policy.max_runs_cap, max(policy.max_runs_per_step, needed)))


def _next_step(b: Bisect, policy: BisectPolicy) -> list[ev.Event]:
    open_ = [i for i in range(b.lo + 1, b.hi) if b.commits[i] not in b.skipped]
    if not open_:
        return _found(b, policy)
    middle = (b.lo + b.hi) / 2
    b.current = min(open_, key=lambda i: (abs(i - middle), i))
    return _runs(b, b.commits[b.current], policy.batch)


def _judge(b: Bisect, policy: BisectPolicy) -> list[ev.Event]:
    commit = b.commits[b.current]
    if b.failed.get(commit, 0) >= policy.batch and not b.samples.get(commit):
        b.skipped.append(commit)
        b.steps.append({"commit": commit, "runs": _received(b, commit), "decision": "skipped",
                        "mean_ms": 0.0})
        return _next_step(b, policy)
    try:
        ends = _endpoints(b)
        verdict = classify(b.samples.get(commit, []), ends, policy.alpha, policy.beta,
                           _max_runs(ends, policy))
    except ValueError:  # endpoints failed: no baseline to compare against
        b.phase = "done"
        return [_completed(b, error="endpoint runs failed; cannot bisect")]
    if verdict.decision == "undecided":
        return _runs(b, commit, policy.batch)
    values = b.samples[commit]
    b.steps.append({"commit": commit, "runs": _received(b, commit),
                    "decision": verdict.decision, "mean_ms": sum(values) / len(values),
                    "clear": verdict.runs < _max_runs(ends, policy)})
    b.confidence *= verdict.confidence
    if verdict.decision == "bad":
        b.hi = b.current
    else:
        b.lo = b.current
    return _next_step(b, policy)


def _second_search(b: Bisect, policy: BisectPolicy) -> tuple[int, int] | None:
    """Endpoints of a search for a second, separable culprit, if one remains."""
    first, last = b.culprits[0], len(b.commits) - 1
    total = compare(b.samples[b.commits[0]], b.samples[b.commits[last]]).delta_log
    if not total:
        return None
    sides = [(0, b.lo), (first, last)]  # left: good..last like-good; right: culprit..bad
    for good, bad in sides:
        g, k = b.samples.get(b.commits[good]), b.samples.get(b.commits[bad])
        if good == bad or not g or not k or len(g) < 2 or len(k) < 2:
            continue
        rest = compare(g, k)
        if rest.p_value < policy.alpha and rest.delta_log / total >= policy.second_culprit_share:
            return good, bad
    return None


def _found(b: Bisect, policy: BisectPolicy) -> list[ev.Event]:
    b.culprits.append(b.hi)
    if len(b.culprits) == 1:
        second = _second_search(b, policy)
        if second is not None:  # a second commit adds a separable part of the regression
            b.search_good, b.search_bad = second
            b.lo, b.hi = second
            return _next_step(b, policy)
    if policy.explain and b.culprits[0] > 0:
        b.phase = "explain"
        first = b.culprits[0]
        return _runs(b, b.commits[first - 1], 1, "explain", True) + \
            _runs(b, b.commits[first], 1, "explain", True)
    b.phase = "done"
    return [_completed(b)]


def grown(good: dict[str, float], bad: dict[str, float], top: int = 10) -> list[dict[str, Any]]:
    """Profile entries whose cumulative time grew most from good to bad."""
    deltas: list[dict[str, Any]] = [
        {"name": name, "good_ms": round(good.get(name, 0.0), 3), "bad_ms": round(ms, 3),
         "delta_ms": round(ms - good.get(name, 0.0), 3)} for name, ms in bad.items()]
    deltas.sort(key=lambda d: -d["delta_ms"])
    return [d for d in deltas[:top] if d["delta_ms"] > 0]


def attributed_alert(done: ev.BisectCompleted, dashboard_url: str) -> ev.Alert:
    """The alert of a confirmed regression, updated with its culprit."""
    return ev.Alert(
        alert_id=f"{done.detection_id}:{done.component}", kind="regression",
        scenario=done.scenario, component=done.component, commit=done.bad,
        effect_ms=done.effect_ms, effect_pct=done.effect_pct, culprit=done.culprit,
        author=done.author, subject=done.subject, status="attributed",
        link=f"{dashboard_url}/regressions?detection={done.detection_id}",
        producer="ttfb-bisect")


def _completed(b: Bisect, error: str = "") -> ev.BisectCompleted:
    good, bad = b.samples.get(b.commits[0], []) if b.commits else [], \
        b.samples.get(b.commits[-1], []) if b.commits else []
    effect = compare(good, bad) if len(good) >= 2 and len(bad) >= 2 else None
    culprits = [b.commits[i] for i in b.culprits]
    if len(culprits) > 1:  # the larger part first
        parts = []
        for n, i in enumerate(b.culprits):
            before = b.commits[0] if n == 0 else b.commits[b.culprits[n - 1]]
            parts.append((compare(b.samples[before], b.samples[b.commits[i]]).delta_log, i))
        culprits = [b.commits[i] for _, i in sorted(parts, reverse=True)]
    first = b.commits.index(culprits[0]) if culprits else -1
    explanation = []
    if len(b.culprits) and b.culprits[0] > 0:
        parent, culprit = b.commits[b.culprits[0] - 1], b.commits[b.culprits[0]]
        explanation = grown(b.profiles.get(parent, {}), b.profiles.get(culprit, {}))
    return ev.BisectCompleted(
        bisect_id=b.bisect_id, detection_id=b.detection_id, scenario=b.scenario,
        component=b.component, good=b.good, bad=b.bad, culprit=culprits[0] if culprits else "",
        culprits=culprits, author=b.authors[first] if first >= 0 else "",
        subject=b.subjects[first] if first >= 0 else "",
        effect_ms=effect.effect_ms if effect else 0.0,
        effect_pct=effect.effect_pct if effect else 0.0,
        confidence=round(b.confidence, 6) if culprits else 0.0,
        steps=[ev.BisectStep(**{k: v for k, v in s.items() if k != "clear"}) for s in b.steps],
        runs_spent=sum(b.requested.values()), error=error, explanation=explanation,
        producer="ttfb-bisect")
