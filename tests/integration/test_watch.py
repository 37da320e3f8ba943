"""``ttfb watch`` on a real repository in the embedded lab: a regression pushed
to the watched branch is alerted with its culprit, and a lab killed with
SIGKILL in the middle of the confirmation resumes from the store (its newest
checkpoint of the decision state and the log after it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from producers.watch import Source, Watcher, parse_source
from streams import checkpoint
from streams.bisect.policy import BisectPolicy
from streams.detection import Policy
from streams.rebuild import folded_topics
from tests.integration.conftest import lab_processes, wait_until
from tests.integration.tinyrepo import make_repo, set_import_cost, write_catalog
from ttfb import events as ev
from ttfb.bus import free_port
from ttfb.settings import Settings
from ttfb.store import Store, open_store

pytestmark = pytest.mark.integration


def watch(data_dir: Path, catalog: Path, repo: Path, log: Path,
          *extra: str, **settings: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env.update(TTFB_DATA_DIR=str(data_dir), TTFB_CATALOG=str(catalog), PYTHONUNBUFFERED="1",
               **settings)
    return subprocess.Popen(
        [sys.executable, "-m", "ttfb.cli", "watch", "--repo", f"tiny={repo}", "--headless",
         "--interval", "1", *extra], env=env, stdout=open(log, "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])


def count(store: Store, sql: str, **params: object) -> int:
    return int(store.query(sql, params)[0]["n"])


def test_watch_alerts_a_pushed_regression_once_across_a_sigkill(tmp_path: Path) -> None:
    repo, data = tmp_path / "repo", tmp_path / "data"
    history = make_repo(repo, import_s=0.5, commits=3)
    catalog = write_catalog(tmp_path / "catalog.toml")
    log = tmp_path / "watch.log"
    settings = Settings(data_dir=data, _env_file=None)
    store = open_store(settings)
    # the decision state checkpointed every 3 s, 10 s behind: the restarted
    # lab starts from the newest checkpoint and folds only the log after it
    # (the worker's log says so at INFO)
    checkpoints = {"TTFB_CHECKPOINT_EVERY_S": "3", "TTFB_CHECKPOINT_LAG_S": "10",
                   "TTFB_LOG_LEVEL": "INFO"}
    first = watch(data, catalog, repo, log, "--backfill", "3", **checkpoints)

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:]

    try:
        # the first commit's runs, as many as a baseline needs: the two after it
        # change nothing the scenario imports (NOTES.md), and are skipped
        wait_until(lambda: count(store, "SELECT count() AS n FROM ttfb.runs FINAL"
                                 " WHERE purpose = 'monitor' AND status = 'completed'") >= 4,
                   timeout=240, describe=tail)
        # a checkpoint a start can take is in the store (its position is 10 s
        # behind, each takes seconds to write: a kill before it would leave none)
        rules = checkpoint.rules_id(Policy(dashboard_url=settings.public_url()), BisectPolicy())
        wait_until(lambda: checkpoint.latest(store, rules, folded_topics(settings)),
                   timeout=120, describe=tail)
        culprit = set_import_cost(repo, 0.6, "load the heavy table eagerly")  # +20 % imports
        # the culprit's confirmation is under way: its runs are asked for, its verdict
        # not given (a confirmation of an earlier commit's candidate is not it)
        wait_until(lambda: count(store, "SELECT count() AS n FROM ttfb.commands FINAL"
                                 " WHERE purpose = 'confirm' AND commit = {c:String}",
                                 c=culprit) > 0, timeout=240, describe=tail)
        assert count(store, "SELECT count() AS n FROM ttfb.detections FINAL"
                     " WHERE type = 'RegressionConfirmed'") == 0
        candidates = {r["detection_id"] for r in store.query(
            "SELECT detection_id FROM ttfb.detections FINAL WHERE type = 'CandidateDetected'")}
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        # every process of the lab dies with it
        wait_until(lambda: not lab_processes(data), timeout=20,
                   describe=lambda: lab_processes(data))

        second = watch(data, catalog, repo, log, **checkpoints)
        try:
            alert = wait_until(lambda: store.query(
                "SELECT alert_id, culprit, component, kind FROM ttfb.alerts FINAL"
                " WHERE culprit != ''"), timeout=400, describe=tail)
            time.sleep(5)  # anything that would follow the first alert
            alerts = store.query("SELECT DISTINCT alert_id, culprit, component, kind"
                                 " FROM ttfb.alerts FINAL WHERE culprit != ''")
            assert len(alerts) == 1, (alerts, tail())
            assert alerts[0]["culprit"] == culprit, (alert, history)
            assert alerts[0]["component"] == "imports" and alerts[0]["kind"] == "regression"
            # each start put the catalog's thresholds in force (none set: the lab's own)
            assert count(store, "SELECT count() AS n FROM ttfb.events"
                         " WHERE type = 'ThresholdsSet'") >= 2
            planned = store.query("SELECT commit, count() AS n FROM ttfb.watch FINAL"
                                  " WHERE type = 'CommitPlanned' GROUP BY commit")
            assert {r["commit"]: int(r["n"]) for r in planned} == \
                {sha: 1 for sha in [*history, culprit]}
            # the confirmation under way when the lab died is the one that decided:
            # its state came back from the store, not from a new candidate
            confirmed = {r["detection_id"] for r in store.query(
                "SELECT detection_id FROM ttfb.detections FINAL"
                " WHERE type = 'RegressionConfirmed'")}
            assert confirmed and confirmed <= candidates, (confirmed, candidates)
            started = (data / "logs" / "streams.log").read_text(errors="replace")
            assert started.count("rebuilt ") == 2 and "after the checkpoint at" in started, \
                started[-3000:]
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 0, tail()
        wait_until(lambda: not lab_processes(data), timeout=20,
                   describe=lambda: lab_processes(data))
    finally:
        if first.poll() is None:
            first.kill()
        for pid in lab_processes(data):
            os.kill(pid, signal.SIGKILL)


def planner(tmp_path: Path, location: str, sent: list[object]) -> tuple[Watcher, Source]:
    from agents.catalog import load_catalog

    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    source = parse_source(location, settings.data_dir)
    catalog = load_catalog(write_catalog(tmp_path / "catalog.toml"))
    said: list[str] = []
    watcher = Watcher(settings=settings, store=open_store(settings), catalog=catalog,
                      sources=[source], branches=["main"], send=sent.extend, say=said.append)
    return watcher, source


def test_a_force_push_is_recorded_and_only_new_commits_are_planned(tmp_path: Path) -> None:
    from tests.integration.tinyrepo import commit, git

    repo = tmp_path / "repo"
    shas = make_repo(repo, commits=2)
    sent: list[object] = []
    watcher, _ = planner(tmp_path, f"tiny={repo}", sent)
    assert watcher.poll() == 1  # a branch seen first: its tip
    third = commit(repo, "third", touch="NOTES.md")
    assert watcher.poll() == 1 and watcher.poll() == 0  # nothing twice
    git(repo, "reset", "-q", "--hard", shas[0])  # rewrite: the last two vanish
    rewritten = commit(repo, "rewritten", touch="NOTES.md")
    assert watcher.poll() == 1
    store = watcher.store
    notes = store.query("SELECT kind, vanished FROM ttfb.watch FINAL WHERE type = 'WatchNoted'")
    assert [(n["kind"], sorted(n["vanished"])) for n in notes] == \
        [("rewritten", sorted([shas[1], third]))]
    planned = store.query("SELECT commit FROM ttfb.watch FINAL WHERE type = 'CommitPlanned'"
                          " ORDER BY occurred_at")
    assert [r["commit"] for r in planned] == [shas[1], third, rewritten]
    commands = [e for e in sent if isinstance(e, ev.RunRequested)]
    assert [c.commit for c in commands] == [shas[1], third, rewritten]
    assert all(c.signature for c in commands)


def test_unaffected_commits_are_planned_together_and_in_order(tmp_path: Path) -> None:
    from tests.integration.tinyrepo import commit

    repo = tmp_path / "repo"
    make_repo(repo, commits=1)
    notes = [commit(repo, f"notes {i}", touch="NOTES.md") for i in range(4)]
    code = commit(repo, "code", touch="tiny/train.py")
    later = commit(repo, "notes 4", touch="NOTES.md")
    batches: list[list[ev.Event]] = []
    watcher, source = planner(tmp_path, f"tiny={repo}", [])
    watcher.send = batches.append
    said: list[str] = []
    watcher.say = said.append
    planned = watcher.plan_all(source, "main", [*notes, code, later], "backfill",
                               {"tiny": ["tiny/train.py"]})
    assert [p[0].commit for p in planned] == [*notes, code, later]
    assert [bool(p[1]) for p in planned] == [False] * 4 + [True, False]
    # the four commits before the code change go with it, in one store
    # session and one send; the last one alone
    assert len(batches) == 2
    assert [e.commit for e in batches[0] if isinstance(e, ev.CommitPlanned)] == [*notes, code]
    assert [type(e).__name__ for e in batches[1]] == ["ScenarioSkipped", "CommitPlanned"]
    stored = watcher.store.query("SELECT commit FROM ttfb.watch FINAL"
                                 " WHERE type = 'CommitPlanned' ORDER BY occurred_at")
    assert [r["commit"] for r in stored] == [*notes, code, later]
    assert said == [f"tiny/main {notes[0][:10]}..{notes[-1][:10]}: 4 commits, no scenario affected",
                    f"tiny/main {code[:10]}: 3 runs of tiny",
                    f"tiny/main {later[:10]}: no scenario affected"]


def test_a_backfill_whose_commits_mostly_skip_says_how_far_back_its_count_lies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a monorepo, --last 6 may hold one commit the scenario notices; the
    backfill says how far back 6 that it notices lie, and says nothing where
    most commits of the window are measured."""
    from producers import watch as watch_module
    from tests.integration.tinyrepo import commit

    repo = tmp_path / "repo"
    make_repo(repo, commits=1)
    for i in range(5):  # code, then 3 unrelated commits, five times over
        commit(repo, f"code {i}", touch="tiny/train.py")
        for j in range(3):
            commit(repo, f"notes {i}.{j}", touch="NOTES.md")
    monkeypatch.setattr(watch_module.queries, "latest_modules",
                        lambda store: {"tiny": ["tiny/train.py"]})
    watcher, source = planner(tmp_path, f"tiny={repo}", [])
    said: list[str] = []
    watcher.say = said.append
    planned = watcher.backfill(source, "main", 6, None)
    assert [bool(asked) for _, asked in planned] == [False, False, True, False, False, False]
    # the sixth-newest commit touching the code is the repository's first: 21 back
    assert said[-1] == ("tiny/main: 1 of the last 6 commits change what the scenarios import "
                        "or read; the last 6 that do go back 21 commits (--last 21 measures them)")
    watcher.backfill(source, "main", 8, None)  # more asked for than the branch holds
    assert said[-1] == ("tiny/main: 2 of the last 8 commits change what the scenarios import "
                        "or read; the 6 on the branch that do go back 21 commits "
                        "(--last 21 measures them)")
    said.clear()
    commit(repo, "code 5", touch="tiny/train.py")
    commit(repo, "code 6", touch="tiny/train.py")
    watcher.backfill(source, "main", 3, None)  # 2 of 3 measured: nothing to say
    assert not any("go back" in line for line in said)


def test_repositories_that_cannot_be_read_are_recorded_and_named(tmp_path: Path) -> None:
    sent: list[object] = []
    url = f"https://user:s3cret@127.0.0.1:{free_port()}/org/tiny.git"
    watcher, _ = planner(tmp_path, f"tiny={url}", sent)
    assert watcher.poll() == 0 and watcher.poll() == 0
    problems = watcher.store.query(
        "SELECT detail FROM ttfb.watch FINAL WHERE type = 'WatchNoted' AND kind = 'problem'")
    assert len(problems) == 1  # said once, not at every poll
    assert "cannot clone" in problems[0]["detail"] and "s3cret" not in problems[0]["detail"]
    repo = tmp_path / "repo"
    make_repo(repo, commits=1)
    (tmp_path / "b").mkdir()
    watcher, source = planner(tmp_path / "b", f"tiny={repo}", sent)
    watcher.branches = ["release"]
    assert watcher.poll() == 0
    detail = watcher.store.query("SELECT detail FROM ttfb.watch FINAL WHERE kind = 'problem'")
    assert detail[0]["detail"] == "repository 'tiny' has no branch 'release'"


def test_a_remote_is_cloned_once_then_fetched_and_keeps_no_credentials(tmp_path: Path) -> None:
    from agents.sources import update
    from tests.integration.tinyrepo import commit, git

    upstream = tmp_path / "up.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(upstream)], check=True)
    work = tmp_path / "work"
    make_repo(work, commits=1)
    git(work, "push", "-q", str(upstream), "main")
    source = parse_source(f"tiny=file://{upstream}", tmp_path / "data")
    update(source)
    newer = commit(work, "newer", touch="NOTES.md")
    git(work, "push", "-q", str(upstream), "main")
    update(source)
    assert git(source.path, "rev-parse", "refs/heads/main") == newer
    assert f"url = file://{upstream}" in (source.path / "config").read_text()
