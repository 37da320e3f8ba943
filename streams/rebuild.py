"""Rebuild the decision state from the store's event log, without a broker.

The embedded broker keeps nothing on disk, so a lab that stops (cleanly or
by ``kill -9``) loses its Faust table and every command still on the bus. On
start, the streams worker folds every stored event of the fold's topics, in
the order they occurred, through the same ``fold_event`` the live stream
uses. Because every output's id is derived from its input's, the replay
re-derives the very commands the lost lab had sent: those whose answers are
not in the store (runs that never came, a range never listed, a calibration
never answered) and any other output the store never received are emitted
again, and the store, the agents and the folds drop whatever turns out to be
a duplicate. A start takes the recorded outcome of each commit test that
found nothing instead of testing again (``streams.detection.recorded``),
and starts from the newest checkpoint of the state it can trust, folding only
the log after it (``streams.checkpoint``); ``ttfb replay`` folds the whole log
and tests every commit by today's rules.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from streams import checkpoint
from streams.bisect import BisectBook, BisectPolicy
from streams.detection import Policy, ScenarioState
from streams.detection.recorded import RECORDED, Records
from streams.fold import NOT_FOLDED_TYPES, fold_event
from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.store import Store
from ttfb.store.rows import ts

log = logging.getLogger(__name__)

FOLDED_TOPICS = ("measurements", "detections", "bisect", "calibration")
PAGE = 50_000  # ~40 MB of payloads a page
# the newest outputs a replay keeps, to send again what a lost lab never
# delivered: those it lost were its last; older ones are taken as delivered.
# Every output kept made a year's replay hold millions of events in memory
KEEP_OUTPUTS = 100_000
# how far a rebuild reads ahead for the tests' outcomes (``replay``)
AHEAD = 10_000
# a rebuild's reads share one embedded session this long at most (opening
# one costs ~0.1 s, a start makes a dozen queries, a replay a page each); it
# is given up between two reads as soon as another process waits for the store
HOLD_S = 30.0
# how long before the input that made an output its answer may have
# occurred, by its host's clock (``answers_since``)
ANSWERS_MARGIN = timedelta(days=1)


@dataclass
class Rebuilt:
    states: dict[str, tuple[ScenarioState, BisectBook]] = field(default_factory=dict)
    # id -> output, in order: the newest ``keep`` of them (``replay``)
    outputs: OrderedDict[str, ev.Event] = field(default_factory=OrderedDict)
    events: int = 0
    seconds: float = 0.0
    produced: int = 0  # every output, kept or not
    recorded: int = 0  # commit tests taken from their records, not made again
    since: checkpoint.Position | None = None  # the checkpoint it started from
    # output id -> when the input that made it occurred (its answers came
    # after that): bounds the store's scans for them (``unanswered``)
    made_at: dict[str, datetime] = field(default_factory=dict)
    # the state where ``replay`` was asked to capture it: the position of the
    # last event read, each scenario's ``pack_state``, the ids of the outputs
    captured: tuple[checkpoint.Position, dict[str, str], set[str]] | None = None


def replay(events: Iterable[ev.Event], policy: Policy,
           bisect_policy: BisectPolicy | None = None,
           keep: int | None = KEEP_OUTPUTS,
           kept: Callable[[ev.Event], bool] | None = None,
           records: Records | None = None, start: checkpoint.Checkpoint | None = None,
           capture_after: datetime | None = None) -> Rebuilt:
    """Fold ``events`` in order from empty states (or ``start``'s, with its
    outputs still unanswered); keep the newest ``keep`` outputs (None: every
    one), of those ``kept`` says (None: all). With ``records``, the tests'
    outcomes among ``events`` (``CommitTested``, read ``AHEAD`` events ahead)
    stand for the tests that found no change (``streams.detection.recorded``).
    With ``capture_after``, the state as it was before the first event that
    occurred after that moment (or at the end) is ``captured``. ``seconds``
    is the time spent folding: reading a streamed log is not in it."""
    bisect_policy = bisect_policy or BisectPolicy()
    out = Rebuilt()
    outputs = out.outputs
    if start is not None:
        out.states, out.since = dict(start.states), start.at
        outputs.update((o.event_id, o) for o in start.pending)
        out.made_at.update(start.made_at)
    last: ev.Event | None = None
    token = RECORDED.set(records)
    try:
        # millions of small objects stay alive for the whole fold, and the
        # collector's passes over them found nothing to free (a quarter of the
        # time): the process's collector waits until the fold is done
        with collector_paused():
            states, skipped = out.states, (ev.ComponentMeasured, ev.CommitTested)
            for event in events if records is None else read_ahead(events, records, AHEAD):
                if capture_after is not None and event.occurred_at > capture_after:
                    out.captured, capture_after = _capture(out, last), None
                last = event
                scenario: str = getattr(event, "scenario", "")  # (a str where there is one)
                if not scenario or isinstance(event, skipped):
                    continue
                started = time.perf_counter()
                if records is not None:
                    records.folding = event.event_id
                detector, book = states.get(scenario) or (ScenarioState(), BisectBook())
                detector, book, produced = fold_event(event, detector, book, policy, bisect_policy)
                states[scenario] = (detector, book)
                out.events += 1
                out.produced += len(produced)
                for item in produced:
                    if kept is None or kept(item):
                        outputs[item.event_id] = item
                        out.made_at.setdefault(item.event_id, event.occurred_at)
                while keep is not None and len(outputs) > keep:
                    out.made_at.pop(outputs.popitem(last=False)[0], None)
                out.seconds += time.perf_counter() - started
            if capture_after is not None:
                out.captured = _capture(out, last)
            out.recorded = records.taken if records is not None else 0
    finally:
        RECORDED.reset(token)
    return out


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The process's garbage collector paused within, running after only if
    it ran before (a pause inside a pause keeps it paused)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _capture(out: Rebuilt, last: ev.Event | None) -> tuple[checkpoint.Position, dict[str, str],
                                                         set[str]] | None:
    """The state so far, written out (the fold goes on changing it in place)."""
    if last is None:
        return None
    return (checkpoint.position_of(last),
            {s: checkpoint.pack_state(d, b) for s, (d, b) in out.states.items()},
            set(out.outputs))


def read_ahead(events: Iterable[ev.Event], records: Records,
               ahead: int) -> Iterator[ev.Event]:
    """``events`` less the tests' outcomes, which go to ``records``, each as
    soon as it is within ``ahead`` events of the one being folded: a commit's
    record comes after the run whose folding made it (a few events later in
    a busy lab)."""
    waiting: deque[ev.Event] = deque()
    for event in events:
        if isinstance(event, ev.CommitTested):
            records.add(event)
            continue
        waiting.append(event)
        if len(waiting) > ahead:
            yield waiting.popleft()
    yield from waiting


def open_for_rebuild(settings: Settings) -> Store:
    """The store as a rebuild or a replay reads it (``HOLD_S``); close it after."""
    from ttfb.store import open_store

    return open_store(settings, hold_s=HOLD_S)


def folded_topics(settings: Settings) -> list[str]:
    """The topics whose events the folds read, as this lab names them."""
    return [settings.topic(name) for name in FOLDED_TOPICS]


def stored_events(store: Store, settings: Settings, records: bool = False,
                  after: checkpoint.Position | None = None) -> Iterator[ev.Event]:
    """The fold's input events in the store, in the order they occurred (those
    after ``after``); ``records``: the tests' outcomes (``CommitTested``) among
    them. A page is decoded whole before its events go on: the fold that takes
    them ran a fifth faster than with each decoded as it was asked for."""
    for page in _payload_pages(store, settings, records, after):
        yield from _decoded(page)


def _decoded(page: list[tuple[str, bytes]]) -> list[ev.Event]:
    """A page's events, decoded with the collector paused: a page makes
    hundreds of thousands of objects, none in a cycle, and each pass it set
    off went over the whole heap (a lab's states) for nothing."""
    with collector_paused():
        return [event for event in map(_readable, page) if event is not None]


def _readable(item: tuple[str, bytes]) -> ev.Event | None:
    try:
        return ev.decode(item[1])
    except ev.EventRejected as exc:  # stored by an older build: skip, say so
        log.warning("rebuild: stored event %s not readable: %s", item[0], exc)
        return None


def stored_payloads(store: Store, settings: Settings, records: bool = False,
                    after: checkpoint.Position | None = None) -> Iterator[tuple[str, bytes]]:
    """(event id, the bytes as stored) of the fold's input events (and, with
    ``records``, the tests' outcomes), in the order they occurred, those after
    ``after`` (a checkpoint's position)."""
    for page in _payload_pages(store, settings, records, after):
        yield from page


def _payload_pages(store: Store, settings: Settings, records: bool,
                   after: checkpoint.Position | None) -> Iterator[list[tuple[str, bytes]]]:
    """``stored_payloads`` a page at a time: about ``PAGE`` events, each page
    one short query (the store is free for others between pages). The pages'
    bounds are found first, in one pass over the log's keys, so that each
    page reads its own stretch of the log alone (a page asked only for "the
    next ``PAGE`` after the last" read and sorted the whole rest of the log:
    a year's log read in time that grew with its square); whatever was
    stored after that pass is read a page at a time."""
    skip = [t for t in NOT_FOLDED_TYPES if not (records and t == "CommitTested")]
    # records on the topic of their own, and, as earlier builds sent them, on detections
    topics = folded_topics(settings) + ([settings.topic("records")] if records else [])
    which = {"t": topics, "skip": skip, "n": PAGE}
    of_log = (f" FROM {store.db}.events FINAL WHERE topic IN {{t:Array(String)}}"
              " AND type NOT IN {skip:Array(String)}"
              # the first bound alone lets the sorting key skip what came before
              " AND occurred_at >= {at:DateTime64(6, 'UTC')}"
              " AND (occurred_at, event_id) > ({at:DateTime64(6, 'UTC')}, {id:String})")
    after = after or ("1970-01-01 00:00:00.000000", "")
    keys = store.strings(
        "SELECT toString(occurred_at), event_id FROM (SELECT occurred_at, event_id,"
        " row_number() OVER (ORDER BY occurred_at, event_id) AS n" + of_log + ")"
        " WHERE n % {n:UInt32} = 0 ORDER BY occurred_at, event_id",
        {**which, "at": after[0], "id": after[1]})
    bounds = [(keys[i].decode(), keys[i + 1].decode()) for i in range(0, len(keys) - 1, 2)]
    for until in [*bounds, None]:
        while True:
            values = store.strings(
                "SELECT toString(occurred_at), event_id, payload" + of_log
                + ("" if until is None else
                   " AND occurred_at <= {to:DateTime64(6, 'UTC')}"
                   " AND (occurred_at, event_id) <= ({to:DateTime64(6, 'UTC')}, {to_id:String})")
                + " ORDER BY occurred_at, event_id LIMIT {n:UInt32}",
                {**which, "at": after[0], "id": after[1],
                 **({} if until is None else {"to": until[0], "to_id": until[1]})})
            yield [(values[i + 1].decode(), values[i + 2])
                   for i in range(0, len(values) - 2, 3)]
            if len(values) < 3 * PAGE:
                break
            after = (values[-3].decode(), values[-2].decode())
            if after == until:
                break
        if until is None:
            return
        after = until


def answers_since(rebuilt: Rebuilt) -> datetime | None:
    """How far back the store's answers to ``rebuilt``'s outputs can lie:
    ``ANSWERS_MARGIN`` before the earliest input that made one (a host's
    clock may lag the worker's); None where an output's input is not known
    (a checkpoint written before they were kept)."""
    if not rebuilt.outputs or any(i not in rebuilt.made_at for i in rebuilt.outputs):
        return None
    return min(rebuilt.made_at[i] for i in rebuilt.outputs) - ANSWERS_MARGIN


def unanswered(store: Store, outputs: dict[str, ev.Event],
               since: datetime | None = None) -> list[ev.Event]:
    """The replay's outputs a lost lab may never have delivered: commands the
    store holds no answer to, and anything else the store never received.
    ``since`` (``answers_since``): the log before it is not read (a start
    from an hour-old checkpoint reads about its last day, not a year of it)."""
    if not outputs:
        return []
    calibrated_ids = [ev.derived_id(o.event_id, "0") for o in outputs.values()
                      if isinstance(o, ev.CalibrationRequested)]
    after = " AND occurred_at >= {since:DateTime64(6, 'UTC')}" if since is not None else ""
    bound = {"since": ts(since)} if since is not None else {}
    # the outputs and the calibrations' answers, in one pass over the log
    stored = {r["event_id"] for r in store.query_in(
        f"SELECT event_id FROM {store.db}.events WHERE event_id IN {{ids:Array(String)}}"
        + after, "ids", [*outputs, *calibrated_ids], bound)}
    requests = [o.request_id for o in outputs.values()
                if isinstance(o, (ev.RunRequested, ev.CommitRangeRequested))]
    answered = {r["request_id"]: int(r["n"]) for r in store.query_in(
        f"SELECT request_id, count() AS n FROM {store.db}.runs FINAL"
        " WHERE request_id IN {ids:Array(String)}" + after + " GROUP BY request_id",
        "ids", requests, bound)}
    listed = {json.loads(r["payload"]).get("request_id") for r in store.query_in(
        f"SELECT payload FROM {store.db}.events WHERE type = 'CommitRangeListed'"
        " AND JSONExtractString(payload, 'request_id') IN {ids:Array(String)}" + after,
        "ids", requests, bound)}
    told = _told(store, list(outputs.values()))
    again: list[ev.Event] = []
    for output in outputs.values():
        if isinstance(output, ev.RunRequested):
            missing = answered.get(output.request_id, 0) < output.runs
        elif isinstance(output, ev.CommitRangeRequested):
            missing = output.request_id not in listed
        elif isinstance(output, ev.CalibrationRequested):
            missing = ev.derived_id(output.event_id, "0") not in stored
        else:
            missing = output.event_id not in stored and _said(output) not in told
        if missing:
            again.append(output)
    return again


# what a person is told, keyed by what it is about rather than by the event
# that said it: a build whose rules say the same thing at another moment (a
# clear component's verdict at the first look, say) derives another id for it
_FINDINGS = (ev.CandidateDetected, ev.RegressionConfirmed, ev.ImprovementConfirmed,
             ev.DetectionDismissed)


def _said(output: ev.Event) -> tuple[str, ...] | None:
    if isinstance(output, _FINDINGS):
        return (output.type, output.detection_id, output.component)
    if isinstance(output, ev.Alert):  # the alert of a verdict, then of its bisect
        return ("Alert", output.alert_id, output.status)
    if isinstance(output, ev.BisectCompleted):
        return ("BisectCompleted", output.bisect_id)
    return None


def _told(store: Store, outputs: list[ev.Event]) -> set[tuple[str, ...]]:
    """Of ``outputs``' findings, alerts and bisect results, those the store
    holds an event of (``_said``), whatever that event's id: a lab started
    on a newer build does not say again what the lost one said."""
    detections = list({o.detection_id for o in outputs if isinstance(o, _FINDINGS)})
    alerts = [o.alert_id for o in outputs if isinstance(o, ev.Alert)]
    bisects = [o.bisect_id for o in outputs if isinstance(o, ev.BisectCompleted)]
    told: set[tuple[str, ...]] = {
        (r["type"], r["detection_id"], r["component"]) for r in store.query_in(
            f"SELECT DISTINCT type, detection_id, component FROM {store.db}.detections"
            " WHERE detection_id IN {ids:Array(String)}", "ids", detections)}
    told |= {("Alert", r["alert_id"], r["status"]) for r in store.query_in(
        f"SELECT DISTINCT alert_id, status FROM {store.db}.alerts"
        " WHERE alert_id IN {ids:Array(String)}", "ids", alerts)}
    told |= {("BisectCompleted", r["bisect_id"]) for r in store.query_in(
        f"SELECT DISTINCT bisect_id FROM {store.db}.bisects"
        " WHERE bisect_id IN {ids:Array(String)}", "ids", bisects)}
    return told


def rebuild_from_store(store: Store, settings: Settings, policy: Policy,
                       lag_s: float = checkpoint.LAG_S) -> tuple[Rebuilt, list[ev.Event]]:
    """The decision state of every scenario, and the outputs to send again:
    the state the lab's own tests left (their recorded outcomes taken, not
    tested again), from the newest checkpoint it can trust, where ``ttfb
    replay`` tests every commit by today's rules. A checkpoint of the state
    ``lag_s`` behind now is written on the way (``streams.checkpoint``)."""
    rules = checkpoint.rules_id(policy, BisectPolicy())
    topics = folded_topics(settings)
    reading_from = checkpoint.store_now(store)
    start = checkpoint.latest(store, rules, topics)
    rebuilt = replay(stored_events(store, settings, records=True,
                                   after=start.at if start else None),
                     policy, records=Records(), start=start,
                     capture_after=checkpoint.cutoff(lag_s=lag_s))
    again = unanswered(store, rebuilt.outputs, answers_since(rebuilt))
    if rebuilt.captured is not None:
        at, states, made = rebuilt.captured
        checkpoint.write(store, rules, at, states, [o for o in again if o.event_id in made],
                         reading_from, start, rebuilt.made_at)
    return rebuilt, again
