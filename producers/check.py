"""``ttfb check``: a pull request's A/B, the merge base against the head,
over the affected CPU scenarios (``producers.experiments``), with what grew
in a regressed one from profiled runs of each side; a Markdown report, and
with a token a GitHub check run and one comment (``producers.github``)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producers.commands import CommandSender
from producers.experiments import (
    REPO_NAME,
    ArmSpec,
    ExperimentFailed,
    as_json,
    print_table,
    run_experiment,
    wait_runs,
)
from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.store import Store

if TYPE_CHECKING:
    from producers.github import PullRequest, Report

PROFILED_RUNS = 2  # a side, for what grew: a module one run loaded lazily counts at its least


def what_grew(settings: Settings, store: Store, result: ev.ExperimentCompleted,
              arms: tuple[ArmSpec, ArmSpec], repo: str,
              timeout: float = 900.0) -> tuple[str, list[dict[str, Any]]]:
    """The regressed component that grew most, and what grew in it between
    the arms' profiled runs (imports: modules by ``-X importtime``; other
    components: functions by cumulative time), what the change touched
    first: the code every commit from base to head changed, as the head's
    profiled runs mark it."""
    from streams.bisect.verdict import aligned, grown, least

    parts = [c for c in result.components if c.component != "ttfb"]
    regressed = [c for c in parts if c.verdict == "regression"] or parts
    component = max(regressed, key=lambda c: c.delta_ms).component
    correlation = f"{result.experiment_id}:profile"
    asyncio.run(CommandSender(settings, "ab").send_all([ev.RunRequested(
        scenario=result.scenario, repo=repo, commit=arms[i].revision, runs=1,
        purpose="explain", profile=True, arm=ev.Arm(label="ab"[i], python=arms[i].python,
                                                      env=arms[i].env),
        # the head's runs mark what every commit since the base changed
        changed_since=arms[0].revision if i and arms[0].revision != arms[1].revision else "",
        correlation_id=correlation, producer="ttfb-check")
        for i in (0, 1) * PROFILED_RUNS]))
    rows = wait_runs(store, correlation, "explain", 2 * PROFILED_RUNS, timeout,
                     f"{result.scenario}: profiled")
    key = "imports_ms" if component == "imports" else "cumulative_ms"
    sides: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    ours: list[str] = []
    changed: list[str] = []
    for row in rows:
        profile = json.loads(row["profile"] or "{}")
        if row["status"] != "completed" or not profile.get(key):
            continue
        sides[row["arm"]].append({str(k): float(v) for k, v in profile[key].items()})
        ours += [n for n in profile.get("repository", []) if n not in ours]
        if row["arm"] == "b":
            changed += [n for n in profile.get("changed", []) if n not in changed]
    if not sides["a"] or not sides["b"]:
        return component, []
    after = least(sides["b"])
    return component, grown(aligned(least(sides["a"]), after), after, changed=changed, ours=ours)


def check_command(args: argparse.Namespace, settings: Settings) -> int:
    """A/B of the merge base against the head over the affected CPU scenarios;
    a Markdown report, and with a GitHub token a check run and a comment."""
    from producers.github import GitHubError, pull_request

    token = settings.github_token.get_secret_value()
    try:
        pr = pull_request(args.github_repo, args.pr, "") if token else None
    except GitHubError as exc:
        print(f"ttfb check: {exc}", file=sys.stderr)
        return 2
    if (args.github_repo or args.pr) and not token:
        print("ttfb check: --github-repo/--pr need a token in TTFB_GITHUB_TOKEN (in Actions: "
              "the job's GITHUB_TOKEN)", file=sys.stderr)
        return 2
    if token and pr is None:
        print("ttfb check: TTFB_GITHUB_TOKEN is set but no repository is named "
              "(--github-repo OWNER/NAME, or GITHUB_REPOSITORY in Actions): nothing is posted",
              file=sys.stderr)
    return _check(args, settings, pr)


def _compare(lab: Settings, store: Store, scenario: str, arms: tuple[ArmSpec, ArmSpec],
             repo: str, args: argparse.Namespace, report: Report) -> None:
    """One affected scenario's A/B, and what grew where it regressed, into
    ``report``; a scenario whose workflow fails at an arm goes in as failed."""
    from producers.github import Scenario, grew_text

    try:
        result = run_experiment(lab, store, scenario, arms, args.runs, repo=repo)
    except ExperimentFailed as exc:  # the head breaks the workflow, say
        report.failed[exc.scenario] = exc.why
        print(f"ttfb check: {exc}", file=sys.stderr)
        return
    entry = Scenario(result)
    if result.verdict == "regression":
        entry.grew_component, entry.grew = what_grew(lab, store, result, arms, repo)
    report.scenarios.append(entry)
    if not args.json:
        print_table(result)
        for line in grew_text(entry):
            print(line)


def _check(args: argparse.Namespace, settings: Settings, pr: PullRequest | None) -> int:
    from agents.catalog import load_catalog
    from agents.workspace import WorkspaceError, git, resolve
    from producers.github import (
        GitHub,
        GitHubError,
        Report,
        markdown,
        publish,
        write_report,
    )
    from producers.lab import lab_for
    from ttfb.labinfo import repo_name
    from ttfb.store import open_store, queries

    repo = Path(args.repo).resolve()
    try:
        head = resolve(repo, args.head)
        base = git(repo, "merge-base", "--end-of-options", resolve(repo, args.base), head).strip()
        changed = git(repo, "diff", "--name-only", "--end-of-options", base, head).split()
    except WorkspaceError as exc:
        print(f"ttfb check: {exc}", file=sys.stderr)
        return 2
    catalog = load_catalog(settings.catalog)
    known = queries.latest_modules(open_store(settings))
    affected = [n for n in catalog.names() if catalog.scenarios[n].cheap and catalog.scenarios[
        n].device != "cuda" and (n not in known or set(known[n]) & set(changed))]
    say = (lambda m: print(m, file=sys.stderr)) if args.json else print
    say(f"changed files: {len(changed)}; affected CPU scenarios: {affected or 'none'}")
    report = Report(base, head, len(changed), affected, [])
    github, check_id = None, None
    if pr is not None:
        github = GitHub(settings.github_token.get_secret_value(), settings.github_api_url)
        # the Actions event's pull-request head, else the head resolved here
        pr = pr if pr.head_sha else dataclasses.replace(pr, head_sha=head)
        try:
            check_id = github.start_check(pr)
        except GitHubError as exc:
            report.problems.append(f"check run: {exc}")
    arms = (ArmSpec(base), ArmSpec(head))
    with lab_for(settings, {REPO_NAME: str(repo)}) as (lab, store):
        name = repo_name(lab, str(repo), REPO_NAME)
        for scenario in affected:
            _compare(lab, store, scenario, arms, name, args, report)
    if github is not None and pr is not None:
        report.problems += publish(github, pr, check_id, report, say)
    for problem in report.problems:
        print(f"ttfb check: could not update the pull request: {problem}", file=sys.stderr)
    written = write_report(markdown(report), args.report)
    if written:
        say(f"report: {written}")
    worst = int(report.regression)
    if args.json:
        print(json.dumps({"base": base, "head": head, "changed_files": len(changed),
                          "affected": affected, "regression": bool(worst),
                          "problems": report.problems, "failed": report.failed,
                          "experiments": [{**as_json(s.result), "what_grew": s.grew}
                                          for s in report.scenarios]},
                         indent=2))
    else:
        print(("a workflow failed: do not merge as is" if report.failed else
               "regression found: do not merge as is") if worst else "no regression found")
    # a regression fails the check; otherwise a report that could not be
    # delivered where it was asked is not the result asked for
    return worst or (3 if report.problems else 0)
