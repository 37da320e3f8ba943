"""``ttfb backfill`` whose runs all fail says why and exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import lab_processes
from tests.integration.tinyrepo import commit, make_repo, write_catalog

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_a_backfill_whose_runs_all_fail_names_the_error_once_and_exits_1(
        tmp_path: Path) -> None:
    repo, data = tmp_path / "repo", tmp_path / "data"
    make_repo(repo, commits=1)
    # data prepared outside git, as a dataset often is: absent from the commit's checkout
    (repo / "tiny" / "heavy.py").write_text("open('prepared/train.bin', 'rb')\n")
    sha = commit(repo, "read the prepared tokens")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env.update(TTFB_DATA_DIR=str(data), TTFB_CATALOG=str(write_catalog(tmp_path / "c.toml")))
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "backfill", "--repo", f"tiny={repo}", "--last", "1"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    assert "every one of the 3 runs failed" in result.stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("run failed:")]
    # the three repetitions failed alike: one line, with the workflow's own error
    assert len(failures) == 1, result.stderr
    assert sha[:10] in failures[0] and "FileNotFoundError" in failures[0] \
        and "prepared/train.bin" in failures[0], failures
    assert "Traceback" not in result.stderr
    assert not lab_processes(data)
