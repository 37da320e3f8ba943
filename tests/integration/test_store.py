"""Store SQL on real chDB."""

import multiprocessing
from pathlib import Path

import pytest

from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.store import open_store, queries
from ttfb.store.schema import MIGRATIONS


def completed(scenario: str = "recsys", **kw: object) -> ev.RunCompleted:
    comps = {c: 10.0 for c in ev.COMPONENTS}
    return ev.RunCompleted(scenario=scenario, repo="demo", commit="abc", ttfb_ms=70.0,
                           components=comps,
                           **kw)  # type: ignore[arg-type]


def test_migrations_are_idempotent(settings: Settings) -> None:
    store = open_store(settings)
    assert store.schema_version() == MIGRATIONS[-1][0]
    assert store.migrate() == []
    assert open_store(settings).schema_version() == MIGRATIONS[-1][0]


def test_duplicates_change_nothing(settings: Settings) -> None:
    store = open_store(settings)
    run = completed()
    assert store.write([run, run]) == 1
    assert store.write([run]) == 0
    assert store.count("runs") == 1 and store.count("events") == 1


def test_every_event_type_lands_in_its_table(settings: Settings) -> None:
    from tests.unit.test_events import sample_events

    store = open_store(settings)
    assert store.write(sample_events()) == len(sample_events())
    for table in ("runs", "measurements", "commands", "dead_letters", "detections", "bisects",
                  "alerts"):
        assert store.count(table) >= 1, table


def test_text_beyond_ascii_is_stored_as_it_was_made(settings: Settings) -> None:
    # accented text, and a lone surrogate (left by a process's undecodable
    # bytes) that the fast JSON writer refuses and the standard one escapes
    store = open_store(settings)
    failed = ev.RunFailed(scenario="recsys", repo="demo", commit="abc", reason="café \udc80",
                          exit_code=1, stderr_tail="naïve")
    assert store.write([completed(subject="façade"), failed]) == 2
    rows = {r["status"]: r for r in store.query(
        "SELECT status, subject, reason, stderr_tail FROM ttfb.runs")}
    assert rows["completed"]["subject"] == "façade"
    assert (rows["failed"]["reason"], rows["failed"]["stderr_tail"]) == ("café \udc80", "naïve")


def test_parameters_are_values_not_sql(settings: Settings) -> None:
    store = open_store(settings)
    store.write([completed(request_id="r1")])
    hostile = "x') OR 1=1 --"
    assert queries.runs_for_requests(store, [hostile]) == []
    assert len(queries.runs_for_requests(store, ["r1"])) == 1


def test_recent_runs_limits_per_scenario(settings: Settings) -> None:
    store = open_store(settings)
    store.write([completed("a") for _ in range(5)] + [completed("b") for _ in range(2)])
    rows = queries.recent_runs(store, per_scenario=3)
    assert sorted(r["scenario"] for r in rows) == ["a", "a", "a", "b", "b"]


def _writer(path: str, n: int) -> None:
    store = open_store(Settings(data_dir=Path(path), _env_file=None))
    for _ in range(n):
        store.write([completed()])


def test_processes_share_the_store_through_the_lock(settings: Settings) -> None:
    open_store(settings)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(settings.data_dir), 10)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert open_store(settings).count("runs") == 30


def test_unknown_table_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError):
        open_store(settings).count("runs; DROP TABLE x")


def test_latest_modules_per_scenario(settings: Settings) -> None:
    store = open_store(settings)
    store.write([completed("a", modules=["x.py"]), completed("b")])
    store.write([completed("a", modules=["x.py", "y.py"])])
    assert queries.latest_modules(store) == {"a": ["x.py", "y.py"]}


def test_dashboard_queries_run_on_an_empty_and_a_filled_store(settings: Settings) -> None:
    store = open_store(settings)
    for scenario_rows in (False, True):
        if scenario_rows:
            store.write([completed("a", purpose="monitor") for _ in range(3)])
        overview = queries.scenario_overview(store)
        assert len(overview) == (1 if scenario_rows else 0)
        assert queries.scenario_status(store) == {}
        assert int(queries.system_health(store)["dead_letters"]) == 0
        assert len(queries.scenario_runs(store, "a")) == (3 if scenario_rows else 0)
        assert queries.findings(store) == [] and queries.bisects(store) == []
        assert queries.experiments(store) == [] and queries.calibrations(store) == []


def test_a_bisect_starts_from_the_newest_monitoring_runs_of_its_range(settings: Settings) -> None:
    """``ttfb bisect`` hands the range's stored monitoring runs to the search:
    each commit's newest three of the one component, from the hardware that
    ran most, and nothing of commits outside the range or of other purposes."""
    from producers.bisect_cli import monitored_runs

    store = open_store(settings)

    def run(commit: str, config: float, **kw: object) -> ev.RunCompleted:
        return ev.RunCompleted(scenario="recsys", repo="demo", commit=commit, ttfb_ms=70.0,
                               components={"config": config}, **kw)  # type: ignore[arg-type]

    box, other = ev.Fingerprint(cpu="box"), ev.Fingerprint(cpu="other")
    runs = [run(f"sha{c}", 10.0 + c + r / 10, repetition=r, fingerprint=box)
            for c in range(3) for r in range(4)]
    runs += [run("sha1", 99.0, fingerprint=other),
             run("sha1", 1.0, purpose="bisect", fingerprint=box)]
    store.write(runs)
    got = monitored_runs(store, "recsys", "config", ["sha0", "sha1", "gone"])
    assert got == {"sha0": [10.1, 10.2, 10.3], "sha1": [11.1, 11.2, 11.3]}
    assert monitored_runs(store, "recsys", "ttfb", ["sha2"], per_commit=2) == \
        {"sha2": [70.0, 70.0]}
    assert monitored_runs(store, "recsys", "data", ["sha2"]) == {}


def test_the_fold_s_events_are_read_back_in_order_once_each_across_pages(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages end inside a run of events with the same instant; payloads are
    the bytes as stored, a pretty-printed one (newlines between its tokens)
    and one with non-ASCII text among them."""
    import json
    from datetime import UTC, datetime

    from streams import rebuild

    monkeypatch.setattr(rebuild, "PAGE", 4)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    runs = [completed().model_copy(update={
        "commit": f"c{i}", "event_id": f"{i:08d}", "subject": "névé ✓",
        "occurred_at": at.replace(second=i // 5)}) for i in range(13)]
    store = open_store(settings)
    topic = settings.topic("measurements")
    raw = [ev.encode(r) for r in runs]
    raw[5] = json.dumps(json.loads(raw[5]), indent=2).encode()
    store.write_batch([(topic, r, b) for r, b in zip(runs, raw, strict=True)])
    store.write([ev.AgentHeartbeat(agent_id="a")], topic=topic)  # a type the fold never reads
    read = list(rebuild.stored_payloads(store, settings))
    assert [i for i, _ in read] == [r.event_id for r in runs]
    assert [p for _, p in read] == raw
    assert list(rebuild.stored_events(store, settings)) == runs
    # what is stored while the log is being read, after its pages' bounds
    # were found: in a page not read yet, and past the last bound
    reading = rebuild.stored_payloads(store, settings)
    first = [next(reading)[0] for _ in range(4)]
    later = [completed().model_copy(update={
        "commit": f"d{i}", "event_id": f"{90 + i:08d}",
        "occurred_at": at.replace(second=s)}) for i, s in enumerate((2, 4, 4, 5, 6))]
    store.write(later, topic=topic)
    rest = [i for i, _ in reading]
    everything = sorted([*runs, *later], key=lambda r: (r.occurred_at, r.event_id))
    assert first + rest == [r.event_id for r in everything]


def test_a_rebuild_does_not_tell_again_what_the_store_holds_under_another_id(
        settings: Settings) -> None:
    """A lab started on a build whose rules say the same thing at another
    moment derives other ids for its findings, alerts and bisect results:
    each is taken as delivered where the store holds one about the same
    detection, component, alert (and status) or bisect; what is new is sent."""
    from streams.rebuild import unanswered

    store = open_store(settings)
    found = ev.RegressionConfirmed(repo="demo", scenario="lm", component="config", commit="c",
                                   detection_id="d1", direction="regression", effect_pct=10.0)
    alert = ev.Alert(alert_id="d1:config", kind="regression", scenario="lm",
                     component="config", commit="c", effect_ms=300.0, effect_pct=10.0)
    done = ev.BisectCompleted(bisect_id="b1", detection_id="d1", scenario="lm",
                              component="config", good="a", bad="c")
    store.write([found, alert, done])
    again = [e.model_copy(update={"event_id": f"new-id-{i}"})
             for i, e in enumerate([found, alert, done])]
    attributed = alert.model_copy(update={"event_id": "new-id-3", "status": "attributed"})
    other = found.model_copy(update={"event_id": "new-id-4", "component": "data"})
    dismissed = found.model_copy(update={"event_id": "new-id-5"})  # another type of verdict
    dismissed = ev.DetectionDismissed(**{k: v for k, v in dismissed.model_dump().items()
                                         if k in ev.DetectionDismissed.model_fields
                                         and k != "type"})
    outputs = {e.event_id: e for e in [*again, attributed, other, dismissed]}
    assert [e.event_id for e in unanswered(store, outputs)] == ["new-id-3", "new-id-4", "new-id-5"]


def test_a_scenario_stays_bisecting_when_another_component_of_its_detection_is_dismissed(
        settings: Settings) -> None:
    """A clear component's verdict comes at the first look and its bisect
    starts; the other named component's dismissal comes later and does not
    make the scenario healthy while the bisect runs; its result does."""
    from datetime import UTC, datetime

    store = open_store(settings)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    found = dict(detection_id="d", scenario="recsys", repo="demo", commit="c",
                 good_commit="a", direction="regression", effect_pct=50.0)
    store.write([ev.RegressionConfirmed(component="data", occurred_at=at.replace(second=1),
                                        **found),  # type: ignore[arg-type]
                 ev.DetectionDismissed(component="model", occurred_at=at.replace(second=2),
                                       **found)])  # type: ignore[arg-type]
    assert queries.scenario_status(store) == {"recsys": "bisecting"}
    store.write([ev.BisectCompleted(bisect_id="b", detection_id="d", scenario="recsys",
                                    component="data", good="a", bad="c", culprit="c",
                                    occurred_at=at.replace(second=3))])
    assert queries.scenario_status(store) == {"recsys": "attributed"}
    store.write([ev.DetectionDismissed(component="data", occurred_at=at.replace(second=4),
                                       **{**found, "detection_id": "e"})])  # type: ignore[arg-type]
    assert queries.scenario_status(store) == {"recsys": "healthy"}


@pytest.mark.parametrize("records_on", ["records", "detections"])
def test_a_lab_s_start_takes_the_stored_test_outcomes_and_rebuilds_the_same_state(
        settings: Settings, records_on: str) -> None:
    """The store holds a lab's log as its sink wrote it: each input on its
    topic, then the fold's outputs on theirs (the tests' records on their own
    topic, or on detections, where earlier builds sent them). A start's
    rebuild reads the tests' records ahead of the runs, takes those that
    found nothing, and leaves the state that testing every commit again
    leaves."""
    from streams.decisions import topic_for
    from streams.detection import Policy, to_json
    from streams.rebuild import rebuild_from_store, replay, stored_events
    from tests.unit.test_rebuild_records import live_log

    def topic(e: ev.Event) -> str:
        if not e.producer.startswith("ttfb-"):
            return "measurements"
        return records_on if isinstance(e, ev.CommitTested) else topic_for(e)

    log = live_log(5, commits=40)
    store = open_store(settings)
    store.write_batch([(settings.topic(topic(e)), e, None) for e in log])
    again = replay(stored_events(store, settings), Policy())
    rebuilt, _ = rebuild_from_store(store, settings, Policy())
    tested = [e for e in log if isinstance(e, ev.CommitTested)]
    assert len(tested) > 30
    assert rebuilt.recorded == len([e for e in tested if not e.candidates])
    assert {s: to_json(d) for s, (d, _) in rebuilt.states.items()} == \
        {s: to_json(d) for s, (d, _) in again.states.items()}
    assert list(rebuilt.outputs) == list(again.outputs)


def test_a_query_over_many_values_is_asked_a_chunk_at_a_time_and_answers_for_all(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import ttfb.store as store_module

    store = open_store(settings)
    runs = [completed().model_copy(update={"commit": f"c{i}"}) for i in range(7)]
    store.write(runs)
    asked: list[int] = []
    query = store.query

    def counted(sql: str, params: dict[str, object] | None = None) -> list[dict[str, object]]:
        asked.append(len(params["ids"]))  # type: ignore[arg-type, index]
        return query(sql, params)

    monkeypatch.setattr(store_module, "IN_CHUNK", 3)
    monkeypatch.setattr(store, "query", counted)
    ids = [r.event_id for r in runs] + ["not-stored"]
    rows = store.query_in(f"SELECT event_id, commit FROM {store.db}.runs"
                          " WHERE event_id IN {ids:Array(String)} AND commit != {c:String}",
                          "ids", ids, {"c": "c0"})
    assert asked == [3, 3, 2]
    assert sorted(r["event_id"] for r in rows) == sorted(r.event_id for r in runs[1:])


def test_a_rebuild_sends_again_only_the_calibrations_the_store_holds_no_answer_to(
        settings: Settings) -> None:
    from streams.rebuild import unanswered

    store = open_store(settings)
    asked = [ev.CalibrationRequested(scenario="lm", history=[], accepted=8) for _ in range(2)]
    point = ev.RocPoint(threshold=1.0, false_positive_rate=0.01)
    store.write([ev.ThresholdCalibrated(
        event_id=ev.derived_id(asked[0].event_id, "0"), scenario="lm", series="ttfb",
        tests_per_week=1.0, budget_per_week=1.0, points=[point], chosen=point)])
    assert unanswered(store, {e.event_id: e for e in asked}) == [asked[1]]
