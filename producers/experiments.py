"""``ttfb ab``: interleaved A/B runs through the bus (``ttfb check`` runs
them for a pull request: ``producers.check``).

An ARM is any mix of tokens: a revision, ``python=PATH``, ``env=KEY=VALUE``
(repeatable). Both arms run interleaved and counterbalanced (A, B, B, A, ...)
so drift and whatever a run leaves for the next hit both alike; per component
and in total the result is each arm's mean, the delta in ms and %, a 95 %
confidence interval, Welch's p-value and a verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from producers.ab_verdict import ALPHA, MIN_EFFECT_PCT, MIN_SHARE_PCT, verdict_rule
from producers.commands import CommandSender
from ttfb import events as ev
from ttfb.emitter import emit_all
from ttfb.events import COMPONENTS
from ttfb.process import raise_if_interrupted
from ttfb.settings import Settings
from ttfb.stats import benjamini_hochberg, compare, counterbalanced
from ttfb.store import Store

REPO_NAME = "ab"


class ArmError(ValueError):
    pass


BROKEN_AFTER = 3  # an arm's failed runs, none completed, that end an A/B


class ExperimentFailed(RuntimeError):
    """Too few runs of an arm completed to compare the arms (its workflow
    fails there, say): the scenario, and why."""

    def __init__(self, scenario: str, why: str) -> None:
        super().__init__(f"{scenario}: {why}")
        self.scenario, self.why = scenario, why


@dataclass(frozen=True)
class ArmSpec:
    revision: str = "HEAD"
    python: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def label(self, side: str) -> str:
        parts = [self.revision] + ([f"python={self.python}"] if self.python else []) + \
            [f"env={k}={v}" for k, v in sorted(self.env.items())]
        return f"{side}:" + ",".join(parts)


def parse_arm(tokens: list[str]) -> ArmSpec:
    revision, python, env = "HEAD", None, {}
    for token in tokens:
        if token.startswith("python="):
            python = token.split("=", 1)[1]
        elif token.startswith("env="):
            key, sep, value = token[4:].partition("=")
            if not key or not sep:
                raise ArmError(f"env arm {token!r} must look like env=KEY=VALUE")
            env[key] = value
        else:
            revision = token
    return ArmSpec(revision, python, env)


def verdict_for(delta_pct: float, p_value: float, significant: bool) -> str:
    if not significant or abs(delta_pct) < MIN_EFFECT_PCT or p_value >= ALPHA:
        return "no change"
    return "regression" if delta_pct > 0 else "improvement"


def analyse(a: list[dict[str, float]], b: list[dict[str, float]]) -> list[ev.ComponentDelta]:
    """Per component and total: B against A.

    A component counts only when it moved by at least ``MIN_SHARE_PCT`` of
    TTFB (the total always counts); Benjamini-Hochberg at ``ALPHA`` runs over
    those, so noise in the small components neither raises a verdict nor
    dilutes the test of the ones that matter.
    """
    names = [*COMPONENTS, "ttfb"]
    comparisons = [compare([r[n] for r in a], [r[n] for r in b]) for n in names]
    floor = MIN_SHARE_PCT / 100 * comparisons[-1].mean_a
    family = [i for i, c in enumerate(comparisons)
              if names[i] == "ttfb" or abs(c.effect_ms) >= floor]
    kept = benjamini_hochberg([comparisons[i].p_value for i in family], q=ALPHA)
    keep = {i for i, k in zip(family, kept, strict=True) if k}
    return [ev.ComponentDelta(
        component=n, mean_a_ms=c.mean_a, mean_b_ms=c.mean_b, delta_ms=c.effect_ms,
        delta_pct=c.effect_pct, ci_low_pct=c.ci_low_pct, ci_high_pct=c.ci_high_pct,
        p_value=c.p_value, verdict=verdict_for(c.effect_pct, c.p_value, i in keep))  # type: ignore[arg-type]
        for i, (n, c) in enumerate(zip(names, comparisons, strict=True))]


def overall(deltas: list[ev.ComponentDelta]) -> str:
    total = next(d for d in deltas if d.component == "ttfb")
    if total.verdict != "no change":
        return total.verdict
    moved = {d.verdict for d in deltas if d.verdict != "no change"}
    return moved.pop() if len(moved) == 1 else "no change"


def _requests(scenario: str, arms: tuple[ArmSpec, ArmSpec], runs: int,
              experiment_id: str, repo: str = REPO_NAME) -> list[ev.RunRequested]:
    return [ev.RunRequested(
        scenario=scenario, repo=repo, commit=arms[i].revision, runs=1, purpose="ab",
        arm=ev.Arm(label="ab"[i], python=arms[i].python, env=arms[i].env),
        correlation_id=experiment_id, producer="ttfb-ab")
        for i in counterbalanced(runs)]


def _results(store: Store, correlation_id: str, purpose: str = "ab") -> list[dict[str, Any]]:
    return store.query(
        f"SELECT arm, status, ttfb_ms, components, reason, stderr_tail, profile"
        f" FROM {store.db}.runs FINAL"
        " WHERE correlation_id = {c:String} AND purpose = {p:String}",
        {"c": correlation_id, "p": purpose})


def wait_runs(store: Store, correlation_id: str, purpose: str, wanted: int, timeout: float,
              label: str, hopeless: Callable[[list[dict[str, Any]]], bool] | None = None
              ) -> list[dict[str, Any]]:
    """The runs of ``correlation_id`` once ``wanted`` have arrived (or once
    those so far are ``hopeless``), saying how many so far on stderr."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    shown = -1
    while time.monotonic() < deadline:
        raise_if_interrupted()
        rows = _results(store, correlation_id, purpose)
        if len(rows) >= wanted or (hopeless is not None and hopeless(rows)):
            return rows
        if len(rows) != shown:
            shown = len(rows)
            print(f"{label}: {shown}/{wanted} runs", file=sys.stderr, flush=True)
        time.sleep(1.0)
    raise TimeoutError(f"{label}: only {len(rows)} of {wanted} runs arrived")


def run_experiment(settings: Settings, store: Store, scenario: str,
                   arms: tuple[ArmSpec, ArmSpec], runs: int,
                   timeout: float = 1800.0, repo: str = REPO_NAME) -> ev.ExperimentCompleted:
    experiment_id = ev.new_id()
    asyncio.run(CommandSender(settings, "ab").send_all(
        _requests(scenario, arms, runs, experiment_id, repo)))
    def failed(rows: list[dict[str, Any]], arm: str) -> int:
        return sum(r["arm"] == arm and r["status"] != "completed" for r in rows)

    def hopeless(rows: list[dict[str, Any]]) -> bool:
        """An arm whose failed runs leave it fewer than two to compare, or
        with three failed and none completed (its workflow fails there)."""
        return any(failed(rows, arm) > runs - 2 or failed(rows, arm) >= BROKEN_AFTER
                   and not any(r["arm"] == arm and r["status"] == "completed" for r in rows)
                   for arm in "ab")

    rows = wait_runs(store, experiment_id, "ab", 2 * runs, timeout, f"{scenario}: A/B", hopeless)
    sides: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    for r in rows:
        if r["status"] == "completed":
            sides[r["arm"]].append({**r["components"], "ttfb": r["ttfb_ms"]})
    if len(sides["a"]) < 2 or len(sides["b"]) < 2:
        reasons = sorted({ev.failure_summary(r["reason"], r["stderr_tail"])
                          for r in rows if r["status"] != "completed"})
        raise ExperimentFailed(scenario, (
            f"too few runs completed to compare ({arms[0].label('a')}: "
            f"{failed(rows, 'a')} failed, {arms[1].label('b')}: {failed(rows, 'b')} "
            f"failed): {'; '.join(reasons)}"))
    deltas = analyse(sides["a"], sides["b"])
    result = ev.ExperimentCompleted(
        experiment_id=experiment_id, scenario=scenario, arm_a=arms[0].label("a"),
        arm_b=arms[1].label("b"), verdict=overall(deltas), components=deltas,  # type: ignore[arg-type]
        runs_spent=len(rows), producer="ttfb-ab")

    asyncio.run(emit_all(settings, "ab", [(result, "detections")]))
    return result


def as_json(result: ev.ExperimentCompleted) -> dict[str, Any]:
    return {"scenario": result.scenario, "experiment_id": result.experiment_id,
            "a": result.arm_a, "b": result.arm_b, "verdict": result.verdict,
            "runs_spent": result.runs_spent,
            "components": [c.model_dump() for c in result.components]}


def print_table(result: ev.ExperimentCompleted) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result.scenario}: {result.arm_a} vs {result.arm_b} -> "
                        f"{result.verdict} ({result.runs_spent} runs)",
                  caption=verdict_rule(result))
    for column in ("component", "A ms", "B ms", "delta ms", "delta %", "95% CI", "p", "verdict"):
        table.add_column(column, justify="left" if column in ("component", "verdict") else "right")
    for c in result.components:
        table.add_row(c.component, f"{c.mean_a_ms:,.1f}", f"{c.mean_b_ms:,.1f}",
                      f"{c.delta_ms:+,.1f}", f"{c.delta_pct:+.1f}%",
                      f"[{c.ci_low_pct:+.1f}%, {c.ci_high_pct:+.1f}%]", f"{c.p_value:.2g}",
                      c.verdict)
    # a terminal's own width; piped, wide enough that no column is cut
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _same_arms(arms: tuple[ArmSpec, ArmSpec], commits: list[str], scenarios: list[Any],
               here: bool) -> str:
    """Why the two arms run the same thing (the same commit, ``commits`` being
    theirs, and interpreter, and an environment their runs have either way:
    ``env=OMP_NUM_THREADS=1`` is every run's default), "" where they differ.
    The agent's environment is known only where it runs here (``here``: the
    embedded lab)."""
    from agents.runner import RUN_DEFAULTS, run_env

    a, b = arms
    if not here or commits[0] != commits[1] or (a.python or "") != (b.python or ""):
        return ""
    base = dict(os.environ)
    if any(run_env({**s.env, **a.env}, base) != run_env({**s.env, **b.env}, base)
           for s in scenarios):
        return ""
    given = ", ".join(f"env={k}={v}" for arm in arms for k, v in sorted(arm.env.items()))
    return ("the two arms run the same commit with the same interpreter and environment"
            + (f" ({given} is what the runs have anyway: the lab sets "
               f"{', '.join(f'{k}={v}' for k, v in RUN_DEFAULTS.items())} unless the "
               "scenario or the environment does)" if given else "")
            + "; give the arms a difference to measure")


def ab_command(args: argparse.Namespace, settings: Settings) -> int:
    from agents.catalog import load_catalog
    from agents.workspace import WorkspaceError, resolve
    from producers.lab import lab_for
    from ttfb.labinfo import repo_name

    try:
        arms = (parse_arm(args.a), parse_arm(args.b))
    except ArmError as exc:
        print(f"ttfb ab: {exc}", file=sys.stderr)
        return 2
    catalog = load_catalog(settings.catalog)
    scenarios = catalog.names() if args.scenario == ["all"] else args.scenario
    unknown = [s for s in scenarios if catalog.get(s) is None]
    if unknown:
        print(f"ttfb ab: unknown scenario(s) {unknown}; known: {catalog.names()}",
              file=sys.stderr)
        return 2
    results = []
    path = str(Path(args.repo).resolve())
    try:  # before any run: a revision or an interpreter that is not there fails every run
        commits = [resolve(Path(path), arm.revision) for arm in arms]
        for arm in arms:
            # as the agent finds it (a bare name on PATH), where the agent runs
            # here: a cluster's agents may have interpreters this host has not
            if arm.python and settings.embedded_bus and shutil.which(arm.python) is None:
                raise WorkspaceError(f"no interpreter {arm.python} (python= takes an "
                                     "executable file, or a name on PATH)")
        same = _same_arms(arms, commits, [catalog.scenarios[s] for s in scenarios],
                          settings.embedded_bus)
    except WorkspaceError as exc:
        print(f"ttfb ab: {exc}", file=sys.stderr)
        return 2
    if same and any(a.env for a in arms):  # a difference asked for that is none
        print(f"ttfb ab: {same}", file=sys.stderr)
        return 2
    if same:
        print("ttfb ab: both arms are the same (an A/A run): any verdict but no change "
              "is a false alarm", file=sys.stderr)
    # the operator of the lab this command starts allows what the arms ask for;
    # a lab already running keeps its own allowlist, so arms that need one get a lab
    pythons = sorted({a.python for a in arms if a.python})
    env_keys = sorted({k for a in arms for k in a.env})
    settings = settings.model_copy(update={
        "agent_allowed_pythons": [*settings.agent_allowed_pythons, *pythons],
        "agent_allowed_env": [*settings.agent_allowed_env, *env_keys]})
    with lab_for(settings, {REPO_NAME: path}, reuse=not (pythons or env_keys)) as (lab, store):
        for scenario in scenarios:
            try:
                result = run_experiment(lab, store, scenario, arms, args.runs,
                                        repo=repo_name(lab, path, REPO_NAME))
            except ExperimentFailed as exc:
                print(f"ttfb ab: {exc}", file=sys.stderr)
                return 1
            results.append(result)
            if not args.json:
                print_table(result)
    if args.json:
        payload = [as_json(r) for r in results]
        print(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2))
    return 0
