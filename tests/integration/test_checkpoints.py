"""Checkpoints of the decision state on real chDB: a start folds only the
log after the newest one it can trust, and leaves the state a fold of the
whole log leaves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams import checkpoint
from streams.bisect.policy import BisectPolicy
from streams.decisions import topic_for
from streams.detection import Policy
from streams.detection.recorded import Records
from streams.rebuild import (
    ANSWERS_MARGIN,
    Rebuilt,
    answers_since,
    folded_topics,
    open_for_rebuild,
    rebuild_from_store,
    replay,
    stored_events,
    unanswered,
)
from tests.unit.test_rebuild_records import live_log, outcome
from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.store import Store, open_store
from ttfb.store.backends import ChdbBackend
from ttfb.store.rows import rows_for, ts

TWO_HOURS_AGO = datetime.now(UTC) - timedelta(hours=2)


def timed_log(seed: int, commits: int) -> list[ev.Event]:
    """A lab's log, each event a millisecond after the one before, two hours
    ago (older than a checkpoint's lag)."""
    return [e.model_copy(update={"occurred_at": TWO_HOURS_AGO + timedelta(milliseconds=i)})
            for i, e in enumerate(live_log(seed, commits=commits))]


def store_log(store: Store, settings: Settings, log: list[ev.Event]) -> None:
    store.write_batch([(settings.topic(topic_for(e) if e.producer.startswith("ttfb-")
                                       else "measurements"), e, None) for e in log])


def whole_fold(store: Store, settings: Settings) -> Rebuilt:
    return replay(stored_events(store, settings, records=True), Policy(), keep=None,
                  records=Records())


def test_a_start_folds_only_the_log_after_the_checkpoint_and_leaves_the_whole_fold_s_state(
        settings: Settings) -> None:
    log = timed_log(5, commits=40)
    half = len(log) // 2
    store = open_store(settings)
    store_log(store, settings, log[:half])
    first, _ = rebuild_from_store(store, settings, Policy())
    assert first.since is None and first.events == whole_fold(store, settings).events
    last_before = list(stored_events(store, settings))[-1]
    store_log(store, settings, log[half:])
    second, again = rebuild_from_store(store, settings, Policy())
    assert second.since == checkpoint.position_of(last_before)
    whole = whole_fold(store, settings)
    assert 0 < second.events == whole.events - first.events
    assert outcome(second)[1] == outcome(whole)[1]  # every scenario's state
    assert {o.event_id for o in again} == {o.event_id for o in unanswered(store, whole.outputs)}
    # its scans for the answers start a margin before the earliest input
    # that made one of its outputs, and find what the whole log's do
    since = answers_since(second)
    assert since is not None and since == min(
        second.made_at[i] for i in second.outputs) - ANSWERS_MARGIN
    assert unanswered(store, second.outputs, since) == unanswered(store, second.outputs)
    # an answer stored before ``since`` is not read
    old = next(e for e in log if isinstance(e, ev.CommitTested))
    assert unanswered(store, {old.event_id: old}) == []
    assert unanswered(store, {old.event_id: old}, old.occurred_at + timedelta(seconds=1)) \
        == [old]
    # the second's checkpoint, on the store as the worker opens it: one
    # embedded session for the start's dozen queries (each opened its own)
    store.close()
    reader = open_for_rebuild(settings)
    third, _ = rebuild_from_store(reader, settings, Policy())
    assert isinstance(reader.backend, ChdbBackend) and reader.backend.sessions == 1
    reader.close()
    last = list(stored_events(store, settings))[-1]
    assert third.since == checkpoint.position_of(last) and third.events == 0
    assert outcome(third)[1] == outcome(whole)[1]


def test_a_checkpoint_is_passed_over_when_its_log_or_its_rules_changed_or_it_is_not_whole(
        settings: Settings) -> None:
    log = timed_log(6, commits=30)
    store = open_store(settings)
    store_log(store, settings, log)
    rebuild_from_store(store, settings, Policy())
    assert rebuild_from_store(store, settings, Policy())[0].since is not None
    # other rules: not taken
    assert rebuild_from_store(store, settings, Policy(min_effect_ttfb_pct=2.5))[0].since is None
    # an event of the checkpoint's past stored after it was written: not taken
    run = next(e for e in log if isinstance(e, ev.RunCompleted))
    late = run.model_copy(update={"event_id": ev.new_id(), "scenario": "late",
                                  "occurred_at": TWO_HOURS_AGO + timedelta(milliseconds=1)})
    store_log(store, settings, [late])
    rebuilt, _ = rebuild_from_store(store, settings, Policy())
    assert rebuilt.since is None and "late" in rebuilt.states
    assert outcome(rebuilt)[1] == outcome(whole_fold(store, settings))[1]
    # a copy of an event the store held (as ClickHouse's own ingestion may
    # write one) is no change: the start's own checkpoint is taken
    row = rows_for(late, settings.topic("measurements"), None)["events"]
    store.backend.insert(f"{store.db}.events", [row])
    assert store.query(f"SELECT count() AS n FROM {store.db}.events WHERE event_id = "
                       "{i:String}", {"i": late.event_id})[0]["n"] == 2
    assert rebuild_from_store(store, settings, Policy())[0].since is not None
    # one whose own row never made it: not written whole, not taken
    store.backend.command(f"ALTER TABLE {store.db}.checkpoints DELETE WHERE scenario = ''"
                          " SETTINGS mutations_sync = 2")
    assert rebuild_from_store(store, settings, Policy())[0].since is None


def test_a_checkpoint_keeps_the_state_of_runs_past_the_retention_age(settings: Settings) -> None:
    """Retention takes old raw runs out of the log; a fold of what is left
    no longer gives the lab's state back, its checkpoint does."""
    from ttfb.store.retention import expire

    log = timed_log(7, commits=30)
    store = open_store(settings)
    store_log(store, settings, log)
    before, _ = rebuild_from_store(store, settings, Policy())
    assert expire(store, days=1 / 24)["commits"] > 0  # an hour: every commit
    after, _ = rebuild_from_store(store, settings, Policy())
    assert after.since is not None and after.events == 0
    assert outcome(after)[1] == outcome(before)[1]
    assert outcome(whole_fold(store, settings))[1] != outcome(before)[1]


def test_only_the_newest_checkpoints_are_kept(settings: Settings) -> None:
    log = timed_log(8, commits=12)
    store = open_store(settings)
    for i in range(checkpoint.KEEP + 2):
        store_log(store, settings, log[:len(log) * (i + 1) // (checkpoint.KEEP + 2)])
        rebuild_from_store(store, settings, Policy())
    kept = store.query(f"SELECT DISTINCT at FROM {store.db}.checkpoints")
    assert len(kept) == checkpoint.KEEP


def test_the_checkpoint_a_start_began_from_outlives_newer_ones_it_could_not_trust(
        settings: Settings) -> None:
    log = timed_log(9, commits=12)
    store = open_store(settings)
    store_log(store, settings, log)
    rebuild_from_store(store, settings, Policy())  # writes the one to trust
    trusted = store.query(f"SELECT DISTINCT toString(written_at) AS w FROM {store.db}.checkpoints")
    assert len(trusted) == 1
    # newer ones whose log then changed behind them: an event of their past stored late
    rules = checkpoint.rules_id(Policy(), BisectPolicy())
    later = (ts(TWO_HOURS_AGO + timedelta(hours=1)), "")
    start = checkpoint.latest(store, rules, folded_topics(settings))
    for _ in range(checkpoint.KEEP):  # each folded from the one to trust
        checkpoint.write(store, rules, later, {}, [], checkpoint.store_now(store), start)
    run = next(e for e in log if isinstance(e, ev.RunCompleted))
    store_log(store, settings, [run.model_copy(update={
        "event_id": ev.new_id(), "occurred_at": TWO_HOURS_AGO + timedelta(minutes=30)})])
    again, _ = rebuild_from_store(store, settings, Policy())
    assert start is not None and again.since == start.at and again.events == 1
    written = {r["w"] for r in store.query(
        f"SELECT DISTINCT toString(written_at) AS w FROM {store.db}.checkpoints")}
    assert trusted[0]["w"] in written and len(written) == checkpoint.KEEP + 1
