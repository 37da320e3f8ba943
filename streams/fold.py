"""One event through both decision folds: the detection fold, then the
bisect fold, with output ids derived from the input's. The live stream
(``streams.decisions``) and the rebuild from the store (``streams.rebuild``)
both fold through this alone, so a replay reproduces the live decisions."""

from __future__ import annotations

from streams.bisect import BisectBook, BisectPolicy, attributed_alert
from streams.bisect import decide as decide_bisect
from streams.detection import Policy, ScenarioState, decide
from ttfb import events as ev

# inputs the folds never read: a run's per-phase measurements, agents'
# heartbeats, and what the folds themselves report (the live stream skips
# them undecoded, the rebuild does not load them)
NOT_FOLDED_TYPES = ("ComponentMeasured", "CommitTested", "BisectProgressed", "AgentHeartbeat")


def pin_ids(out: list[ev.Event], source: ev.Event) -> list[ev.Event]:
    """Ids of the outputs derived from the input's: if a crash makes the worker
    process an input again (its state was not yet in the changelog), it emits
    the very same events and commands, and the store and agents drop them."""
    pinned: list[ev.Event] = []
    for i, event in enumerate(out):
        update = {"event_id": ev.derived_id(source.event_id, str(i))}
        if isinstance(event, (ev.RunRequested, ev.CommitRangeRequested)):
            update["request_id"] = ev.derived_id(source.event_id, str(i), "request")
        elif isinstance(event, ev.CommitTested):
            update["caused_by"] = source.event_id
        # a recorded test's outcome taken again already has its pinned ids
        same = all(getattr(event, k) == v for k, v in update.items())
        pinned.append(event if same else event.model_copy(update=update))
    return pinned


def fold_event(event: ev.Event, detector: ScenarioState, book: BisectBook, policy: Policy,
               bisect_policy: BisectPolicy) -> tuple[ScenarioState, BisectBook, list[ev.Event]]:
    """One event through the detection and bisect folds; outputs with ids
    derived from the event's (the live stream and a rebuild use this alone)."""
    detector, out = decide(detector, event, policy, inplace=True)
    book, more = decide_bisect(book, event, bisect_policy)
    if more:
        out += more
        out += [attributed_alert(e, policy.dashboard_url) for e in more
                if isinstance(e, ev.BisectCompleted) and (e.culprit or not e.reproduced)]
    if not out:  # most events: nothing to say
        return detector, book, out
    if len(out) > 1:
        out.sort(key=_added_rank)  # stable: each rank keeps its order
    return detector, book, pin_ids(out, event)


# outputs the folds came to emit later go after the others, each group after
# the ones before it: every other output keeps the id it had before (an id is
# the input's and the output's place)
ADDED_LATER = ((ev.CommitTested, ev.BisectProgressed), (ev.ScenarioBroken,))


def _added_rank(event: ev.Event) -> int:
    return next((rank for rank, types in enumerate(ADDED_LATER, start=1)
                 if isinstance(event, types)), 0)
