"""``ttfb replay`` over a real chDB store holding a history the folds
decided: today's rules decide the same; a changed rule is told apart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from producers.replay_cli import ReplayError, replay_history
from streams.detection import ScenarioState
from streams.fold import fold_event
from tests.integration.conftest import clean_settings
from tests.unit.test_detection_fold import answer, monitor
from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.store import open_store

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def history(settings: Settings) -> int:
    """Eight ordinary commits, then one slower in config, its confirmation
    and its alert, stored as the live lab stores them (inputs and outputs on
    their topics); the number of alerts."""
    from streams.bisect import BisectBook, BisectPolicy
    from streams.decisions import topic_for
    from streams.detection import Policy

    rng = np.random.default_rng(4)
    state, book = ScenarioState(), BisectBook()
    store = open_store(settings)
    inputs = [*monitor(rng, 8), *monitor(rng, 1, start=8, bump_from=8, bump={"config": 350.0})]
    alerts = 0
    while inputs:
        outputs: list[ev.Event] = []
        for event in inputs:
            store.write([event], topic=settings.topic("measurements"))
            state, book, out = fold_event(event, state, book, Policy(), BisectPolicy())
            for o in out:
                store.write([o], topic=settings.topic(topic_for(o)))
            outputs += out
        alerts += sum(isinstance(o, ev.Alert) for o in outputs)
        candidate = next((o for o in outputs if isinstance(o, ev.CandidateDetected)), None)
        detection = candidate.detection_id if candidate else ""
        inputs = answer(rng, outputs, detection or "x", {"config": 350.0}) \
            if any(isinstance(o, ev.RunRequested) and o.purpose == "confirm"
                   for o in outputs) else []
        # the runs answer the requests the fold made: their ids tie them
        inputs = [i.model_copy(update={"request_id": r.request_id, "correlation_id":
                                       r.correlation_id}) for i, r in
                  zip(inputs, [o for o in outputs if isinstance(o, ev.RunRequested)],
                      strict=False)]
    return alerts


def test_today_s_rules_decide_the_same_and_a_changed_rule_is_told_apart(
        tmp_path: Path) -> None:
    settings = clean_settings(tmp_path / "data")
    assert history(settings) >= 1
    same = replay_history(settings, [])
    assert same["only_today"] == [] and same["only_then"] == [] and same["changed"] == []
    assert same["same"] >= 3 and same["events"] > 27  # candidate, confirmation, alert
    assert same["events_per_second"] > 0
    strict = replay_history(settings, ["min_effect_ttfb_pct=20"])
    gone = {(r["type"], r["component"]) for r in strict["only_then"]}
    assert {("CandidateDetected", "config"), ("Alert", "config")} <= gone
    assert strict["only_today"] == []
    with pytest.raises(ReplayError, match="no such field"):
        replay_history(settings, ["detector.min_effect=5"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env["TTFB_DATA_DIR"] = str(tmp_path / "data")
    cli = [sys.executable, "-m", "ttfb.cli", "replay"]
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "only today's rules: none" in done.stdout, done.stderr
    done = subprocess.run([*cli, "--set", "min_effect_ttfb_pct=20"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 1 and "then  Alert: lm/config" in done.stdout, done.stdout
    done = subprocess.run([*cli, "--set", "nonsense"], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "expected KEY=VALUE" in done.stderr
