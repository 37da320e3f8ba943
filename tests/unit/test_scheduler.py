"""Test selection: unaffected scenarios are skipped and recorded, affected ones run."""

from agents.catalog import load_catalog
from producers.scheduler import plan_commit

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
