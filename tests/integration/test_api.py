"""The JSON API over a real chDB store, served on the loopback address:
the dashboard's queries as JSON, a triage recorded, bad input refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from producers.api import build
from tests.integration.conftest import clean_settings
from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.store import open_store, queries

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    settings = clean_settings(tmp_path / "data", api_token="s3cret-token")
    store = open_store(settings)
    comps = {c: 100.0 for c in ev.COMPONENTS}
    store.write([
        *(ev.RunCompleted(repo="demo", scenario="lm", commit=f"{i}" * 40, purpose="monitor",
                          ttfb_ms=700.0 + i, components=comps)  # type: ignore[arg-type]
          for i in range(3)),
        ev.Alert(alert_id="d1:imports", kind="regression", scenario="lm", component="imports",
                 commit="2" * 40, effect_ms=90.0, effect_pct=12.0, culprit="2" * 40,
                 status="attributed"),
        ev.ExperimentCompleted(experiment_id="x1", scenario="lm", arm_a="a", arm_b="b",
                               verdict="no change", components=[], runs_spent=8)])
    yield settings


def call(settings: Settings, *requests: tuple[str, str, dict[str, Any] | None, str]
         ) -> list[tuple[int, Any]]:
    """Each (method, path, JSON body, token) against the API served on the loopback."""
    async def run() -> list[tuple[int, Any]]:
        server = TestServer(build(settings), host="127.0.0.1")
        await server.start_server()
        out = []
        try:
            async with ClientSession() as http:
                for method, path, body, token in requests:
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    async with http.request(method, f"{server.make_url(path)}", json=body,
                                            headers=headers) as response:
                        out.append((response.status, await response.json()))
        finally:
            await server.close()
        return out

    return asyncio.run(run())


def test_the_api_answers_what_the_dashboard_reads(settings: Settings) -> None:
    store = open_store(settings)
    answers = call(settings, ("GET", "/api/v1/scenarios", None, ""),
                   ("GET", "/api/v1/scenarios/lm/series?component=imports", None, ""),
                   ("GET", "/api/v1/alerts", None, ""),
                   ("GET", "/api/v1/alerts/d1:imports", None, ""),
                   ("GET", "/api/v1/experiments", None, ""),
                   ("GET", "/api/v1/false-alarms", None, ""),
                   ("GET", "/api/v1/health", None, ""),
                   ("GET", "/api/v1/bisects", None, ""))
    assert all(status == 200 for status, _ in answers), answers
    scenarios, series, alerts, alert, experiments, alarms, health, bisects = \
        (a for _, a in answers)
    assert bisects == {"bisects": []}
    assert [s["scenario"] for s in scenarios["scenarios"]] == \
        [s["scenario"] for s in queries.scenario_overview(store)] == ["lm"]
    assert [p["ms"] for p in series["runs"]] == [100.0] * 3
    assert [a["alert_id"] for a in alerts["alerts"]] == ["d1:imports"]
    assert alert["culprit"] == "2" * 40 and alert["triage"] == ""
    assert experiments["experiments"][0]["experiment_id"] == "x1"
    assert alarms["false_alarms"] == 0 and health == {"ok": True}


def test_a_triage_is_recorded_and_bad_ones_are_refused(settings: Settings) -> None:
    path = "/api/v1/alerts/d1:imports/triage"
    body = {"status": "expected", "by": "ada", "note": "the tokenizer loads eagerly"}
    answers = call(settings,
                   ("POST", path, body, ""),                            # no token
                   ("POST", path, body, "wrong"),
                   ("POST", path, {"status": "wontfix"}, "s3cret-token"),
                   ("POST", path, {"by": "ada"}, "s3cret-token"),
                   ("POST", "/api/v1/alerts/nope:x/triage", body, "s3cret-token"),
                   ("GET", "/api/v1/alerts?triage=later", None, ""),
                   ("GET", "/api/v1/scenarios/lm/series?component=gpu", None, ""),
                   ("POST", path, body, "s3cret-token"),
                   ("GET", "/api/v1/alerts?triage=expected", None, ""))
    statuses = [status for status, _ in answers]
    assert statuses == [401, 401, 400, 400, 404, 400, 400, 201, 200], answers
    assert "unknown triage status 'wontfix'" in answers[2][1]["error"]
    assert "no alert 'nope:x'" in answers[4][1]["error"]
    recorded = answers[7][1]
    assert recorded["event"]["type"] == "AlertTriaged" and recorded["event"]["by"] == "ada"
    assert recorded["recorded_in"].startswith("the store")  # no lab running here
    [row] = answers[8][1]["alerts"]
    assert (row["alert_id"], row["triage"], row["triage_note"]) == \
        ("d1:imports", "expected", "the tokenizer loads eagerly")


def test_the_api_will_not_listen_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env.update(TTFB_DATA_DIR=str(tmp_path / "data"), TTFB_API_HOST="0.0.0.0")  # noqa: S104
    done = subprocess.run([sys.executable, "-m", "ttfb.cli", "api"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "set TTFB_API_TOKEN" in done.stderr
