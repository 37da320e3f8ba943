"""Test selection: unaffected scenarios are skipped and recorded, affected ones run."""

import subprocess
from pathlib import Path

from agents.catalog import load_catalog
from producers.scheduler import plan_commit
from tests.unit.test_explain import commit_file

MODULES = {
    "recsys": ["trainlab/recsys/features.py", "trainlab/common/runtime.py"],
    "lm": ["trainlab/lm/train.py", "trainlab/common/runtime.py"],
    "vision": ["trainlab/vision/augment.py", "trainlab/common/runtime.py"],
}


def test_only_scenarios_importing_a_changed_file_run() -> None:
    plan = plan_commit(load_catalog(), "demo", "abc", ["trainlab/lm/train.py"], MODULES, runs=3)
    assert [(r.scenario, r.runs, r.purpose) for r in plan.requests] == [("lm", 3, "monitor")]
    assert sorted((s.scenario, s.reason) for s in plan.skipped) == \
        [("recsys", "unaffected"), ("vision", "unaffected")]


def test_shared_code_affects_every_scenario() -> None:
    plan = plan_commit(load_catalog(), "demo", "abc", ["trainlab/common/runtime.py"], MODULES, 3)
    assert sorted(r.scenario for r in plan.requests) == ["lm", "recsys", "vision"]


def test_docs_only_change_runs_nothing_but_records_why() -> None:
    plan = plan_commit(load_catalog(), "demo", "abc", ["README.md"], MODULES, 3)
    assert plan.requests == [] and len(plan.skipped) == 3


def test_a_scenario_never_run_is_always_affected() -> None:
    plan = plan_commit(load_catalog(), "demo", "abc", ["README.md"], {}, 3)
    assert sorted(r.scenario for r in plan.requests) == ["lm", "recsys", "vision"]


def test_a_scenarios_first_commit_gets_the_runs_a_baseline_needs() -> None:
    """The screen tests a commit against 4 values at least: a first commit of
    3 runs would leave the next one unscreened."""
    known = {"lm": MODULES["lm"]}
    plan = plan_commit(load_catalog(), "demo", "abc", ["trainlab/common/runtime.py"], known, 3,
                       first_runs=4)
    assert sorted((r.scenario, r.runs) for r in plan.requests) == \
        [("lm", 3), ("recsys", 4), ("vision", 4)]


def test_short_capacity_runs_the_most_affected_first() -> None:
    changed = ["trainlab/vision/augment.py", "trainlab/common/runtime.py"]
    plan = plan_commit(load_catalog(), "demo", "abc", changed, MODULES, runs=3, capacity=3)
    assert [r.scenario for r in plan.requests] == ["vision"]
    assert sorted(s.scenario for s in plan.skipped if s.reason == "capacity") == ["lm", "recsys"]


def test_a_merged_pull_request_runs_the_scenarios_whose_files_it_brought_in(
        tmp_path: Path) -> None:
    """A merge commit changes what its pull request changed, against the
    branch's previous commit (a plain ``git show`` of a clean merge lists no
    file, and the merge was skipped as unaffected)."""
    from agents.workspace import changed_files

    repo = tmp_path / "r"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    commit_file(repo, "trainlab/lm/train.py", "steps = 1\n")
    subprocess.run([*git, "checkout", "-q", "-b", "pr"], check=True)
    commit_file(repo, "trainlab/lm/train.py", "steps = 2\n")
    subprocess.run([*git, "checkout", "-q", "main"], check=True)
    commit_file(repo, "README.md", "notes\n")  # the branch moved on: a real merge
    subprocess.run([*git, "merge", "-q", "--no-ff", "-m", "Merge pull request #1", "pr"],
                   check=True)
    assert changed_files(repo, "HEAD") == ["trainlab/lm/train.py"]
    plan = plan_commit(load_catalog(), "demo", "merge", changed_files(repo, "HEAD"), MODULES, 3)
    assert [r.scenario for r in plan.requests] == ["lm"]
