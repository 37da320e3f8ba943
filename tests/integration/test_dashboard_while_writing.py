"""A dashboard process reads the store while the sink writes: no error."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from producers.lab import Lab
from tests.integration.conftest import wait_until
from ttfb import events as ev
from ttfb.emitter import Emitter
from ttfb.store import Store

READER = r'''
import sys, time
from streamlit.testing.v1 import AppTest
deadline = time.monotonic() + float(sys.argv[2])
renders = 0
while time.monotonic() < deadline:
    at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
    if at.exception:
        print("EXCEPTION", at.exception, flush=True)
        sys.exit(1)
    renders += 1
print("renders", renders, flush=True)
'''


def test_dashboard_reads_while_sink_writes(lab: Lab, store: Store) -> None:
    app = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
    env = {**os.environ, **lab.settings.to_env()}
    reader = subprocess.Popen([sys.executable, "-c", READER, str(app), "20"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    comps = {c: 5.0 for c in ev.COMPONENTS}
    events = [ev.RunCompleted(repo="demo",
                              scenario=f"concurrent{i % 3}", commit=f"c{i}", ttfb_ms=35.0,
                              components=comps) for i in range(600)]

    async def send() -> None:
        emitter = await Emitter(lab.settings, "test-concurrent").start()
        for i, event in enumerate(events):
            await emitter.emit(event, "measurements")
            if i % 50 == 0:
                await asyncio.sleep(0.5)  # spread writes over the reader's lifetime
        await emitter.stop()

    started = time.monotonic()
    asyncio.run(send())
    out, _ = reader.communicate(timeout=180)
    assert reader.returncode == 0, out
    assert "renders" in out and int(out.split("renders")[-1]) >= 2, out
    assert time.monotonic() - started < 180

    def all_stored() -> bool:
        rows = store.query("SELECT count() AS n FROM ttfb.runs FINAL"
                           " WHERE scenario LIKE 'concurrent%'")
        return int(rows[0]["n"]) == 600

    wait_until(all_stored, timeout=60)
