"""What ``ttfb watch`` shows the person following it: each alert's line as
it is confirmed and again as its culprit is named, on standard output,
beside the progress line; alerts raised before the watch started are
history, not news."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.watch_cli import Progress
from tests.integration.conftest import clean_settings
from ttfb import events as ev
from ttfb.store import open_store

pytestmark = pytest.mark.integration


def alert(detection: str, **update: object) -> ev.Alert:
    return ev.Alert(alert_id=f"{detection}:data", kind="regression", scenario="mm",
                    component="data", commit="b" * 40, effect_ms=880.0, effect_pct=51.4,
                    ci_low_pct=37.0, ci_high_pct=70.0, author="Dana", subject="encode up front",
                    link="", producer="t").model_copy(update=update)


def confirmed(detection: str) -> ev.RegressionConfirmed:
    return ev.RegressionConfirmed(detection_id=detection, scenario="mm", repo="mm",
                                  component="data", commit="b" * 40, good_commit="a" * 40,
                                  direction="regression", effect_ms=880.0, effect_pct=51.4,
                                  p_value=1e-6)


def test_the_watch_prints_each_alert_as_it_is_confirmed_and_attributed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(clean_settings(tmp_path / "data"))
    assert store.write([confirmed("old"), alert("old")]) == 2  # before the watch
    progress = Progress(store, ["mm"], live=False, alerts=True)
    progress.show()
    assert capsys.readouterr().out == ""  # history
    whole = dict(ttfb_effect_ms=95.0, ttfb_effect_pct=2.1, ttfb_ci_low_pct=0.8,
                 ttfb_ci_high_pct=3.4)  # TTFB as a whole, as the store keeps it
    assert store.write([confirmed("new"), alert("new", **whole)]) == 2
    progress.show()
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("[confirmed] regression mm/data +51.4%")
    assert "(+880 ms; TTFB +2.1%)" in line
    assert store.write([alert("new", status="attributed", culprit="c" * 40,
                              culprit_confidence=0.999, changed_files=["makemore.py"])]) == 1
    progress.show()
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("[attributed] regression mm/data") and \
        "culprit cccccccccc changed makemore.py" in line
    progress.looked = 0.0  # a look, the line as it was
    progress.show()
    assert capsys.readouterr().out == ""  # each once
