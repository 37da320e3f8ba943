"""`ttfb run --script` measures unmodified PyTorch training scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ttfb.events import COMPONENTS

SCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "scripts"


@pytest.mark.parametrize(("script", "args"), [
    ("mnist_example.py", ["--batch-size", "32", "--epochs", "5"]),
    ("regression_loop.py", ["--steps", "1000"]),
    ("char_rnn.py", ["--epochs", "3"]),
])
def test_unmodified_scripts_get_every_component(script: str, args: list[str]) -> None:
    source = (SCRIPTS / script).read_text()
    assert "ttfb" not in source  # the scripts have never heard of the lab
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "run", "--script", str(SCRIPTS / script),
         "--runs", "2", "--json", "--", *args],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["fingerprint"]["torch"]
    for run in report["runs"]:
        assert run["status"] == "completed"
        assert list(run["components"]) == list(COMPONENTS)
        assert all(v > 0 for v in run["components"].values()), run["components"]
        assert abs(sum(run["components"].values()) - run["ttfb_ms"]) < 1.0
        # the run stops after the first step: far less than a full training run
        assert run["ttfb_ms"] < 60_000


def test_script_that_crashes_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import torch\nraise RuntimeError('no data found')\n")
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "run", "--script", str(script), "--json"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    run = json.loads(result.stdout)["runs"][0]
    assert run["status"] == "failed" and "no data found" in run["stderr_tail"]
