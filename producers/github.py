"""``ttfb check`` on pull requests: a Markdown report, a GitHub check run and
one pull-request comment that each push updates in place.

The REST calls (https://docs.github.com/en/rest/checks/runs,
https://docs.github.com/en/rest/issues/comments) go through ``requests``
with urllib3's ``Retry``: 5xx answers and dropped connections are retried
with backoff; 401, 403, 404 and 422 are not, and come back as a sentence
that says what the token lacks. The token is a secret: it is sent in the
``Authorization`` header and never printed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producers.ab_verdict import verdict_rule
from ttfb import events as ev

MARKER = "<!-- ttfb-lab check -->"
CHECK_NAME = "ttfb-lab: time to first batch"
MAX_SUMMARY = 65_000  # GitHub refuses a check run's summary over 65,535 characters

HINTS = {
    401: "the token is missing, expired or wrong",
    403: "the token may not do this: in Actions give the job `permissions: checks: write` "
         "and `pull-requests: write`; a pull request from a fork gets a read-only token",
    404: "no such repository or pull request, or the token cannot see it",
    422: "GitHub refused the request's content",
}


class GitHubError(RuntimeError):
    """A GitHub API call failed; the message says which and why."""


@dataclass
class Scenario:
    """One scenario's A/B, and what grew in its slowest regressed component."""
    result: ev.ExperimentCompleted
    grew: list[dict[str, Any]] = field(default_factory=list)
    grew_component: str = ""


@dataclass
class Report:
    base: str
    head: str
    changed_files: int
    affected: list[str]
    scenarios: list[Scenario]
    problems: list[str] = field(default_factory=list)
    # scenarios too few of whose runs completed to compare (the head breaks
    # the workflow, say), and why; each fails the check
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def regression(self) -> bool:
        return bool(self.failed) or any(s.result.verdict == "regression"
                                        for s in self.scenarios)


# --- Markdown -------------------------------------------------------------

def _ms(value: float) -> str:
    return f"{value:,.1f}"


def _grew_title(scenario: Scenario) -> str:
    return "imports (-X importtime)" if scenario.grew_component == "imports" else \
        f"{scenario.grew_component} (cProfile, cumulative)"


def grew_text(scenario: Scenario, top: int = 5) -> list[str]:
    """The first entries of what grew, for a terminal."""
    if not scenario.grew:
        return []
    return [f"what grew in {_grew_title(scenario)}, the least of each side's profiled runs:"] + [
        f"  {g['name']}  {g.get('where', '')}  {_ms(g['good_ms'])} -> {_ms(g['bad_ms'])} ms"
        f" ({g['delta_ms']:+,.1f})" for g in scenario.grew[:top]]


def markdown(report: Report) -> str:
    """The report as GitHub renders it (step summary, check run, comment)."""
    verdict = "**A workflow failed**: do not merge as is" if report.failed else \
        "**Regression found**: do not merge as is" if report.regression else \
        "No regression found"
    lines = [MARKER, f"## ttfb-lab: time to first batch, `{report.base[:10]}` → "
                     f"`{report.head[:10]}`", "",
             f"{verdict}. {report.changed_files} changed file(s); affected CPU scenarios: "
             f"{', '.join(report.affected) or 'none'}.", ""]
    for name, why in report.failed.items():
        lines += [f"### {name}: failed", "", f"```\n{why}\n```", ""]
    for scenario in report.scenarios:
        r = scenario.result
        lines += [f"### {r.scenario}: {r.verdict} ({r.runs_spent} runs, interleaved)", "",
                  "| component | before (ms) | after (ms) | delta | 95% CI | p | verdict |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for c in r.components:
            mark = f"**{c.verdict}**" if c.verdict != "no change" else c.verdict
            lines.append(f"| {c.component} | {_ms(c.mean_a_ms)} | {_ms(c.mean_b_ms)} | "
                         f"{c.delta_ms:+,.1f} ms ({c.delta_pct:+.1f}%) | "
                         f"[{c.ci_low_pct:+.1f}%, {c.ci_high_pct:+.1f}%] | {c.p_value:.2g} | "
                         f"{mark} |")
        lines += ["", f"<sub>{verdict_rule(r)}</sub>"]
        if scenario.grew:
            lines += ["", f"<details open><summary>What grew in {_grew_title(scenario)}: the "
                          "least of each side's profiled runs</summary>", "",
                      "| name | where | before (ms) | after (ms) | delta (ms) |",
                      "|---|---|---:|---:|---:|"]
            lines += [f"| `{g['name']}` | {g.get('where', '')} | {_ms(g['good_ms'])} | "
                      f"{_ms(g['bad_ms'])} | {g['delta_ms']:+,.1f} |" for g in scenario.grew]
            lines += ["", "</details>"]
        lines.append("")
    for problem in report.problems:
        lines.append(f"> :warning: {problem}")
    return "\n".join(lines).rstrip() + "\n"


def write_report(text: str, path: str | None) -> str | None:
    """Append the report to ``path``, else to ``$GITHUB_STEP_SUMMARY`` when
    set (where GitHub expects appends); the path written, or None."""
    target = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as out:
        out.write(text)
    return target


# --- the pull request from the environment ---------------------------------

@dataclass(frozen=True)
class PullRequest:
    repository: str  # owner/name
    number: int | None
    head_sha: str


def pull_request(repository: str | None, number: int | None,
                 head_sha: str) -> PullRequest | None:
    """Where to publish: the arguments, else GitHub Actions' environment
    (``GITHUB_REPOSITORY``, the event file's pull request); None without a
    repository."""
    event: dict[str, Any] = {}
    path = os.environ.get("GITHUB_EVENT_PATH")
    if path and Path(path).is_file():
        try:
            event = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            event = {}
    pr = event.get("pull_request") or {}
    repository = repository or os.environ.get("GITHUB_REPOSITORY")
    if not repository:
        return None
    if "/" not in repository.strip("/") or repository.count("/") != 1:
        raise GitHubError(f"the repository must be OWNER/NAME, not {repository!r}")
    head = str((pr.get("head") or {}).get("sha") or head_sha)
    return PullRequest(repository, number or pr.get("number"), head)


# --- the API ----------------------------------------------------------------

class GitHub:
    def __init__(self, token: str, api_url: str = "https://api.github.com",
                 retries: int = 3, backoff: float = 0.5, timeout: float = 20.0) -> None:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.api_url, self.timeout = api_url.rstrip("/"), timeout
        self.session = requests.Session()
        self.session.headers.update({
            "Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "ttfb-lab"})
        retry = Retry(total=retries, backoff_factor=backoff, status_forcelist=(500, 502, 503, 504),
                      allowed_methods=None, raise_on_status=False)
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import requests

        try:
            response = self.session.request(method, self.api_url + path, json=body,
                                            timeout=self.timeout)
        except requests.RequestException as exc:
            raise GitHubError(f"GitHub API unreachable for {method} {path}: "
                              f"{type(exc).__name__}") from None
        if response.status_code >= 300:
            try:
                message = str(response.json().get("message", ""))
            except ValueError:
                message = response.text[:200]
            hint = HINTS.get(response.status_code, "GitHub's side failed; retried")
            raise GitHubError(f"GitHub answered {response.status_code} to {method} {path}"
                              f"{': ' + message if message else ''} ({hint})")
        return response.json() if response.content else None

    def start_check(self, pr: PullRequest) -> int:
        run = self.call("POST", f"/repos/{pr.repository}/check-runs", {
            "name": CHECK_NAME, "head_sha": pr.head_sha, "status": "in_progress",
            "started_at": _now()})
        return int(run["id"])

    def finish_check(self, pr: PullRequest, check_id: int, report: Report, text: str) -> None:
        conclusion = "failure" if report.regression else "success"
        regressed = [s.result.scenario for s in report.scenarios
                     if s.result.verdict == "regression"]
        title = "; ".join(([f"Workflow failed in {', '.join(report.failed)}"]
                           if report.failed else [])
                          + ([f"Regression in {', '.join(regressed)}"] if regressed else [])) \
            or "No regression in time to first batch"
        self.call("PATCH", f"/repos/{pr.repository}/check-runs/{check_id}", {
            "status": "completed", "conclusion": conclusion, "completed_at": _now(),
            "output": {"title": title, "summary": text[:MAX_SUMMARY]}})

    def upsert_comment(self, pr: PullRequest, text: str) -> str:
        """The pull request's one ttfb-lab comment, updated in place (found by
        its marker); created the first time. Returns 'created' or 'updated'."""
        page = 1
        while True:
            comments = self.call(
                "GET", f"/repos/{pr.repository}/issues/{pr.number}/comments"
                       f"?per_page=100&page={page}") or []
            mine = next((c for c in comments if MARKER in str(c.get("body", ""))), None)
            if mine is not None:
                self.call("PATCH", f"/repos/{pr.repository}/issues/comments/{mine['id']}",
                          {"body": text})
                return "updated"
            if len(comments) < 100:
                break
            page += 1
        self.call("POST", f"/repos/{pr.repository}/issues/{pr.number}/comments", {"body": text})
        return "created"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def publish(github: GitHub, pr: PullRequest, check_id: int | None, report: Report,
            say: Callable[[str], None] = print) -> list[str]:
    """Complete the check run (creating it first where starting it failed)
    and update the comment; the problems met, one call's failure not
    stopping the other."""
    problems: list[str] = []
    text = markdown(report)
    try:
        if check_id is None:
            check_id = github.start_check(pr)
        github.finish_check(pr, check_id, report, text)
        say(f"check run {check_id}: {'failure' if report.regression else 'success'}")
    except GitHubError as exc:
        problems.append(f"check run: {exc}")
    if pr.number:
        try:
            say(f"pull-request comment {github.upsert_comment(pr, text)}")
        except GitHubError as exc:
            problems.append(f"comment: {exc}")
    return problems
