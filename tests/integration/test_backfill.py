"""``ttfb backfill`` whose runs all fail says why and exits non-zero; a
commit that breaks a scenario that used to run is told as such."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import lab_processes, wait_until
from tests.integration.tinyrepo import commit, make_repo, set_import_cost, write_catalog
from ttfb.settings import Settings
from ttfb.store import open_store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def backfill(tmp_path: Path, repo: Path, data: Path,
             last: int) -> subprocess.CompletedProcess[str]:
    """``ttfb backfill --last LAST`` of the tiny repository, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env.update(TTFB_DATA_DIR=str(data), TTFB_CATALOG=str(write_catalog(tmp_path / "c.toml")))
    return subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "backfill", "--repo", f"tiny={repo}", "--last",
         str(last)], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def test_a_backfill_whose_runs_all_fail_names_the_error_once_and_exits_1(
        tmp_path: Path) -> None:
    repo, data = tmp_path / "repo", tmp_path / "data"
    make_repo(repo, commits=1)
    # data prepared outside git, as a dataset often is: absent from the commit's checkout
    (repo / "tiny" / "heavy.py").write_text("open('prepared/train.bin', 'rb')\n")
    sha = commit(repo, "read the prepared tokens")
    result = backfill(tmp_path, repo, data, 1)
    assert result.returncode == 1, result.stderr
    # a scenario's first commit: as many runs as its screen's baseline needs
    assert "every one of the 4 runs failed" in result.stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("run failed:")]
    # the repetitions failed alike: one line, with the workflow's own error
    assert len(failures) == 1, result.stderr
    assert sha[:10] in failures[0] and "FileNotFoundError" in failures[0] \
        and "prepared/train.bin" in failures[0], failures
    assert "Traceback" not in result.stderr
    assert not lab_processes(data)


def test_a_commit_that_breaks_a_scenario_that_ran_is_told_once_with_its_error(
        tmp_path: Path) -> None:
    repo, data = tmp_path / "repo", tmp_path / "data"
    [good] = make_repo(repo, commits=1)
    (repo / "tiny" / "heavy.py").write_text("open('prepared/train.bin', 'rb')\n")
    bad = commit(repo, "read the prepared tokens")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env.update(TTFB_DATA_DIR=str(data), TTFB_CATALOG=str(write_catalog(tmp_path / "c.toml")))
    log = tmp_path / "watch.log"
    watcher = subprocess.Popen(
        [sys.executable, "-m", "ttfb.cli", "watch", "--repo", f"tiny={repo}", "--headless",
         "--interval", "1", "--backfill", "2"], env=env, cwd=ROOT,
        stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
    store = open_store(Settings(data_dir=data, _env_file=None))
    try:
        told = wait_until(lambda: store.query(
            "SELECT payload FROM ttfb.events WHERE type = 'ScenarioBroken'"), timeout=180,
            describe=lambda: log.read_text(errors="replace")[-2000:])
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(60)
    [broken] = [json.loads(r["payload"]) for r in told]
    assert (broken["status"], broken["commit"], broken["good_commit"]) == ("broken", bad, good)
    assert "FileNotFoundError" in broken["reason"] and "prepared/train.bin" in broken["reason"]
    assert not lab_processes(data)


def test_a_backfill_learns_what_the_scenario_imports_and_skips_commits_that_change_none_of_it(
        tmp_path: Path) -> None:
    """A scenario the lab has never run: its oldest commit's runs say which
    files it imports, and the commits that change none of them (in a
    monorepo, most) are skipped, not run. The backfill ends once what its
    runs started is decided, and says what it found."""
    repo, data = tmp_path / "repo", tmp_path / "data"
    first, *notes = make_repo(repo, commits=3)  # then two commits to NOTES.md
    heavier = set_import_cost(repo, 1.0, "heavier import")  # 0.5 s -> 1.0 s
    commit(repo, "notes 3", touch="NOTES.md")
    result = backfill(tmp_path, repo, data, 5)
    assert result.returncode == 0, result.stderr
    # the first commit's 4 (a baseline's worth), the heavier import's 3
    assert "7 runs to wait for" in result.stderr, result.stderr
    # what it found is the command's result: on standard output
    assert "backfill: 1 change(s) found" in result.stdout, result.stdout + result.stderr
    assert f"at {heavier[:10]} culprit {heavier[:10]}" in result.stdout, result.stdout
    store = open_store(Settings(data_dir=data, _env_file=None))
    ran = {r["commit"] for r in store.query(
        "SELECT DISTINCT commit FROM ttfb.runs WHERE purpose = 'monitor'")}
    assert ran == {first, heavier}  # (the bisect may run a skipped one: it is in the range)
    skipped = store.query("SELECT count() AS n FROM ttfb.events WHERE type = 'ScenarioSkipped'"
                          " AND JSONExtractString(payload, 'reason') = 'unaffected'")
    assert skipped[0]["n"] == 3
    assert not lab_processes(data)
    # a commit that changes nothing the scenario imports: nothing to run, and
    # that is no failure
    commit(repo, "notes 4", touch="NOTES.md")
    unaffected = backfill(tmp_path, repo, data, 1)
    assert unaffected.returncode == 0, unaffected.stderr
    assert "nothing to run" in unaffected.stderr and "failed" not in unaffected.stderr
    # a commit to a file the workflow reads (data the repository ships) is
    # measured as one to its code is; a later backfill on the same lab lists
    # what it found, not the lab's earlier alerts
    commit(repo, "more words", touch="tiny/vocab.txt")
    commit(repo, "a comment in the heavy module", touch="tiny/heavy.py")
    again = backfill(tmp_path, repo, data, 2)
    assert again.returncode == 0, again.stderr
    assert "6 runs to wait for" in again.stderr, again.stderr
    assert "backfill: 0 change(s) found" in again.stdout, again.stdout + again.stderr
    assert not lab_processes(data)
