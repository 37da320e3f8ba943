"""``ttfb check`` as a pull request's job runs it: a real repository whose
head makes imports slower, real runs in an embedded lab, a fake GitHub API
on the loopback address, the step summary a file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.tinyrepo import commit, make_repo, set_import_cost, write_catalog
from tests.receiver import FakeGitHub

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_check_reports_a_regression_on_the_pull_request(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, import_s=0.2, commits=1)
    set_import_cost(repo, 0.6, "load the heavy table eagerly")
    # the pull request's last commit only comments the module that imports it
    head = commit(repo, "a comment", touch="tiny/train.py")
    github = FakeGitHub()
    summary = tmp_path / "summary.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TTFB_", "GITHUB_"))}
    env.update(TTFB_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1",
               TTFB_CATALOG=str(write_catalog(tmp_path / "catalog.toml")),
               TTFB_GITHUB_TOKEN="gh-token", TTFB_GITHUB_API_URL=github.url,
               GITHUB_STEP_SUMMARY=str(summary))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ttfb.cli", "check", "--repo", str(repo), "--base", "HEAD~2",
             "--runs", "3", "--github-repo", "acme/tiny", "--pr", "9"],
            env=env, capture_output=True, text=True, timeout=400, cwd=ROOT)
    finally:
        github.close()
    assert done.returncode == 1, done.stdout + done.stderr  # a regression fails the check
    assert "regression found" in done.stdout
    [check] = github.checks.values()
    assert (check["head_sha"], check["status"], check["conclusion"]) == \
        (head, "completed", "failure")
    [comment] = github.comments.values()
    text = summary.read_text()
    assert comment["body"] == text == check["output"]["summary"]
    assert "### tiny: regression" in text and "| imports |" in text
    # what grew: the module an earlier commit of the pull request changed
    # first; the one its last commit only commented is not counted changed,
    # though its import holds the other's
    grew = text.split("What grew in imports")[1].splitlines()
    first = next(line for line in grew if line.startswith("| `"))
    assert first.startswith("| `tiny.heavy` | changed |"), text
    assert not any(line.startswith("| `tiny.train` | changed |") for line in grew), text
    # and on the terminal, under the table
    [_, shown] = done.stdout.split("what grew in imports (-X importtime)")
    shown = shown.splitlines()
    assert shown[1].startswith("  tiny.heavy  changed  "), done.stdout


def test_an_arm_whose_workflow_fails_ends_the_ab_with_its_error(tmp_path: Path) -> None:
    """A revision where the workflow fails gives nothing to compare: the A/B
    stops once that arm's first runs have all failed (not after every run
    asked for) and says why in a sentence, the workflow's own error in it."""
    repo = tmp_path / "repo"
    make_repo(repo, import_s=0.1, commits=1)
    train = repo / "tiny" / "train.py"
    train.write_text(train.read_text().replace(
        "def main(config):\n", "def main(config):\n    raise KeyError('batch_size')\n"))
    commit(repo, "read the batch size from the config")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env.update(TTFB_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1",
               TTFB_CATALOG=str(write_catalog(tmp_path / "catalog.toml")))
    done = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "ab", "--scenario", "tiny", "--repo", str(repo),
         "--a", "HEAD~1", "--b", "HEAD", "--runs", "8"],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [said] = [line for line in done.stderr.splitlines() if line.startswith("ttfb ab:")]
    assert "tiny: too few runs completed to compare" in said and "KeyError" in said, said
    shown = [int(line.split(": ")[-1].split("/")[0]) for line in done.stderr.splitlines()
             if line.startswith("tiny: A/B: ")]
    assert shown and max(shown) < 16, done.stderr  # it stopped before every run was in
    # the same head in a pull request's check: it fails, and its report says why
    summary = tmp_path / "summary.md"
    done = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "check", "--repo", str(repo), "--base", "HEAD~1",
         "--runs", "4", "--report", str(summary)],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "a workflow failed: do not merge as is" in done.stdout
    text = summary.read_text()
    assert "**A workflow failed**" in text and "### tiny: failed" in text
    assert "KeyError: 'batch_size'" in text
