"""A team's word in the detection fold: an alert triaged ``expected`` makes
its level the baseline at once; the catalog's thresholds and ignored
components steer what is raised; an ``invalid`` alert counts as a false alarm."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from agents.catalog import CatalogError, load_catalog, thresholds_set
from producers.alerts import TriageError, triage_event
from streams.detection import Policy, ScenarioState
from streams.detection.overrides import config_for
from tests.unit.test_detection_fold import BASE, answer, feed, monitor, run
from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.stats.detector import band


def triage(status: str, component: str, culprit: str, commit: str) -> ev.AlertTriaged:
    return ev.AlertTriaged(alert_id=f"d:{component}", status=status,  # type: ignore[arg-type]
                           scenario="lm", component=component, kind="regression",
                           commit=commit, culprit=culprit, by="ada", note="meant")


def level(state: ScenarioState, component: str) -> float:
    [series] = [s for k, s in state.series.items() if k.startswith(component + "|")]
    limits = band(series, Policy().detector)
    assert limits is not None
    return limits[1]


def test_an_expected_change_is_the_baseline_at_once_and_is_not_raised_again() -> None:
    """A step in imports too small for the screen's three runs a commit (at a
    noisy series' band) is absorbed: its series' baseline straddles the two
    levels. Marked expected at its first commit, the baseline is the new
    level alone: the next commits at that level raise nothing, and one back
    at the old level is a candidate improvement."""
    rng = np.random.default_rng(7)
    bump = {"imports": 0.025 * BASE["imports"]}
    state, _ = feed(ScenarioState(), monitor(rng, 8))
    state, out = feed(state, monitor(rng, 4, start=8, bump_from=8, bump=bump))
    assert not [e for e in out if isinstance(e, ev.CandidateDetected)]  # absorbed
    straddling = level(state, "imports")
    new = BASE["imports"] * 1.025
    assert straddling < new * 0.995  # the old level still pulls the baseline down
    state, out = feed(state, [triage("expected", "imports", "c8", "c11")])
    [series] = [s for k, s in state.series.items() if k.startswith("imports|")]
    assert out == [] and {p.commit for p in series.baseline} == {"c8", "c9", "c10", "c11"}
    since = [v for p in series.baseline for v in p.values]
    assert level(state, "imports") == pytest.approx(float(np.exp(np.log(since).mean())))
    assert abs(level(state, "imports") / new - 1) < 0.015 and \
        level(state, "imports") > straddling
    # the other components' baselines are untouched
    assert len([s for k, s in state.series.items() if k.startswith("data|")][0].baseline) > 4
    after, out = feed(state, monitor(rng, 3, start=12, bump_from=12, bump=bump))
    assert not [e for e in out if isinstance(e, ev.CandidateDetected)]
    strict = dataclasses.replace(Policy(), detector=dataclasses.replace(
        Policy().detector, min_effect_pct=1.5))
    _, out = feed(after, monitor(rng, 1, start=15), strict)
    assert [(e.component, e.direction) for e in out if isinstance(e, ev.CandidateDetected)] \
        == [("imports", "improvement")]


def test_a_confirmed_regression_marked_expected_raises_nothing_more() -> None:
    rng = np.random.default_rng(3)
    bump = {"config": 350.0}
    state, _ = feed(ScenarioState(), monitor(rng, 6))
    state, out = feed(state, monitor(rng, 1, start=6, bump_from=6, bump=bump))
    [candidate] = [e for e in out if isinstance(e, ev.CandidateDetected)]
    state, out = feed(state, answer(rng, out, candidate.detection_id, bump))
    assert [e.component for e in out if isinstance(e, ev.Alert)] == ["config"]
    state, _ = feed(state, [triage("expected", "config", "c6", "c6")])
    state, out = feed(state, monitor(rng, 4, start=7, bump_from=7, bump=bump))
    assert not [e for e in out if isinstance(e, (ev.CandidateDetected, ev.Alert))]


def test_other_statuses_and_duplicates_change_no_decision() -> None:
    rng = np.random.default_rng(5)
    state, _ = feed(ScenarioState(), monitor(rng, 8))
    before = {k: s.baseline for k, s in state.series.items()}
    for status in ("acknowledged", "invalid", "fixed"):
        state, out = feed(state, [triage(status, "imports", "c3", "c5")])
        assert out == [] and {k: s.baseline for k, s in state.series.items()} == before
    expected = triage("expected", "imports", "c5", "c7")
    state, _ = feed(state, [expected])
    once = state.series
    state, _ = feed(state, [expected.model_copy()])  # the same event again
    assert state.series == once


def catalog(tmp_path: Path, thresholds: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text('[[scenario]]\nname = "lm"\nrepo = "demo"\nentry = "m:main"\n'
                    + thresholds)
    return path


def test_catalog_thresholds_steer_the_screen(tmp_path: Path) -> None:
    """A 6 % step in model: raised by the lab's defaults; not with the team's
    10 % minimum for model, nor with model ignored; the scenario's budget goes
    with the calibration request."""
    loaded = load_catalog(catalog(tmp_path, (
        "[scenario.thresholds]\nfalse_alarms_per_week = 0.25\nignore = [\"queue\"]\n"
        "[scenario.thresholds.components.model]\nmin_effect_pct = 10\nmin_effect_ms = 5\n")))
    [event] = thresholds_set(loaded, "catalog.toml", "test")
    assert event.components["model"].min_effect_pct == 10 and event.ignore == ["queue"]
    assert event.scenario_thresholds.false_alarms_per_week == 0.25

    def raised(events: list[ev.Event]) -> list[str]:
        rng = np.random.default_rng(11)
        state, _ = feed(ScenarioState(), [*events, *monitor(rng, 8)])
        cfg = config_for(state, "model", Policy().detector)
        assert cfg.min_effect_pct == (10 if events and events[0].components else 3)  # type: ignore[attr-defined]
        _, out = feed(state, monitor(rng, 1, start=8, bump_from=8,
                                     bump={"model": 0.06 * BASE["model"]}))
        return [e.component for e in out if isinstance(e, ev.CandidateDetected)]

    assert raised([]) == ["model"]
    assert raised([event]) == []
    ignore = ev.ThresholdsSet(scenario="lm", ignore=["model"], source="catalog.toml")
    assert raised([ignore]) == []
    rng = np.random.default_rng(2)
    state, out = feed(ScenarioState(), [event, *[run(rng, f"c{i}", r) for i in range(8)
                                                 for r in range(3)]])
    requests = [e for e in out if isinstance(e, ev.CalibrationRequested)]
    assert requests and all(r.budget_per_week == 0.25 for r in requests)


def test_an_override_naming_an_unknown_component_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"scenario 'lm'.*unknown component.*'datta'"):
        load_catalog(catalog(tmp_path, "[scenario.thresholds.components.datta]\n"
                                       "min_effect_pct = 5\n"))
    with pytest.raises(CatalogError, match="min_effect_pct"):
        load_catalog(catalog(tmp_path, "[scenario.thresholds]\nmin_effect_pct = -1\n"))


def test_an_invalid_alert_is_a_false_alarm_and_unknown_ids_are_refused(
        settings: Settings) -> None:
    from datetime import timedelta

    from ttfb.store import open_store, queries

    store = open_store(settings)
    confirmed = ev.Alert(alert_id="d1:imports", kind="regression", scenario="lm",
                         component="imports", commit="c9", effect_ms=250.0, effect_pct=12.0)
    later = confirmed.occurred_at + timedelta(seconds=30)
    store.write([confirmed, confirmed.model_copy(update={
        "event_id": ev.new_id(), "status": "attributed", "culprit": "c8", "occurred_at": later}),
        ev.Alert(alert_id="d2:data", kind="regression", scenario="lm", component="data",
                 commit="c12", effect_ms=40.0, effect_pct=5.0)])
    assert queries.false_alarms(store)["false_alarms"] == 0
    event = triage_event(store, "d1:imports", "invalid", "ada", "a noisy neighbour")
    assert (event.scenario, event.component, event.commit, event.culprit) == \
        ("lm", "imports", "c9", "c8")
    store.write([event])
    figure = queries.false_alarms(store)
    assert (figure["false_alarms"], figure["true_findings"], figure["invalid"]) == (1, 1, 1)
    assert figure["per_week"] == 1.0  # less than a week measured: one week
    assert [r["alert_id"] for r in queries.current_alerts(store, triage="invalid")] == \
        ["d1:imports"]
    assert [r["alert_id"] for r in queries.current_alerts(store, triage="untriaged")] == \
        ["d2:data"]
    with pytest.raises(TriageError, match="no alert 'd3:model'"):
        triage_event(store, "d3:model", "invalid")
    with pytest.raises(TriageError, match="unknown triage status"):
        triage_event(store, "d1:imports", "wontfix")


def test_an_ignored_component_confirmed_beside_a_named_one_is_not_alerted() -> None:
    """The candidate names data; the fresh runs show imports improving too,
    and the team ignores imports: both findings are kept, data alone alerted."""
    from tests.unit.test_detection_fold import candidate, data_and_imports_moved

    rng = np.random.default_rng(11)
    ignore = ev.ThresholdsSet(scenario="lm", ignore=["imports"], source="team.toml")
    state, _ = feed(ScenarioState(), [ignore])
    start, out = candidate(rng, {"data": 300.0})
    start.thresholds = state.thresholds
    out = data_and_imports_moved(rng, start, out)
    found = sorted((e.type, e.component) for e in out if isinstance(e, ev.Finding))
    assert found == [("ImprovementConfirmed", "imports"), ("RegressionConfirmed", "data")]
    assert [(a.kind, a.component) for a in out if isinstance(a, ev.Alert)] == \
        [("regression", "data")]
