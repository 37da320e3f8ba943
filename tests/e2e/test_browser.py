"""A real browser loads every dashboard page over a seeded store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboard.screenshot import CHROMIUM, PAGES, capture
from tests.integration.conftest import clean_settings
from tests.integration.test_dashboard_pages import seed
from ttfb.bus import free_port

pytestmark = pytest.mark.skipif(
    not shutil.which("chromium") and not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed (.ci/run installs it with apt-get)")


def test_every_page_renders_its_charts_and_text(tmp_path: Path) -> None:
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    seed(tmp_path / "data")
    port = free_port()
    settings = clean_settings(tmp_path / "data", dashboard_port=port)
    app = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        env={**os.environ, **settings.to_env()}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        texts = capture(f"http://127.0.0.1:{port}", tmp_path / "shots")
    finally:
        server.terminate()
        server.wait(30)
    assert set(texts) == set(PAGES)
    # tables are drawn on a canvas: assert on the text around them
    assert "dead letters\n\n2" in texts["overview"] and "refused commands\n\n1" in \
        texts["overview"]
    assert "lm: TTFB over commits" in texts["scenario"]
    assert "Bo Chen" in texts["regressions"] and "Log the config synchronously" in \
        texts["regressions"]
    assert "lm: a:HEAD~1 vs b:HEAD" in texts["experiments"] and "improvement" in \
        texts["experiments"]
    assert "budget 1 false alarms/week" in texts["calibration"]
    assert "refused commands\n\n1" in texts["dead-letters"]
    for name in PAGES:
        assert (tmp_path / "shots" / f"{name}.png").stat().st_size > 10_000
