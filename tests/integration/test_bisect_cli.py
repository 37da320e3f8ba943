"""``ttfb bisect`` as a user runs it, on a real repository and the embedded
lab: it says where it stands while it runs, and a bisect whose run budget is
spent ends inconclusive, with the range the culprit most likely lies in,
instead of a silent wait."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import lab_processes
from tests.integration.tinyrepo import commit, make_repo, set_import_cost, write_catalog

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_a_spent_budget_ends_inconclusive_and_progress_is_shown(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, import_s=0.2, commits=3)

    def ordinary(message: str) -> str:  # changes the code the scenario imports, not its cost
        heavy = repo / "tiny" / "heavy.py"
        heavy.write_text(heavy.read_text() + f"ORDINARY = {message!r}\n")
        return commit(repo, message)

    # every commit changes the scenario's code: the agent's hint singles none out
    for i in range(6):
        shas.append(ordinary(f"ordinary change {i}"))
    culprit = set_import_cost(repo, 0.26, "import more eagerly")  # +30 % of imports
    for i in range(8):  # 18 commits: three batches cannot narrow them to one
        ordinary(f"later change {i}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env.update(TTFB_DATA_DIR=str(tmp_path / "data"),
               TTFB_CATALOG=str(write_catalog(tmp_path / "catalog.toml")),
               PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "bisect", "--repo", str(repo), "--scenario", "tiny",
         "--good", shas[0], "--bad", "HEAD", "--component", "imports", "--max-runs", "20",
         "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-2000:]
    done = json.loads(result.stdout)
    assert done["inconclusive"] and not done["culprit"] and done["runs_spent"] <= 20
    history = subprocess.run(["git", "-C", str(repo), "rev-list", "--reverse", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.split()
    after, last = history.index(done["likely_after"]), history.index(done["likely_last"])
    assert after < last and float(done["likely_mass"]) >= 0.9
    # while it ran: the endpoints first, then the range and the likeliest commit
    lines = [line for line in result.stderr.splitlines() if line.startswith("bisect:")]
    assert any("(endpoints)" in line for line in lines), result.stderr[-2000:]
    assert any("commits in range; likely after" in line for line in lines), result.stderr[-2000:]
    assert history.index(culprit) > 0 and not lab_processes(tmp_path / "data")


def test_a_named_culprit_is_printed_with_what_grew(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, import_s=0.2, commits=2)
    culprit = set_import_cost(repo, 0.6, "import the table eagerly")
    commit(repo, "notes", touch="NOTES.md")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env.update(TTFB_DATA_DIR=str(tmp_path / "data"),
               TTFB_CATALOG=str(write_catalog(tmp_path / "catalog.toml")))
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "bisect", "--repo", str(repo), "--scenario", "tiny",
         "--good", shas[0], "--bad", "HEAD", "--component", "imports"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"culprit {culprit}" in result.stdout, result.stdout
    assert "it changed what the scenario imports or reads: tiny/heavy.py\n" in result.stdout
    grew = result.stdout.split("what grew from the culprit's parent to the culprit:\n")[1]
    first = grew.splitlines()[0]
    assert "tiny.heavy" in first and "(changed)" in first, result.stdout
    assert not lab_processes(tmp_path / "data")
