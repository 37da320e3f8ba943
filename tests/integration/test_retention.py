"""Retention on a real chDB store: a commit's raw runs past the age are gone,
its per-commit aggregate and every finding kept, younger commits untouched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.conftest import clean_settings
from ttfb import events as ev
from ttfb.store import open_store
from ttfb.store.retention import expire

pytestmark = pytest.mark.integration


def test_runs_past_the_age_become_aggregates_and_findings_stay(tmp_path: Path) -> None:
    store = open_store(clean_settings(tmp_path / "data"))
    now = datetime.now(UTC)
    comps = {c: 10.0 for c in ev.COMPONENTS}

    def run(commit: str, age_days: float, rep: int, ttfb_ms: float) -> ev.RunCompleted:
        return ev.RunCompleted(repo="demo", scenario="lm", commit=commit, repetition=rep,
                               ttfb_ms=ttfb_ms, components={**comps, "imports": ttfb_ms - 60},  # type: ignore[arg-type]
                               occurred_at=now - timedelta(days=age_days))

    events: list[ev.Event] = [run("old", 40, i, v) for i, v in enumerate((100.0, 110.0, 120.0))]
    # a commit with one run past the age and one inside it is kept whole
    events += [run("edge", 31, 0, 100.0), run("edge", 29, 1, 100.0), run("new", 1, 0, 90.0)]
    events += [ev.ComponentMeasured(repo="demo", scenario="lm", commit="old", component="imports",
                                    ms=50.0, occurred_at=now - timedelta(days=40)),
               ev.RegressionConfirmed(detection_id="d1", scenario="lm", repo="demo",
                                      component="imports", commit="old", direction="regression",
                                      occurred_at=now - timedelta(days=40)),
               ev.Alert(alert_id="d1:imports", kind="regression", scenario="lm",
                        component="imports", commit="old", effect_ms=50.0, effect_pct=5.0,
                        occurred_at=now - timedelta(days=40))]
    # heartbeats: each agent's past the age go, its newest stays
    beats = {(agent, age): ev.AgentHeartbeat(agent_id=agent,
                                             occurred_at=now - timedelta(days=age))
             for agent, age in (("a1", 50), ("a1", 40), ("a1", 1), ("a2", 45), ("a2", 35))}
    events += list(beats.values())
    store.write(events)
    assert expire(store, 0) == {"commits": 0}  # 0: keep everything
    done = expire(store, 30, now=now)
    assert done == {"commits": 1, "runs": 3, "measurements": 1}
    assert sorted(r["commit"] for r in store.query("SELECT commit FROM ttfb.runs FINAL")) == \
        ["edge", "edge", "new"]
    assert store.count("measurements") == 0
    kept = {r["component"]: r for r in store.query(
        "SELECT component, runs, mean_ms, median_ms, min_ms, max_ms FROM"
        " ttfb.commit_aggregates FINAL WHERE commit = 'old'")}
    assert set(kept) == {*ev.COMPONENTS, "ttfb"}
    assert (kept["ttfb"]["runs"], kept["ttfb"]["mean_ms"], kept["ttfb"]["min_ms"],
            kept["ttfb"]["max_ms"]) == (3, 110.0, 100.0, 120.0)
    assert kept["imports"]["median_ms"] == 50.0
    assert store.count("detections") == 1 and store.count("alerts") == 1
    raw = store.query("SELECT JSONExtractString(payload, 'commit') AS commit FROM ttfb.events"
                      " WHERE type IN ('RunCompleted', 'ComponentMeasured')")
    assert sorted(r["commit"] for r in raw) == ["edge", "edge", "new"]
    left = {r["event_id"] for r in store.query(
        "SELECT event_id FROM ttfb.events WHERE type = 'AgentHeartbeat'")}
    assert left == {beats["a1", 1].event_id, beats["a2", 35].event_id}
    assert expire(store, 30, now=now) == {"commits": 0}  # nothing left to expire


def test_commits_expire_a_chunk_at_a_time_each_whole(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import ttfb.store.retention as retention

    monkeypatch.setattr(retention, "IN_CHUNK", 2)
    store = open_store(clean_settings(tmp_path / "data"))
    now = datetime.now(UTC)
    comps = {c: 10.0 for c in ev.COMPONENTS}
    store.write([ev.RunCompleted(repo="demo", scenario="lm", commit=f"c{c}", repetition=r,
                                 ttfb_ms=70.0 + r, components=comps,  # type: ignore[arg-type]
                                 occurred_at=now - timedelta(days=40 - c))
                 for c in range(5) for r in range(3)])
    assert expire(store, 30, now=now) == {"commits": 5, "runs": 15, "measurements": 0}
    kept = store.query("SELECT commit, runs, mean_ms FROM ttfb.commit_aggregates FINAL"
                       " WHERE component = 'ttfb' ORDER BY commit")
    assert [(r["commit"], r["runs"], r["mean_ms"]) for r in kept] == \
        [(f"c{c}", 3, 71.0) for c in range(5)]
    assert store.count("runs") == 0
