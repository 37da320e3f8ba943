"""``ttfb check`` on a pull request, against a fake of GitHub's REST API on
the loopback address: a check run created then completed, one comment
updated in place across pushes, retries of 5xx, and refusals as sentences."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from producers.github import (
    MARKER,
    GitHub,
    PullRequest,
    Report,
    Scenario,
    grew_text,
    markdown,
    publish,
    pull_request,
    write_report,
)
from tests.receiver import FakeGitHub
from ttfb import events as ev

REPO = "acme/trainer"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    server = FakeGitHub()
    yield server
    server.close()


def report(delta_ms: float, head: str) -> Report:
    verdict = "regression" if delta_ms > 50 else "no change"
    components = [ev.ComponentDelta(
        component=name, mean_a_ms=base, mean_b_ms=base + delta, delta_ms=delta,
        delta_pct=100 * delta / base, ci_low_pct=100 * delta / base - 2,
        ci_high_pct=100 * delta / base + 2, p_value=1e-4 if delta else 0.6,
        verdict=verdict if delta else "no change")  # type: ignore[arg-type]
        for name, base, delta in (("imports", 2000.0, delta_ms), ("ttfb", 3000.0, delta_ms))]
    result = ev.ExperimentCompleted(experiment_id="x", scenario="lm", arm_a="a:base",
                                    arm_b="b:head", verdict=verdict,  # type: ignore[arg-type]
                                    components=components, runs_spent=16)
    grew = [{"name": "trainer.tokenizer", "where": "changed", "good_ms": 0.0,
             "bad_ms": delta_ms, "delta_ms": delta_ms}] if verdict == "regression" else []
    return Report("b" * 40, head, 3, ["lm"], [Scenario(result, grew, "imports")])


def github(fake: FakeGitHub, retries: int = 3) -> GitHub:
    return GitHub("gh-token", fake.url, retries=retries, backoff=0.01)


def test_a_check_run_is_created_then_completed_and_one_comment_is_updated_across_pushes(
        fake: FakeGitHub) -> None:
    said: list[str] = []
    for head, delta in (("1" * 40, 400.0), ("2" * 40, 0.0)):  # a push, then a fix pushed
        pr = PullRequest(REPO, 7, head)
        gh = github(fake)
        check = gh.start_check(pr)
        assert publish(gh, pr, check, report(delta, head), said.append) == []
    assert fake.calls() == [
        ("POST", f"/repos/{REPO}/check-runs"), ("PATCH", f"/repos/{REPO}/check-runs/1"),
        ("GET", f"/repos/{REPO}/issues/7/comments"), ("POST", f"/repos/{REPO}/issues/7/comments"),
        ("POST", f"/repos/{REPO}/check-runs"), ("PATCH", f"/repos/{REPO}/check-runs/3"),
        ("GET", f"/repos/{REPO}/issues/7/comments"),
        ("PATCH", f"/repos/{REPO}/issues/comments/2")]
    first, second = fake.checks[1], fake.checks[3]
    assert (first["head_sha"], first["status"], first["conclusion"]) == \
        ("1" * 40, "completed", "failure")
    assert first["output"]["title"] == "Regression in lm"
    assert "| imports | 2,000.0 | 2,400.0 | +400.0 ms (+20.0%)" in first["output"]["summary"]
    assert (second["head_sha"], second["conclusion"]) == ("2" * 40, "success")
    [comment] = fake.comments.values()  # one comment, updated in place
    assert comment["body"] == markdown(report(0.0, "2" * 40)) and MARKER in comment["body"]
    assert said[-1] == "pull-request comment updated"
    started = fake.requests[0][2]
    assert started["status"] == "in_progress" and started["name"].startswith("ttfb-lab")


def test_a_scenario_whose_workflow_fails_at_the_head_fails_the_check(fake: FakeGitHub) -> None:
    """A head that breaks a scenario's workflow gives no A/B to compare: the
    report says which scenario and why, and the check fails, as for a
    regression; the other scenarios' results stand beside it."""
    head = "3" * 40
    failed = report(0.0, head)
    failed.failed["vision"] = ("too few runs completed to compare (a:base: 0 failed, "
                               "b:head: 3 failed): workflow exited with code 1: "
                               "ModuleNotFoundError: No module named 'timm'")
    assert failed.regression
    text = markdown(failed)
    assert "**A workflow failed**: do not merge as is" in text
    assert "### vision: failed" in text and "No module named 'timm'" in text
    assert "### lm: no change" in text
    pr = PullRequest(REPO, 8, head)
    gh = github(fake)
    assert publish(gh, pr, gh.start_check(pr), failed, lambda _: None) == []
    [check] = fake.checks.values()
    assert check["conclusion"] == "failure"
    assert check["output"]["title"] == "Workflow failed in vision"
    assert not report(0.0, head).regression


def test_server_errors_are_retried_and_refusals_are_sentences(fake: FakeGitHub) -> None:
    pr = PullRequest(REPO, 7, "1" * 40)
    fake.fail[("POST", "/check-runs")] = [502, 503]
    assert github(fake).start_check(pr) == 1  # third time lucky
    assert fake.calls().count(("POST", f"/repos/{REPO}/check-runs")) == 3
    fake.fail[("PATCH", "/check-runs/1")] = [403]
    fake.fail[("GET", "/comments")] = [422]
    problems = publish(github(fake), pr, 1, report(400.0, "1" * 40), lambda _: None)
    assert len(problems) == 2  # the comment was still tried after the check run failed
    assert problems[0].startswith(f"check run: GitHub answered 403 to PATCH /repos/{REPO}/")
    assert "checks: write" in problems[0]
    assert problems[1].startswith("comment: GitHub answered 422") and "gh-token" not in \
        " ".join(problems)
    fake.fail[("POST", "/check-runs")] = [500] * 10
    problems = publish(github(fake, retries=1), PullRequest(REPO, None, "1" * 40), None,
                       report(0.0, "1" * 40), lambda _: None)
    assert problems and "answered 500" in problems[0]


def test_a_wrong_token_and_an_unreachable_api_are_named() -> None:
    server = FakeGitHub(token="other")
    try:
        problems = publish(GitHub("gh-token", server.url, retries=0), PullRequest(REPO, 1, "a"),
                           None, report(0.0, "a"), lambda _: None)
    finally:
        server.close()
    assert "401" in problems[0] and "missing, expired or wrong" in problems[0]
    from ttfb.bus import free_port

    gone = GitHub("gh-token", f"http://127.0.0.1:{free_port()}", retries=0)
    problems = publish(gone, PullRequest(REPO, 1, "a"), None, report(0.0, "a"), lambda _: None)
    assert problems[0].startswith("check run: GitHub API unreachable")


def test_the_report_renders_and_goes_to_the_step_summary(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    text = markdown(report(400.0, "1" * 40))
    assert "**Regression found**" in text
    assert "| imports | 2,000.0 | 2,400.0 | +400.0 ms (+20.0%) | [+18.0%, +22.0%] | 0.0001 " \
           "| **regression** |" in text
    assert "What grew in imports (-X importtime)" in text
    # what "no change" means, in this report's milliseconds (1.5 % of 3,000)
    assert "no change: moved less than 45 ms (1.5 % of A's TTFB)" in text
    assert "| `trainer.tokenizer` | changed | 0.0 | 400.0 | +400.0 |" in text
    shown = grew_text(report(400.0, "1" * 40).scenarios[0])  # the same, on a terminal
    assert shown == ["what grew in imports (-X importtime), the least of each side's profiled"
                     " runs:", "  trainer.tokenizer  changed  0.0 -> 400.0 ms (+400.0)"]
    assert grew_text(report(0.0, "1" * 40).scenarios[0]) == []
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert write_report(text, None) == str(summary)
    assert summary.read_text() == "earlier step\n" + text  # appended, as GitHub expects
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert write_report(text, None) is None


def test_the_pull_request_comes_from_the_actions_event(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 42, "head": {"sha": "f" * 40}}}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    assert pull_request(None, None, "merge") == PullRequest(REPO, 42, "f" * 40)
    assert pull_request("o/r", 5, "merge") == PullRequest("o/r", 5, "f" * 40)
    monkeypatch.delenv("GITHUB_REPOSITORY")
    monkeypatch.delenv("GITHUB_EVENT_PATH")
    assert pull_request(None, None, "h") is None
    from producers.github import GitHubError

    with pytest.raises(GitHubError, match="OWNER/NAME"):
        pull_request("just-a-name", None, "h")


def test_the_example_workflow_runs_a_check_the_cli_accepts() -> None:
    import shlex

    import yaml

    from ttfb.cli import parser

    path = Path(__file__).resolve().parents[2] / "examples" / "github" / "ttfb-check.yml"
    workflow = yaml.safe_load(path.read_text())
    job = workflow["jobs"]["ttfb"]
    assert workflow["permissions"]["checks"] == "write"
    assert workflow["permissions"]["pull-requests"] == "write"
    step = job["steps"][-1]
    assert step["env"]["TTFB_GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    command = step["run"].replace("${{ github.base_ref }}", "main").replace(
        "${{ github.event.pull_request.head.sha }}", "f" * 40)
    args = parser().parse_args(shlex.split(command)[1:])
    assert (args.command, args.base, args.head, args.runs) == ("check", "origin/main", "f" * 40, 8)


