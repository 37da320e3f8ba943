"""Every dashboard page over a seeded chDB store (Streamlit AppTest, no browser)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.integration.conftest import clean_settings
from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.store import open_store, queries


def seed(data_dir: Path) -> None:
    store = open_store(clean_settings(data_dir))
    events: list[ev.Event] = []
    for i in range(6):  # recsys: 6 commits, the last one slower in config
        comps = {c: 100.0 for c in ev.COMPONENTS} | {"config": 100.0 + (400.0 if i == 5 else 0)}
        for rep in range(2):
            events.append(ev.RunCompleted(repo="demo",
                scenario="recsys", commit=f"{i}" * 40, purpose="monitor", repetition=rep,
                ttfb_ms=sum(comps.values()), components=comps,  # type: ignore[arg-type]
                author="Ada Park", subject=f"change {i}"))
    comps = {c: 50.0 for c in ev.COMPONENTS}
    events.append(ev.RunCompleted(repo="demo", scenario="lm", commit="a" * 40, purpose="monitor",
                                  ttfb_ms=350.0, components=comps))  # type: ignore[arg-type]
    fields = dict(detection_id="det1", scenario="recsys", repo="demo", component="config",
                  commit=f"{5}" * 40, good_commit=f"{4}" * 40, direction="regression",
                  effect_ms=400.0, effect_pct=400.0, ci_low_pct=380.0, ci_high_pct=420.0,
                  p_value=1e-6, runs_spent=10)
    whole = dict(ttfb_effect_ms=400.0, ttfb_effect_pct=13.3, ttfb_ci_low_pct=11.0,
                 ttfb_ci_high_pct=15.7)  # TTFB as a whole on the confirmation's runs
    events += [ev.CandidateDetected(**fields),
               ev.RegressionConfirmed(**fields, **whole)]  # type: ignore[arg-type]
    # the same change confirmed in a second, smaller component, after the first
    events.append(ev.RegressionConfirmed(**{**fields, "component": "data",  # type: ignore[arg-type]
                                            "effect_ms": 40.0, "effect_pct": 12.0}))
    events.append(ev.BisectCompleted(
        bisect_id="b1", detection_id="det1", scenario="recsys", component="config",
        good=f"{0}" * 40, bad=f"{5}" * 40, culprit=f"{5}" * 40, culprits=[f"{5}" * 40],
        author="Bo Chen", subject="Log the config synchronously", effect_ms=400.0,
        effect_pct=400.0, confidence=0.99, runs_spent=14,
        steps=[ev.BisectStep(commit=f"{3}" * 40, runs=2, decision="good", mean_ms=100.0)],
        explanation=[{"name": "telemetry.py:30:log", "good_ms": 0.0, "bad_ms": 360.0,
                      "delta_ms": 360.0}], changed_files=["configs/recsys.yaml", "telemetry.py"]))
    # lm: a confirmed model change the bisect's runs did not reproduce
    retracted = dict(detection_id="det2", scenario="lm", repo="demo", component="model",
                     commit="a" * 40,
                     good_commit="9" * 40, direction="regression", effect_ms=6.0,
                     effect_pct=6.2, ci_low_pct=2.0, ci_high_pct=10.0, p_value=0.006,
                     runs_spent=16)
    events += [ev.CandidateDetected(**retracted), ev.RegressionConfirmed(**retracted)]  # type: ignore[arg-type]
    events.append(ev.BisectCompleted(
        bisect_id="b2", detection_id="det2", scenario="lm", component="model",
        good="9" * 40, bad="a" * 40, effect_ms=1.0, effect_pct=1.9, ci_low_pct=-1.3,
        ci_high_pct=5.1, runs_spent=82, reproduced=False))
    # vision: an improvement whose culprit the monitoring runs named without a
    # search step of the bisect's own
    faster = dict(detection_id="det4", scenario="vision", repo="demo", component="imports",
                  commit="e" * 40, good_commit="c" * 40, direction="improvement",
                  effect_ms=-500.0, effect_pct=-25.0, ci_low_pct=-30.0, ci_high_pct=-20.0,
                  p_value=1e-5, runs_spent=9)
    events += [ev.CandidateDetected(**faster), ev.ImprovementConfirmed(**faster)]  # type: ignore[arg-type]
    events.append(ev.BisectCompleted(
        bisect_id="b4", detection_id="det4", scenario="vision", component="imports",
        direction="improvement", good="c" * 40, bad="e" * 40, culprit="e" * 40,
        culprits=["e" * 40], author="Cy", subject="lazy scipy", effect_ms=-500.0,
        effect_pct=-25.0, confidence=0.999, runs_spent=8,
        explanation=[{"name": "scipy.ndimage", "good_ms": 500.0, "bad_ms": 0.0,
                      "delta_ms": -500.0, "where": "dropped"}]))
    events.append(ev.ExperimentCompleted(
        experiment_id="x1", scenario="lm", arm_a="a:HEAD~1", arm_b="b:HEAD", verdict="improvement",
        runs_spent=20, components=[ev.ComponentDelta(
            component="imports", mean_a_ms=2300.0, mean_b_ms=1900.0, delta_ms=-400.0,
            delta_pct=-17.4, ci_low_pct=-20.0, ci_high_pct=-15.0, p_value=1e-5,
            verdict="improvement")]))
    events.append(ev.ThresholdCalibrated(
        scenario="recsys", series="ttfb", tests_per_week=500.0, budget_per_week=1.0,
        points=[ev.RocPoint(threshold=0.5, false_positive_rate=0.001,
                            power={"2%": 0.2, "5%": 0.7, "10%": 0.95})],
        chosen=ev.RocPoint(threshold=0.5, false_positive_rate=0.001)))
    link = "http://127.0.0.1:8501/regressions?detection="
    events += [ev.Alert(alert_id="det1:config", kind="regression", scenario="recsys",
                        component="config", commit="5" * 40, effect_ms=400.0, effect_pct=400.0,
                        culprit="5" * 40, status="attributed", link=link + "det1"),
               ev.Alert(alert_id="det2:model", kind="regression", scenario="lm",
                        component="model", commit="a" * 40, effect_ms=6.0, effect_pct=6.2,
                        status="not_reproduced", link=link + "det2"),
               ev.ThresholdsSet(scenario="recsys", components={"config": ev.Thresholds(
                   min_effect_pct=8.0)}, ignore=["queue"], source="team.toml")]
    # agents: one beating and busy, one heard of last ten minutes ago
    from datetime import UTC, datetime, timedelta

    events += [ev.AgentAnnounced(agent_id="cpu-1", hardware_class="cpu", slots=2,
                                 producer="cpu-1"),
               ev.AgentHeartbeat(agent_id="cpu-1", hardware_class="cpu", slots=2, running=1,
                                 queued=3, producer="cpu-1"),
               ev.AgentAnnounced(agent_id="gpu-1", hardware_class="cuda", producer="gpu-1",
                                 occurred_at=datetime.now(UTC) - timedelta(minutes=10))]
    events += [ev.RunCompleted(repo="demo", scenario="lm", commit="b" * 40, purpose="monitor",
                               ttfb_ms=350.0, components=comps, producer="cpu-1"),  # type: ignore[arg-type]
               ev.RunFailed(repo="demo", scenario="lm", commit="b" * 40, reason="crashed",
                            producer="cpu-1")]
    # vision: ran at one commit, every run of the next one failed
    events += [ev.RunCompleted(repo="demo", scenario="vision", commit="c" * 40,
                               purpose="monitor", ttfb_ms=350.0, components=comps),  # type: ignore[arg-type]
               ev.ScenarioBroken(status="broken", scenario="vision", repo="demo",
                                 commit="d" * 40, good_commit="c" * 40,
                                 reason="workflow exited with code 1: ImportError: x")]
    events += [ev.DeadLettered(reason="malformed JSON: x", source_topic="ttfb.measurements"),
               ev.DeadLettered(reason="bad signature", source_topic="ttfb.commands",
                               refused_command=True)]
    assert store.write(events) == len(events)
    # what the detector tested each recsys commit against, from its own fold
    from streams.detection import Policy, ScenarioState, decide

    state, tested = ScenarioState(), []
    for run in [e for e in events if isinstance(e, ev.RunCompleted) and e.scenario == "recsys"]:
        state, out = decide(state, run.model_copy(update={"runs_total": 2}), Policy())
        tested += [e for e in out if isinstance(e, ev.CommitTested)]
    assert tested and store.write(tested) == len(tested)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("dash")
    seed(data_dir)
    old = os.environ.get("TTFB_DATA_DIR")
    os.environ["TTFB_DATA_DIR"] = str(data_dir)
    from dashboard import data

    data.store.clear()
    yield data_dir
    data.store.clear()
    if old is None:
        os.environ.pop("TTFB_DATA_DIR", None)
    else:
        os.environ["TTFB_DATA_DIR"] = old


def rendered(name: str) -> AppTest:
    at = AppTest.from_string(
        f"import importlib, streamlit as st\nst.cache_data.clear()\n"
        f"importlib.import_module('dashboard.views.{name}').render()\n", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_overview_shows_each_scenario_with_latest_ttfb_and_status(seeded: Path) -> None:
    at = rendered("overview")
    table = at.dataframe[0].value.set_index("scenario")
    assert list(table.index) == ["lm", "recsys", "vision"]
    assert table.loc["vision", "status"] == "BROKEN: every run fails"
    assert table.loc["recsys", "latest_ms"] == pytest.approx(1100.0)
    assert table.loc["recsys", "baseline_ms"] == pytest.approx(700.0)
    assert "bisecting" in table.loc["recsys", "status"] or \
        "attributed" in table.loc["recsys", "status"]
    assert table.loc["lm", "status"] == "healthy"  # its one confirmation did not reproduce
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["dead letters"] == "2" and metrics["refused commands"] == "1"
    agents = at.dataframe[1].value.set_index("agent_id")
    assert agents.loc["cpu-1", "state"] == "running"
    assert (agents.loc["cpu-1", "running"], agents.loc["cpu-1", "queued"]) == (1, 3)
    assert (agents.loc["cpu-1", "completed_last_hour"],
            agents.loc["cpu-1", "failed_last_hour"]) == (1, 1)
    assert agents.loc["gpu-1", "state"] == "silent" and agents.loc["gpu-1", "slots"] == 1
    # no lab is running over this store: the lag says why it is unknown
    assert any("Consumer lag unknown: no lab is running" in c.value for c in at.caption)


def test_scenario_page_charts_the_commits(seeded: Path) -> None:
    at = rendered("scenario")
    assert at.header[0].value.startswith("lm") or at.header[0].value.startswith("recsys")
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2  # stacked components with band and markers; distribution


def test_the_scenario_band_is_the_detectors_own(seeded: Path) -> None:
    at = AppTest.from_string(
        "import importlib, streamlit as st\nst.cache_data.clear()\n"
        "st.query_params['scenario'] = 'recsys'\n"
        "importlib.import_module('dashboard.views.scenario').render()\n", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert at.header[0].value.startswith("recsys")
    import pyarrow as pa

    chart = at.get("vega_lite_chart")[0].proto
    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.datasets]
    drawn = next(f for f in frames if "low" in f.columns).to_dict("records")
    stored = queries.baseline_bands(open_store(Settings(data_dir=seeded, _env_file=None)),
                                    "recsys")
    assert drawn and len(drawn) == len(stored)
    assert [(r["low"], r["high"]) for r in drawn] == [(r["low"], r["high"]) for r in stored]
    # the slow last commit lies above the band it was tested against
    assert stored[-1]["candidate"] and stored[-1]["high"] < 1100.0


def test_regressions_page_names_the_culprit_and_its_steps(seeded: Path) -> None:
    at = rendered("regressions")
    labels = [e.label for e in at.expander]
    # the component that moved TTFB most heads the detection, the others named
    assert any("recsys / config: regression confirmed, +400.0%" in label
               and label.endswith("(also data)") for label in labels), labels
    text = " ".join(m.value for m in at.markdown)
    assert "Bo Chen" in text and "Log the config synchronously" in text
    assert "TTFB as a whole +13.3% (+400 ms), 95% CI [+11.0%, +15.7%]" in text
    captions = [c.value for c in at.caption]
    assert any(c.startswith("What grew most between") for c in captions), captions
    # an improvement's explanation is what shrank; a bisect with no search step
    # of its own shows no empty table of them
    assert any(c.startswith("What shrank most between") for c in captions), captions
    assert not any(df.value.empty for df in at.dataframe)
    assert "changed what the runs import or read: `configs/recsys.yaml`, `telemetry.py`" in text
    assert any("telemetry.py:30:log" in str(df.value) for df in at.dataframe)
    # a detection's timeline says which component each verdict and its bisect are about
    timelines = [df.value for df in at.dataframe if "BisectCompleted" in set(df.value.get(
        "type", []))]
    assert timelines and all(set(t["component"]) <= {"config", "data", "model", "imports"} and
                             t["component"].all() for t in timelines), timelines
    assert any("lm / model: regression confirmed, not reproduced" in label for label in labels)
    warning = " ".join(w.value for w in at.warning)
    assert "Not reproduced" in warning and "-1.3% to +5.1%" in warning and "82 runs" in warning


def test_an_alert_is_triaged_from_its_button_and_filtered_by_triage(seeded: Path) -> None:
    at = rendered("regressions")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["false alarms / week"] == "1.00"  # the retracted one, in under a week
    assert metrics["true findings"] == "1"
    # no status is chosen for an untriaged alert: the button alone marks nothing
    assert at.radio(key="s-det1:config").value is None
    at.button(key="t-det1:config").click().run()
    assert any("Choose a status first" in e.value for e in at.error), at.error
    assert not queries.current_alerts(open_store(Settings(data_dir=seeded, _env_file=None)),
                                      triage="acknowledged")
    at.radio(key="s-det1:config").set_value("invalid")
    at.text_input(key="b-det1:config").input("ada")
    at.text_input(key="n-det1:config").input("the machine was shared")
    at.button(key="t-det1:config").click().run()
    assert not at.exception, at.exception
    assert any("marked invalid" in s.value for s in at.success)
    store = open_store(Settings(data_dir=seeded, _env_file=None))
    [row] = queries.current_alerts(store, triage="invalid")
    assert (row["alert_id"], row["triaged_by"], row["triage_note"]) == \
        ("det1:config", "ada", "the machine was shared")
    at = rendered("regressions")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["false alarms / week"] == "2.00" and metrics["true findings"] == "0"
    assert any("[invalid by ada]" in e.label for e in at.expander)
    assert at.radio(key="s-det1:config").value == "invalid"  # its form starts at its status
    at.selectbox[0].set_value("expected").run()
    assert not at.expander  # nothing marked expected
    at.selectbox[0].set_value("untriaged").run()
    assert [e.label.split(":")[0] for e in at.expander] == ["lm / model"]


def test_experiments_page_shows_the_verdict_and_deltas(seeded: Path) -> None:
    at = rendered("experiments")
    assert "improvement" in at.subheader[0].value and "20 runs" in at.subheader[0].value
    deltas = at.dataframe[0].value
    assert deltas.loc[0, "delta_pct"] == pytest.approx(-17.4)


def test_calibration_page_shows_budget_and_power(seeded: Path) -> None:
    at = rendered("calibration")
    captions = " ".join(c.value for c in at.caption)
    assert "budget 1 false alarms/week (the lab's default)" in captions
    assert "1 retracted" in captions
    said = " ".join(m.value for m in at.markdown)
    assert "recsys: set in team.toml: config: min effect 8%; never alerted: queue" in said
    points = at.dataframe[0].value
    assert points.loc[0, "power 10%"] == pytest.approx(0.95)


def test_dead_letters_page_counts_refusals(seeded: Path) -> None:
    at = rendered("deadletters")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"dead letters": "2", "refused commands": "1"}
    assert "bad signature" in at.dataframe[0].value["reason"].tolist()


def test_with_login_required_no_page_renders_before_a_login(
        seeded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.app import allowed

    monkeypatch.setenv("TTFB_DASHBOARD_LOGIN", "true")
    app = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.dataframe and not at.metric  # nothing of the lab's shows
    monkeypatch.setenv("TTFB_DASHBOARD_LOGIN", "false")
    at = AppTest.from_file(str(app), default_timeout=60)
    at.run()
    assert not at.exception and "Log in" not in [b.label for b in at.button]
    assert at.metric  # the overview, as before
    assert allowed("Ada@Example.org", ["@example.org"]) and allowed("x@y.z", [])
    assert not allowed("eve@evil.org", ["ada@example.org", "@example.org"])
