"""A rebuild takes each commit test's recorded outcome instead of testing
again, and leaves the very state and outputs that testing every commit
again leaves."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streams.bisect import BisectBook, BisectPolicy
from streams.bisect import to_json as book_json
from streams.detection import Policy, ScenarioState, to_json
from streams.detection.recorded import Records
from streams.fold import fold_event
from streams.rebuild import Rebuilt, replay
from tests.unit.test_detection_fold import answer, monitor
from ttfb import events as ev
from ttfb.stats import detector


def live_log(seed: int, commits: int = 60, answered: bool = True) -> list[ev.Event]:
    """A lab's log: monitoring runs with a step in config at commit 20 and a
    smaller one in data at 40, the confirmations' runs answered after each
    commit (``answered``); every input followed by what the fold emitted
    for it."""
    rng = np.random.default_rng(seed)
    policy, bisect_policy = Policy(), BisectPolicy()
    state, book = ScenarioState(), BisectBook()
    log: list[ev.Event] = []
    for c in range(commits):
        bump = {"config": 350.0 if c >= 20 else 0.0, "data": 40.0 if c >= 40 else 0.0}
        queue = monitor(rng, 1, start=c, bump_from=c, bump=bump)
        while queue:
            event = queue.pop(0)
            state, book, out = fold_event(event, state, book, policy, bisect_policy)
            log += [event, *out]
            for d in {o.correlation_id for o in out if answered
                      and isinstance(o, ev.RunRequested)}:
                queue += answer(rng, [o for o in out if isinstance(o, ev.RunRequested)
                                      and o.correlation_id == d], d, bump)
    return log


def outcome(rebuilt: Rebuilt) -> tuple[list[str], list[str]]:
    outputs = [json.dumps({k: v for k, v in json.loads(ev.encode(o)).items()
                           if k != "occurred_at"}, sort_keys=True)
               for o in rebuilt.outputs.values()]
    states = [json.dumps([s, to_json(d), book_json(b)], sort_keys=True)
              for s, (d, b) in sorted(rebuilt.states.items())]
    return outputs, states


def counting_tests(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    test: Callable[..., Any] = detector._window_test

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return test(*args)

    monkeypatch.setattr(detector, "_window_test", counted)
    return calls


@pytest.mark.python_folds  # (counts the tests through a patch)
@pytest.mark.parametrize("seed", [3, 4])
def test_a_rebuild_from_records_leaves_the_state_testing_again_leaves(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    log = live_log(seed)
    tested = [e for e in log if isinstance(e, ev.CommitTested)]
    found = [e for e in tested if e.candidates]
    assert found and any(e.kept for e in tested)  # changes found, commits held
    calls = counting_tests(monkeypatch)
    again = replay(log, Policy(), keep=None)
    tests_again = calls[0]
    records = Records()
    rebuilt = replay(log, Policy(), keep=None, records=records)
    assert outcome(rebuilt) == outcome(again)
    # every test that found nothing was taken from its record; only the
    # commits where a change was found were tested again
    assert records.taken == len(tested) - len(found)
    assert 0 < calls[0] - tests_again <= len(found) * 8 < tests_again // 3


def test_a_record_stands_for_the_test() -> None:
    """A record that says a series held a commit (where its test accepted
    it) is what the rebuilt state follows: the test is not run again."""
    log = live_log(3)
    first = next(i for i, e in enumerate(log) if isinstance(e, ev.CommitTested)
                 and not e.candidates and not e.kept and e.bands)
    record = log[first]
    assert isinstance(record, ev.CommitTested)
    doctored = [*log[:first], record.model_copy(update={"kept": ["ttfb"]}), *log[first + 1:]]
    series = [k for k in replay(log, Policy()).states["lm"][0].series if k.startswith("ttfb")]
    honest = replay(log[:first + 1], Policy(), records=Records()).states["lm"][0]
    lied = replay(doctored[:first + 1], Policy(), records=Records()).states["lm"][0]
    assert series
    assert record.commit not in [p.commit for p in honest.series[series[0]].window]
    assert lied.series[series[0]].window[-1].commit == record.commit


def test_records_an_earlier_build_made_or_beyond_the_read_ahead_are_tested_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    log = live_log(4, commits=30)
    again = replay(log, Policy(), keep=None)
    # records without the outcome's fields (as an earlier build made them)
    unrecorded = [e.model_copy(update={"kept": None, "caused_by": ""})
                  if isinstance(e, ev.CommitTested) else e for e in log]
    records = Records()
    assert outcome(replay(unrecorded, Policy(), keep=None, records=records)) == outcome(again)
    assert records.taken == 0
    # each record read only after the run that made it was folded
    from streams import rebuild
    monkeypatch.setattr(rebuild, "AHEAD", 0)
    late = Records()
    assert outcome(replay(log, Policy(), keep=None, records=late)) == outcome(again)
    assert late.taken == 0


def test_a_commit_tested_twice_by_one_event_takes_each_record_in_turn() -> None:
    """A confirmation nobody answers stalls: the commit that finds it so is
    tested in its free series, then again in those the stall lets go, both
    while one run is folded. Each test takes its own record."""
    log = live_log(6, commits=40, answered=False)
    tests: dict[tuple[str, str], list[ev.CommitTested]] = {}
    for e in log:
        if isinstance(e, ev.CommitTested):
            tests.setdefault((e.caused_by, e.commit), []).append(e)
    assert any(len(v) > 1 and v[0].bands.keys() != v[1].bands.keys() for v in tests.values())
    again = replay(log, Policy(), keep=None)
    records = Records()
    assert outcome(replay(log, Policy(), keep=None, records=records)) == outcome(again)
    assert records.taken == sum(1 for v in tests.values() for e in v if not e.candidates)
    # read in the other order (two records of one instant, say): the same
    swapped = list(log)
    for first, second in (v[:2] for v in tests.values() if len(v) > 1):
        i, j = swapped.index(first), swapped.index(second)
        swapped[i], swapped[j] = second, first
    assert outcome(replay(swapped, Policy(), keep=None, records=Records())) == outcome(again)
