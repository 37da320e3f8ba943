"""Checkpoints of the decision state, so that a lab's start folds only the
log's tail.

An embedded lab rebuilds its decision state from the store on every start
(``streams.rebuild``), and the fold takes about 100 µs an event: a year of a
busy lab's log would take hours. A checkpoint is every scenario's state as
the fold of the log left it at one position (the ``occurred_at`` and id of
the last event folded), with the outputs made before it that were still
unanswered when it was written, under the fingerprint of the rules that
made it (the folds' source and their policies). A start takes the newest
checkpoint it can trust and folds only the events after its position; the
state is the one a fold of the whole log leaves (``tests/integration``
compares them). One it cannot trust is passed over, and an older one or the
whole log is folded instead:

- another build's or other settings' (``rules_id`` differs);
- one not written whole (each row carries how many states it has);
- one whose log changed behind it: an event at or before its position,
  stored after its fold began to read the log (the ``stored_at`` of
  ``events``), that the store did not already hold.

Checkpoints are written ``checkpoint_lag_s`` (``LAG_S``) behind now (a
late event is rare there), by each start and by the worker every
``checkpoint_every_s``; the newest ``KEEP`` are kept, and the one the last
fold began from. Raw runs past the retention age leave the log
(``ttfb.store.retention``), so past that age a checkpoint holds what no
fold of the log can give back. ``ttfb replay`` folds the whole log by
today's rules and takes none.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic_core import to_json as to_json_bytes

from streams.bisect import BisectBook, BisectPolicy
from streams.bisect import from_json as bisect_from_json
from streams.bisect import to_json as bisect_to_json
from streams.detection import Policy, ScenarioState, from_json, to_json
from streams.fold import NOT_FOLDED_TYPES
from ttfb import events as ev
from ttfb.store import Store
from ttfb.store.rows import ts

log = logging.getLogger(__name__)

FORMAT = 1  # of a checkpoint's rows; part of the rules' fingerprint
LAG_S = 300.0  # a checkpoint's position is this far behind now, by default
KEEP = 3  # checkpoints kept, the newest
# where the fold's rules live: a change to any of these files is another build
_RULES_PACKAGES = ("streams/detection", "streams/bisect", "ttfb/stats", "ttfb/events")
_RULES_FILES = ("streams/fold.py",)

Position = tuple[str, str]  # (occurred_at as the store writes it, event id)


@dataclass
class Checkpoint:
    at: Position
    written_at: str
    states: dict[str, tuple[ScenarioState, BisectBook]] = field(default_factory=dict)
    pending: list[ev.Event] = field(default_factory=list)  # outputs unanswered when written
    made_at: dict[str, datetime] = field(default_factory=dict)  # when each one's input occurred


def rules_id(policy: Policy, bisect_policy: BisectPolicy) -> str:
    """A fingerprint of what decides a fold's outcome: the source of the
    folds, of their statistics and of the events, and both policies."""
    digest = hashlib.sha256(f"{FORMAT}|{policy!r}|{bisect_policy!r}".encode())
    for name, source in _rules_sources():
        digest.update(name)
        digest.update(source)
    return digest.hexdigest()[:32]


@functools.cache
def _rules_sources() -> tuple[tuple[bytes, bytes], ...]:
    """(path, content) of the rules' source files, read once a process: the
    code this process runs, not a newer copy installed beside it since."""
    root = Path(__file__).resolve().parents[1]
    files = [p for pkg in _RULES_PACKAGES for p in sorted((root / pkg).glob("*.py"))]
    return tuple((path.relative_to(root).as_posix().encode(), path.read_bytes())
                 for path in files + [root / f for f in _RULES_FILES])


def position_of(event: ev.Event) -> Position:
    """An event's place in the store's order (``toString(occurred_at)``)."""
    return ts(event.occurred_at), event.event_id


def cutoff(lag_s: float = LAG_S, now: datetime | None = None) -> datetime:
    """The newest moment a checkpoint written now may be of."""
    return (now or datetime.now(UTC)) - timedelta(seconds=lag_s)


def pack_state(detector: ScenarioState, book: BisectBook) -> str:
    """A scenario's state as JSON (the worker's table compresses it)."""
    return state_bytes(detector, book).decode()


def state_bytes(detector: ScenarioState, book: BisectBook) -> bytes:
    """``pack_state``'s JSON as UTF-8 bytes: written by pydantic-core, a
    seventh of the standard library's time for a worker that writes each
    changed scenario's state with every batch (non-finite numbers as the
    standard library writes and reads them)."""
    return to_json_bytes({"detector": to_json(detector), "bisect": bisect_to_json(book)},
                         inf_nan_mode="constants")


def unpack_state(data: dict[str, Any]) -> tuple[ScenarioState, BisectBook]:
    return from_json(data.get("detector")), bisect_from_json(data.get("bisect"))


def latest(store: Store, rules: str, topics: list[str]) -> Checkpoint | None:
    """The newest checkpoint of ``rules`` that was written whole and whose
    log did not change behind it; None when there is none."""
    db = store.db
    candidates = store.query(
        f"SELECT toString(at) AS at, at_id, toString(written_at) AS written_at,"
        f" any(scenarios) AS scenarios, count() AS rows FROM {db}.checkpoints FINAL"
        " WHERE rules = {r:String} GROUP BY at, at_id, written_at"
        " ORDER BY at DESC, at_id DESC, written_at DESC", {"r": rules})
    for row in candidates:
        if int(row["rows"]) != int(row["scenarios"]) + 1:
            log.warning("checkpoint at %s not written whole: not taken", row["at"])
            continue
        at: Position = (row["at"], row["at_id"])
        late = _changed_behind(store, at, row["written_at"], topics)
        if late:
            log.warning("checkpoint at %s: %d event(s) of its past (%s) were stored after its "
                        "fold read the log: not taken", row["at"], len(late),
                        ", ".join(sorted(set(late.values()))))
            continue
        return _read(store, rules, at, row["written_at"])
    return None


def _changed_behind(store: Store, at: Position, written_at: str,
                    topics: list[str]) -> dict[str, str]:
    """The events (id: type) at or before ``at`` the store took after
    ``written_at`` that it did not hold then (a copy of one it held is not a
    change), up to 1,000 of them; of the types the fold reads (a run's
    per-phase measurements reach the store with the run, seconds after they
    occurred, and are not read)."""
    db = store.db
    params = {"t": topics, "skip": list(NOT_FOLDED_TYPES), "at": at[0], "id": at[1],
              "w": written_at}
    late = {r["event_id"]: r["type"] for r in store.query(
        f"SELECT DISTINCT event_id, type FROM {db}.events WHERE topic IN {{t:Array(String)}}"
        " AND type NOT IN {skip:Array(String)} AND occurred_at <= {at:DateTime64(6, 'UTC')}"
        " AND (occurred_at, event_id) <= ({at:DateTime64(6, 'UTC')}, {id:String})"
        " AND stored_at > {w:DateTime64(6, 'UTC')} LIMIT 1000", params)}
    if late:
        for r in store.query_in(
                f"SELECT DISTINCT event_id FROM {db}.events WHERE event_id IN"
                " {ids:Array(String)} AND stored_at <= {w:DateTime64(6, 'UTC')}",
                "ids", list(late), {"w": written_at}):
            late.pop(r["event_id"], None)
    return late


def _read(store: Store, rules: str, at: Position, written_at: str) -> Checkpoint:
    values = store.strings(
        f"SELECT scenario, state FROM {store.db}.checkpoints FINAL WHERE rules = {{r:String}}"
        " AND at = {at:DateTime64(6, 'UTC')} AND at_id = {id:String}"
        " AND written_at = {w:DateTime64(6, 'UTC')}",
        {"r": rules, "at": at[0], "id": at[1], "w": written_at})
    point = Checkpoint(at, written_at)
    for i in range(0, len(values) - 1, 2):
        scenario, data = values[i].decode(), json.loads(values[i + 1])
        if scenario:
            point.states[scenario] = unpack_state(data)
        else:  # the checkpoint's own row: what it had still to hear back about
            point.pending = [ev.decode(item.encode()) for item in data.get("pending", [])]
            point.made_at = {i: datetime.fromisoformat(t)
                             for i, t in data.get("made_at", {}).items()}
    return point


def store_now(store: Store) -> str:
    """The store's clock (the one ``stored_at`` is set by)."""
    return str(store.query("SELECT toString(now64(6)) AS now")[0]["now"])


def write(store: Store, rules: str, at: Position, states: dict[str, str],
          pending: list[ev.Event], written_at: str, start: Checkpoint | None = None,
          made_at: dict[str, datetime] | None = None) -> None:
    """Store a checkpoint (``states``: each scenario's ``pack_state``) in one
    insert, its own row last, and drop all but the newest ``KEEP`` and
    ``start``, the one its fold began from (the newest that could be trusted:
    newer ones whose log changed behind them do not push it out).
    ``written_at``: the store's time when the fold that made it began to
    read the log (``store_now``); an event stored after that, at or before
    ``at``, may not be in it. ``made_at``: when the input that made each
    pending output occurred (a later start's scan for their answers starts
    there)."""
    common = {"rules": rules, "at": at[0], "at_id": at[1], "scenarios": len(states),
              "written_at": written_at}
    rows: list[dict[str, Any]] = [{**common, "scenario": s, "state": state}
                                  for s, state in states.items()]
    rows.append({**common, "scenario": "", "state": json.dumps(
        {"pending": [ev.encode(o).decode() for o in pending],
         "made_at": {o.event_id: made_at[o.event_id].isoformat() for o in pending
                     if made_at and o.event_id in made_at}})})
    db = store.db
    with store.backend.transaction() as tx:
        tx.insert(f"{db}.checkpoints", rows)
        kept = tx.query(f"SELECT DISTINCT toString(written_at) AS w FROM {db}.checkpoints"
                        f" ORDER BY w DESC LIMIT {KEEP}")
        if len(kept) == KEEP:
            # the one the fold began from stays (without one, the oldest of
            # the newest KEEP stands in: the condition spares it anyway)
            spare = start.written_at if start is not None else kept[-1]["w"]
            tx.command(f"ALTER TABLE {db}.checkpoints DELETE WHERE written_at < "
                       "{w:DateTime64(6, 'UTC')} AND written_at != {s:DateTime64(6, 'UTC')}"
                       " SETTINGS mutations_sync = 2", {"w": kept[-1]["w"], "s": spare})
