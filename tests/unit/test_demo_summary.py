"""The demo's verdict: each alert judged by the commit it is attributed to."""

from __future__ import annotations

from producers.demo import classify

MANIFEST = [
    {"scenario": "recsys", "component": "imports", "direction": "improvement", "commit": "i" * 40},
    {"scenario": "lm", "component": "config", "direction": "regression", "commit": "c" * 40},
]


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
