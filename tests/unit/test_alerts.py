"""The alert line `ttfb alerts tail` prints."""

from __future__ import annotations

from producers.alerts import line
from ttfb import events as ev


def alert(**update: object) -> dict[str, object]:
    return ev.Alert(alert_id="d:imports", kind="regression", scenario="vision",
                    component="imports", commit="b" * 40, effect_ms=450.0, effect_pct=25.6,
                    ci_low_pct=11.0, ci_high_pct=41.9, author="Bo", subject="eager scipy",
                    link="http://lab/regressions?detection=d", producer="t"
                    ).model_copy(update=update).model_dump()


def test_the_line_carries_the_ci_and_says_when_a_culprit_is_only_a_best_guess() -> None:
    confirmed = line(alert())
    assert "+25.6% [+11.0%, +41.9%]" in confirmed and "culprit" not in confirmed
    sure = line(alert(status="attributed", culprit="c" * 40, culprit_confidence=0.997))
    assert "culprit cccccccccc:" in sure and "best guess" not in sure
    unsure = line(alert(status="attributed", culprit="c" * 40, culprit_confidence=0.70))
    assert "culprit cccccccccc (a best guess: posterior 0.70)" in unsure


def test_the_line_names_the_files_the_culprit_changed_that_the_workflow_reads() -> None:
    one = line(alert(status="attributed", culprit="c" * 40, culprit_confidence=0.997,
                     changed_files=["config/train.py"]))
    assert "culprit cccccccccc changed config/train.py:" in one
    many = line(alert(status="attributed", culprit="c" * 40, culprit_confidence=0.997,
                      changed_files=[f"pkg/m{i}.py" for i in range(5)]))
    assert "changed pkg/m0.py, pkg/m1.py, pkg/m2.py and 2 more:" in many


def test_a_retracted_alert_says_so_and_blames_nobody() -> None:
    retracted = line(alert(status="not_reproduced"))
    assert retracted.startswith("[not_reproduced] regression vision/imports")
    assert "retracted" in retracted and "culprit" not in retracted
