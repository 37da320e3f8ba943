"""The bisect fold's entry: one event in, the new book and the events to
emit out."""

from __future__ import annotations

import copy

from streams.bisect.policy import BisectPolicy
from streams.bisect.search import conclude, judge
from streams.bisect.state import (
    Bisect,
    BisectBook,
    adopt,
    endpoint_block,
    promise,
    received,
    record,
    share_profile,
    waiting,
)
from streams.bisect.verdict import completed
from ttfb import events as ev


def decide(book: BisectBook, event: ev.Event,
           policy: BisectPolicy) -> tuple[BisectBook, list[ev.Event]]:
    """Apply one event; returns the new book and the events to emit.

    The book is copied only for events that concern a bisect: every monitoring
    run passes through here and most leave the book as it is.
    """
    if isinstance(event, (ev.RegressionConfirmed, ev.ImprovementConfirmed)):
        book = copy.deepcopy(book)
        return book, start_bisect(book, event, policy)
    if isinstance(event, ev.CommitRangeListed) and event.correlation_id in book.bisects:
        book = copy.deepcopy(book)
        b = book.bisects[event.correlation_id]
        return book, on_range(b, event, policy) + release_followers(book, b, policy)
    if isinstance(event, (ev.RunCompleted, ev.RunFailed)) and \
            event.purpose in ("bisect", "explain") and event.correlation_id in book.bisects:
        current = book.bisects[event.correlation_id]
        if current.phase == "done" or event.run_id in current.run_ids:
            return book, []
        book = copy.deepcopy(book)
        b = book.bisects[event.correlation_id]
        b.run_ids.append(event.run_id)
        record(b, event)
        if event.purpose == "bisect":
            for follower in followers(book, b):
                follower.run_ids.append(event.run_id)
                record(follower, event)
                if isinstance(event, ev.RunCompleted):
                    follower.adopted[event.commit] = follower.adopted.get(event.commit, 0) + 1
        shared: list[ev.Event] = []
        if event.purpose == "explain":  # the culprit's profiles serve its followers too
            for f in followers(book, b, released=True):
                f.run_ids.append(event.run_id)
                share_profile(f, b, event)
                shared += advance(f, policy) if f.phase == "explain" else []
        return book, relist(b, event) + advance(b, policy) + \
            release_followers(book, b, policy) + shared
    return book, []


def followers(book: BisectBook, leader: Bisect, released: bool = False) -> list[Bisect]:
    """The bisects waiting on ``leader``'s runs (``Bisect.follows``); with
    ``released``, those it let go on their own and not done yet."""
    return [f for f in book.bisects.values() if f.follows == leader.bisect_id
            and (f.phase not in ("follow", "done") if released else f.phase == "follow")]


def release_followers(book: BisectBook, leader: Bisect, policy: BisectPolicy) -> list[ev.Event]:
    """Once ``leader``'s search is over, each bisect that followed it starts
    on its range, with every run the leader made of it: where the change is
    one commit's, its own posterior is most of the way there. A leader
    without a range (its listing failed) leaves each to ask for its own."""
    if leader.phase not in ("explain", "done"):
        return []
    out: list[ev.Event] = []
    for f in followers(book, leader):
        if not leader.commits:
            f.phase = "range"
            out.append(range_request(f, f.good, f.bad))
            continue
        f.phase, f.block = "range", leader.block  # its own blocks come after the leader's
        promise(f, leader, policy.explain_runs)
        out += take_range(f, leader.commits, leader.authors, leader.subjects,
                          leader.affected, policy)
    return out


def start_bisect(book: BisectBook, found: ev.RegressionConfirmed | ev.ImprovementConfirmed,
                 policy: BisectPolicy) -> list[ev.Event]:
    """One bisect per confirmed component: a regression, or an improvement (worth
    attributing too: the change to copy, or one that was detected late).
    Another component of a change being bisected follows that bisect; one
    confirmed after that bisect's search ended starts from its runs. A
    change is its range on the same agents: a component confirmed by a
    detection of its own over the range another bisect searches (a
    follow-up: one its candidate did not name, confirmed on fresh runs)
    shares that bisect's runs too."""
    key = f"{found.detection_id}:{found.component}"
    if key in book.by_detection:
        return []  # a duplicate
    bisect_id = ev.derived_id("bisect", found.detection_id, found.component)
    book.by_detection[key] = bisect_id
    # another component of the same change is being bisected: its runs are
    # this one's too, so this one follows it instead of asking for its own
    leader = next((b.bisect_id for b in book.bisects.values()
                   if same_change(b, found) and not b.follows
                   and b.phase not in ("explain", "done")), "")
    book.bisects[bisect_id] = Bisect(
        bisect_id=bisect_id, detection_id=found.detection_id, scenario=found.scenario,
        component=found.component, repo=found.repo, branch=found.branch,
        direction=found.direction, hardware_class=found.hardware_class,
        max_runs=found.bisect_max_runs,
        good=found.good_commit, bad=found.commit,
        # the confirmation's fresh runs of both ends are the endpoints' first
        # samples, taken side by side: block 0
        samples={k: list(v) for k, v in ((found.good_commit, found.evidence_before),
                                         (found.commit, found.evidence_after)) if v},
        cells=[(k, 0, float(x)) for k, v in ((found.good_commit, found.evidence_before),
                                             (found.commit, found.evidence_after)) for x in v]
        + monitored_cells(found.monitored),
        follows=leader, phase="follow" if leader else "range",
        whole=found.whole())
    if leader:
        return []
    b = book.bisects[bisect_id]
    ended = next((e for e in book.bisects.values()
                  if same_change(e, found) and not e.follows and e.commits
                  and e.phase in ("explain", "done")), None)
    if ended is None:
        return [range_request(b, found.good_commit, found.commit)]
    b.follows, b.block = ended.bisect_id, ended.block  # its own blocks come after the runs taken
    adopt(b, ended)
    promise(b, ended, policy.explain_runs)
    return take_range(b, ended.commits, ended.authors, ended.subjects, ended.affected, policy)


def same_change(b: Bisect, found: ev.RegressionConfirmed | ev.ImprovementConfirmed) -> bool:
    """``b`` searches the range ``found`` names, on agents ``found``'s runs
    may go to (its class, or any where it names none: ``ttfb bisect``): its
    runs (each carries every component) are ``found``'s bisect's too,
    whichever detection confirmed it."""
    return (b.good, b.bad) == (found.good_commit, found.commit) \
        and found.hardware_class in ("", b.hardware_class)


def range_request(b: Bisect, good: str, bad: str) -> ev.CommitRangeRequested:
    """Ask an agent to list ``b``'s range, ``good`` to ``bad``."""
    return ev.CommitRangeRequested(scenario=b.scenario, repo=b.repo, good=good, bad=bad,
                                   correlation_id=b.bisect_id, producer="ttfb-bisect")


def monitored_cells(monitored: dict[str, list[float]]) -> list[tuple[str, int, float]]:
    """The monitoring runs of the range's commits as cells of the search's
    model, each commit's in a block of its own (negative: before the
    bisect's), since each was run at a time of its own: on a still machine
    they pool with the bisect's runs and the search starts near the culprit;
    on a wandering one their blocks' levels leave them little weight."""
    return [(commit, -1 - k, float(x)) for k, (commit, values) in enumerate(monitored.items())
            for x in values if x > 0]


def on_range(b: Bisect, listed: ev.CommitRangeListed, policy: BisectPolicy) -> list[ev.Event]:
    if b.phase != "range":  # the range listed again (``relist``): its hint alone counts
        take_hint(b, listed)
        return []
    if listed.error:
        b.phase = "done"
        return [completed(b, error=listed.error)]
    return take_range(b, listed.commits, listed.authors, listed.subjects, listed.affected,
                      policy)


def take_range(b: Bisect, commits: list[str], authors: list[str], subjects: list[str],
               affected: list[bool], policy: BisectPolicy) -> list[ev.Event]:
    """Start the search over ``commits`` (good first, bad last), as listed."""
    if len(commits) < 2:
        b.phase = "done"
        return [completed(b, error="empty commit range")]
    if len(commits) - 1 > ev.MAX_RANGE:
        b.phase = "done"
        return [completed(b, error=ev.range_too_long(len(commits) - 1))]
    b.commits, b.authors, b.subjects = list(commits), list(authors), list(subjects)
    if len(affected) == len(commits):
        b.affected = list(affected)
    b.lo, b.hi, b.phase = 0, len(b.commits) - 1, "endpoints"
    # the agent lists full shas: carry over runs known under the names it was
    # given (the endpoints' by their place, whatever names them; others' by sha)
    ends = {b.good: b.commits[0], b.bad: b.commits[-1]}
    for given, full in ends.items():
        if given != full and given in b.samples:
            b.samples[full] = b.samples.pop(given) + b.samples.get(full, [])
    b.cells = [(ends.get(c) or full_name(c, b.commits), k, v) for c, k, v in b.cells]
    # known before asking: the endpoints' (the confirmation's runs), and a
    # follower's every commit the bisect it followed ran
    b.preloaded = {c: received(b, c) for c in b.commits
                   if c in b.samples or c in b.failed or c in (b.commits[0], b.commits[-1])}
    missing = [max(0, policy.endpoint_runs - len(b.samples.get(c, [])))
               for c in (b.commits[0], b.commits[-1])]
    if not any(missing):
        return advance(b, policy)
    return endpoint_block(b, missing)


def relist(b: Bisect, event: ev.RunCompleted | ev.RunFailed) -> list[ev.Event]:
    """The range asked for again once the bisect's first run is back, when its
    listing came without the agent's hint (which commits change code the
    scenario imports: an agent learns that from a run of it, and a bisect
    started by hand may reach an agent that has not run the scenario yet).
    Listings have a lane of their own on an agent, so the hint is in before
    the search's first batches are placed."""
    if b.affected or b.relisted or not b.commits or not isinstance(event, ev.RunCompleted):
        return []
    b.relisted = True
    return [range_request(b, b.commits[0], b.commits[-1])]


def take_hint(b: Bisect, listed: ev.CommitRangeListed) -> None:
    """A listing asked for again (``relist``): its hint alone is taken, for
    the same commits; the search reads it from its next batch on."""
    if b.relisted and b.phase != "done" and not b.affected and not listed.error \
            and listed.commits == b.commits and len(listed.affected) == len(b.commits):
        b.affected = list(listed.affected)


def full_name(commit: str, listed: list[str]) -> str:
    """``commit`` as the range lists it: the listed sha it abbreviates (or
    that abbreviates it); itself if none (its runs then stay out of the
    search)."""
    if commit in listed or len(commit) < 7:
        return commit
    return next((c for c in listed if c.startswith(commit) or commit.startswith(c)), commit)


def advance(b: Bisect, policy: BisectPolicy) -> list[ev.Event]:
    if b.phase == "endpoints":
        if waiting(b, (b.commits[0], b.commits[-1])):
            return []
        b.phase = "search"
        b.search_good, b.search_bad = 0, len(b.commits) - 1
        return judge(b, policy)
    if b.phase == "search":
        if waiting(b, (b.commits[b.search_good], b.commits[b.current],
                        b.commits[b.search_bad])):
            return []
        return judge(b, policy)
    if b.phase == "residual":
        if waiting(b, (b.commits[0], b.commits[b.lo], b.commits[b.hi], b.commits[-1])):
            return []
        return conclude(b, policy)
    if b.phase == "reproduce":
        if waiting(b, (b.commits[0], b.commits[-1])):
            return []
        return conclude(b, policy)
    if b.phase == "explain":
        parent, culprit = b.commits[b.culprits[0] - 1], b.commits[b.culprits[0]]
        if all(b.explained.get(c, 0) >= policy.explain_runs for c in (parent, culprit)):
            b.phase = "done"
            return [completed(b)]
    return []
