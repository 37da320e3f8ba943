"""The A/B verdict, checked over many seeded experiments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from producers.experiments import analyse, overall, parse_arm, print_table
from ttfb import events as ev

BASE = {"queue": 50.0, "startup": 45.0, "imports": 2000.0, "config": 5.0, "data": 400.0,
        "model": 1600.0, "first_step": 20.0}


def arm(rng: np.random.Generator, runs: int, cv: float,
        shift: dict[str, float] | None = None) -> list[dict[str, float]]:
    rows = []
    for _ in range(runs):
        row = {k: v * (1 + (shift or {}).get(k, 0.0)) * float(rng.lognormal(0, cv))
               for k, v in BASE.items()}
        row["ttfb"] = sum(row.values())
        rows.append(row)
    return rows


def test_aa_experiments_rarely_claim_a_change() -> None:
    rng = np.random.default_rng(31)
    trials = 1000
    claimed = sum(overall(analyse(arm(rng, 10, 0.10), arm(rng, 10, 0.10))) != "no change"
                  for _ in range(trials))
    # BH at 0.05 over the components that matter: at most ~5 % (binomial sd 0.7 %)
    assert claimed / trials <= 0.065


def test_a_lazy_import_is_found_in_imports_at_ten_runs() -> None:
    rng = np.random.default_rng(32)
    trials = 300
    found = 0
    for _ in range(trials):
        deltas = {d.component: d for d in analyse(arm(rng, 10, 0.10),
                                                  arm(rng, 10, 0.10, {"imports": -0.15}))}
        found += deltas["imports"].verdict == "improvement"
        assert deltas["data"].verdict != "regression" or deltas["data"].p_value < 0.05
    assert found / trials >= 0.8


def test_arms_parse_revisions_interpreters_and_env() -> None:
    spec = parse_arm(["HEAD~1", "python=/usr/bin/python3.12", "env=PYTHON_LAZY=1"])
    assert (spec.revision, spec.python, spec.env) == ("HEAD~1", "/usr/bin/python3.12",
                                                      {"PYTHON_LAZY": "1"})
    assert spec.label("a") == "a:HEAD~1,python=/usr/bin/python3.12,env=PYTHON_LAZY=1"


def test_the_table_says_why_a_small_move_with_a_small_p_is_no_change(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A component that moved less than 1.5 % of TTFB is "no change" whatever
    its p: the table says so, in the experiment's own milliseconds."""
    rng = np.random.default_rng(33)
    deltas = analyse(arm(rng, 20, 0.02), arm(rng, 20, 0.02, {"first_step": 0.5}))
    small = next(d for d in deltas if d.component == "first_step")
    assert small.p_value < 0.05 and small.verdict == "no change"
    print_table(ev.ExperimentCompleted(experiment_id="x", scenario="lm", arm_a="a:HEAD~1",
                                       arm_b="b:HEAD", verdict=overall(deltas),  # type: ignore[arg-type]
                                       components=deltas, runs_spent=40))
    floor = 0.015 * next(d for d in deltas if d.component == "ttfb").mean_a_ms
    said = " ".join(capsys.readouterr().out.split())  # the caption wraps with the table
    assert f"no change: moved less than {floor:,.0f} ms (1.5 % of A's TTFB)" in said


def test_arms_differ_by_commit_interpreter_or_an_environment_the_runs_would_not_have(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.catalog import Scenario
    from agents.workspace import resolve
    from producers.experiments import _same_arms

    root = Path(__file__).resolve().parents[2]  # this repository: HEAD and HEAD~1 exist
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    plain = [Scenario(name="s", repo="r", script="t.py")]
    threads = [Scenario(name="s", repo="r", script="t.py", env={"OMP_NUM_THREADS": "4"})]

    def same(a: list[str], b: list[str], scenarios: list[Scenario] = plain,
             here: bool = True) -> bool:
        arms = (parse_arm(a), parse_arm(b))
        commits = [resolve(root, arm.revision) for arm in arms]
        return bool(_same_arms(arms, commits, scenarios, here))

    assert same(["HEAD"], ["env=OMP_NUM_THREADS=1"])  # the runs' default
    assert not same(["HEAD"], ["env=OMP_NUM_THREADS=2"])
    assert not same(["HEAD"], ["env=OMP_NUM_THREADS=1"], threads)  # the scenario sets 4
    assert not same(["HEAD~1"], ["HEAD"])
    assert not same(["HEAD"], ["HEAD", "python=python3.11"])
    assert not same(["HEAD"], ["HEAD"], here=False)  # a cluster agent's environment is its own
    monkeypatch.setenv("OMP_NUM_THREADS", "8")  # the agent's environment sets it
    assert not same(["HEAD"], ["env=OMP_NUM_THREADS=1"])
