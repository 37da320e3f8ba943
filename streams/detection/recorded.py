"""Tests' outcomes recorded in the store, taken instead of testing again.

Every commit's test says what it found (``CommitTested``: the candidates,
and the series that kept the commit in their window). A rebuild of a lab's
state from its store reads those records ahead of the runs they followed,
and a commit whose test found nothing needs no statistics: each series
takes the commit as the record says it did, the very state the test left.
A commit whose test found a change, or that no record answers (an earlier
build's, one beyond the read-ahead), is tested as the live fold tests it.
The live fold and ``ttfb replay`` (today's rules, every commit tested
again) set no records.
"""

from __future__ import annotations

from collections import OrderedDict
from contextvars import ContextVar

from ttfb import events as ev


class Records:
    """The recorded outcomes read ahead, by (the event whose folding made the
    test, the commit tested); the oldest beyond ``limit`` are dropped."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.folding = ""  # the id of the event being folded
        # one event's folding can test a commit twice (its own series, then
        # those a stalled confirmation lets go): the records, in either order
        self._by_key: OrderedDict[tuple[str, str], list[ev.CommitTested]] = OrderedDict()
        self.taken = 0

    def add(self, record: ev.CommitTested) -> None:
        if record.kept is None or not record.caused_by:
            return  # an earlier build's record: the outcome is not all there
        self._by_key.setdefault((record.caused_by, record.commit), []).append(record)
        while len(self._by_key) > self.limit:
            self._by_key.popitem(last=False)

    def take(self, commit: str) -> ev.CommitTested | None:
        """The record of the next test of ``commit`` the folded event made,
        if it found no change."""
        key = (self.folding, commit)
        records = self._by_key.get(key)
        if not records:
            return None
        record = min(records, key=_made) if len(records) > 1 else records[0]
        records.remove(record)
        if not records:
            del self._by_key[key]
        if record.candidates:
            return None
        self.taken += 1
        return record


def _made(record: ev.CommitTested) -> int:
    """Where ``record`` came among the outputs of the event that made it (its
    id is derived from that event's and its place): the order of the tests."""
    return next((i for i in range(1024) if ev.derived_id(record.caused_by, str(i))
                 == record.event_id), 1024)


RECORDED: ContextVar[Records | None] = ContextVar("recorded", default=None)


def recorded_test(commit: str) -> ev.CommitTested | None:
    records = RECORDED.get()
    return None if records is None else records.take(commit)
