"""The demo's verdict: each alert judged by the commit it is attributed to."""

from __future__ import annotations

import json
from pathlib import Path

from producers.demo import classify
from ttfb.settings import Settings
from ttfb.store import Store, open_store

MANIFEST = [
    {"scenario": "recsys", "component": "imports", "direction": "improvement", "commit": "i" * 40},
    {"scenario": "lm", "component": "config", "direction": "regression", "commit": "c" * 40},
]


def demo_store(tmp_path: Path, manifest: bool = True) -> Store:
    """A store in ``tmp_path``, with the demo's manifest beside its repository."""
    if manifest:
        (tmp_path / "manifest.json").write_text(json.dumps(MANIFEST))
    return open_store(Settings(data_dir=tmp_path / "data"))


def alert(scenario: str, component: str, kind: str, culprit: str) -> dict[str, str]:
    return {"scenario": scenario, "component": component, "kind": kind, "culprit": culprit}


def test_a_move_at_an_injected_commit_is_no_false_alarm_but_one_at_an_ordinary_commit_is() -> None:
    verdict = classify(MANIFEST, [
        alert("recsys", "imports", "improvement", "i" * 40),
        alert("recsys", "model", "regression", "i" * 40),  # the import moved into model
        alert("vision", "startup", "regression", "o" * 40),  # an ordinary commit
    ])
    assert verdict == {
        "found": ["recsys/imports improvement iiiiiiiiii"],
        "missed": ["lm/config regression cccccccccc"],
        "other_moves": ["recsys/model regression iiiiiiiiii"],
        "false_alarms": ["vision/startup regression oooooooooo"],
    }


def test_the_injected_change_the_wrong_way_is_a_false_alarm_and_a_miss() -> None:
    verdict = classify(MANIFEST, [alert("lm", "config", "improvement", "c" * 40)])
    assert verdict["false_alarms"] == ["lm/config improvement cccccccccc"]
    assert verdict["other_moves"] == [] and len(verdict["missed"]) == 2


def test_a_retracted_alert_is_listed_apart_and_judged_by_nobody(tmp_path: Path) -> None:
    """Through the store: the bisect's retraction replaces the confirmed alert,
    so the summary counts it neither as found nor as a false alarm."""
    from producers.demo import summarise
    from streams.bisect import attributed_alert
    from ttfb import events as ev

    store = demo_store(tmp_path)
    fields = dict(alert_id="d:model", kind="regression", scenario="recsys", component="model",
                  commit="i" * 40, effect_ms=60.0, effect_pct=6.2)
    done = ev.BisectCompleted(bisect_id="b", detection_id="d", scenario="recsys",
                              component="model", good="o" * 40, bad="i" * 40,
                              reproduced=False, effect_pct=1.9, ci_low_pct=-1.3,
                              ci_high_pct=5.1)
    store.write([ev.Alert(**fields), attributed_alert(done, "http://lab")])  # type: ignore[arg-type]
    summary = summarise(store, tmp_path / "repo", 1.0)
    assert summary["not_reproduced"] == ["recsys/model regression iiiiiiiiii"]
    assert summary["false_alarms"] == [] and summary["other_moves"] == []
    assert [a["status"] for a in summary["alerts"]] == ["not_reproduced"]


def test_the_summary_reads_every_alert_of_a_long_history(tmp_path: Path) -> None:
    """A history that raised more alerts than a page of the alerts list is
    summarised whole: the latest alerts judge the run as much as the first."""
    from producers.demo import summarise
    from ttfb import events as ev

    store = demo_store(tmp_path)
    store.write([ev.Alert(alert_id=f"d{i}:startup", kind="regression", scenario="vision",
                          component="startup", commit=f"{i:040x}", effect_ms=50.0,
                          effect_pct=5.0) for i in range(260)]
                + [ev.Alert(alert_id="last:imports", kind="improvement", scenario="recsys",
                            component="imports", commit="i" * 40, effect_ms=-90.0,
                            effect_pct=-9.0)])
    summary = summarise(store, tmp_path / "repo", 1.0)
    assert len(summary["alerts"]) == 261 and len(summary["false_alarms"]) == 260
    assert summary["found"] == ["recsys/imports improvement iiiiiiiiii"]


def test_each_injected_change_is_tested_against_a_baseline_of_several_commits(
        tmp_path: Path) -> None:
    """Before its injected change, each scenario is measured at its first commit
    and at two or more ordinary commits that touch its package: a baseline of
    one commit's burst is one moment of the machine, and a run measured in a
    slow spell hid a +20 % change behind it."""
    import subprocess

    from agents.demo_history import write_demo_repo
    from agents.workspace import changed_files

    repo = tmp_path / "repo"
    manifest = write_demo_repo(repo)
    history = subprocess.run(["git", "-C", str(repo), "rev-list", "--reverse", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.split()
    for change in manifest:
        before = history[1:history.index(change["commit"])]
        touching = [c for c in before if any(
            f.startswith(f"trainlab/{change['scenario']}/") for f in changed_files(repo, c))]
        assert len(touching) >= 2, (change["scenario"], change["component"], len(touching))


def test_the_demo_is_not_settled_while_a_named_component_awaits_its_verdict(
        tmp_path: Path) -> None:
    """A clear component's verdict comes at the first look, the others' at
    the end: the story waits for every component a candidate named."""
    from producers.demo import _settled
    from ttfb import events as ev

    store = demo_store(tmp_path, manifest=False)
    found = dict(detection_id="d", scenario="recsys", repo="demo", commit="i" * 40,
                 good_commit="o" * 40, direction="regression", effect_pct=50.0)
    store.write([ev.CandidateDetected(component="data", **found),  # type: ignore[arg-type]
                 ev.CandidateDetected(component="model", **found),  # type: ignore[arg-type]
                 ev.RegressionConfirmed(component="data", **found),  # type: ignore[arg-type]
                 ev.BisectCompleted(bisect_id="b", detection_id="d", scenario="recsys",
                                    component="data", good="o" * 40, bad="i" * 40)])
    assert not _settled(store)
    store.write([ev.DetectionDismissed(component="model", **found)])  # type: ignore[arg-type]
    assert _settled(store)


def test_the_story_is_told_once_when_every_injected_change_is_attributed(
        tmp_path: Path) -> None:
    """Through the store: a confirmed alert does not tell the story, nor does
    one change of two attributed; the second attribution does, once, with
    the time it took, and the summary carries that time."""
    from producers.demo import Story, summarise
    from ttfb import events as ev

    store = demo_store(tmp_path)
    said: list[str] = []
    story = Story(store, tmp_path / "repo", said.append, started=0.0, every_s=0.0)

    def alert_of(change: dict[str, str], status: str) -> ev.Alert:
        return ev.Alert(alert_id=f"d-{change['scenario']}:{change['component']}",
                        kind=change["direction"], scenario=change["scenario"],  # type: ignore[arg-type]
                        component=change["component"], commit=change["commit"], effect_ms=50.0,
                        effect_pct=10.0, status=status,  # type: ignore[arg-type]
                        culprit=change["commit"] if status == "attributed" else "")

    store.write([alert_of(MANIFEST[0], "confirmed"), alert_of(MANIFEST[1], "attributed")])
    story()
    assert said == [] and story.told_s is None
    store.write([alert_of(MANIFEST[0], "attributed")])
    story()
    story()
    assert len(said) == 1 and "all 2 injected changes found and attributed" in said[0]
    assert "0 false alarms" in said[0] and story.told_s is not None and story.told_s > 0
    assert summarise(store, tmp_path / "repo", 1.0, story.told_s)["story_told_s"] == story.told_s
