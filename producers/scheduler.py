"""The scheduler: which scenarios a new commit needs, within a capacity budget.

Test selection: a scenario whose repository files (the modules it imported and
the files it read, such as configs and data, recorded by the agent on
earlier runs) do not intersect the files a commit changed is skipped and
recorded as ``ScenarioSkipped(reason="unaffected")``. A scenario never run
before is always affected. When capacity is short, scenarios with the most
changed modules run first. Cheap scenarios run on every commit, the rest on
release tags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agents.catalog import Catalog
from agents.workspace import git
from ttfb import events as ev


@dataclass(frozen=True)
class Plan:
    requests: list[ev.RunRequested] = field(default_factory=list)
    skipped: list[ev.ScenarioSkipped] = field(default_factory=list)


def plan_commit(catalog: Catalog, repo: str, commit: str, changed: Sequence[str],
                modules: Mapping[str, Sequence[str]], runs: int, capacity: int | None = None,
                release: bool = False, branch: str = "main", purpose: str = "monitor",
                first_runs: int = 0) -> Plan:
    """Requests for the affected scenarios of one commit; skips for the others.
    A scenario never run (no modules known) gets ``first_runs`` runs where that
    is more than ``runs``: its first commit is the baseline the next one is
    screened against."""
    changed_set = set(changed)
    scored: list[tuple[int, str]] = []
    skipped: list[ev.ScenarioSkipped] = []
    for name in catalog.names():
        scenario = catalog.scenarios[name]
        if scenario.repo != repo and repo not in ("demo",):
            continue
        if not (scenario.cheap or release):
            skipped.append(ev.ScenarioSkipped(scenario=name, repo=repo, commit=commit,
                                              branch=branch, reason="not cheap: release only",
                                              producer="ttfb-scheduler"))
            continue
        known = set(modules.get(name, ()))
        overlap = len(known & changed_set) if known else len(changed_set) or 1
        if known and overlap == 0:
            skipped.append(ev.ScenarioSkipped(scenario=name, repo=repo, commit=commit,
                                              branch=branch, reason="unaffected",
                                              producer="ttfb-scheduler"))
            continue
        scored.append((overlap, name))
    scored.sort(key=lambda item: (-item[0], item[1]))  # most likely affected first
    budget = len(scored) if capacity is None else max(0, capacity // max(runs, 1))
    requests = [ev.RunRequested(scenario=name, repo=repo, commit=commit, branch=branch,
                                runs=runs if modules.get(name) else max(runs, first_runs),
                                purpose=purpose,  # type: ignore[arg-type]
                                producer="ttfb-scheduler", hardware_class=cls,
                                event_id=plan_id(repo, branch, commit, name, *cls_part),
                                request_id=plan_id(repo, branch, commit, name, "request",
                                                   *cls_part))
                for _, name in scored[:budget]
                for cls in catalog.scenarios[name].hardware or [""]
                for cls_part in [[cls] if cls else []]]
    skipped += [ev.ScenarioSkipped(scenario=name, repo=repo, commit=commit, branch=branch,
                                   reason="capacity", producer="ttfb-scheduler")
                for _, name in scored[budget:]]
    # a commit planned again (a restarted watcher, a backfill of a watched commit)
    # yields the very same ids, so the store and the agents see one plan
    skipped = [s.model_copy(update={"event_id": plan_id(repo, branch, commit, s.scenario,
                                                         "skip")}) for s in skipped]
    return Plan(requests, skipped)


def plan_id(repo: str, branch: str, commit: str, *parts: str) -> str:
    return ev.derived_id("plan", repo, branch, commit, *parts)


def new_commits(repo: Path, branch: str, since: str | None) -> list[str]:
    """Commits on ``branch`` after ``since`` (all, oldest first, when None)."""
    span = f"{since}..{branch}" if since else branch
    out = git(repo, "rev-list", "--reverse", "--first-parent", "--end-of-options", span)
    return [line for line in out.splitlines() if line]


def is_release(repo: Path, commit: str) -> bool:
    tags = git(repo, "tag", "--points-at", commit).split()
    return any(t.startswith("v") or t.startswith("release") for t in tags)
