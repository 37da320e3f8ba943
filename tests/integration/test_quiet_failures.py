"""Bad input ends in a sentence and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def ttfb(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    return subprocess.run([sys.executable, "-m", "ttfb.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT,
                          env={**clean, "TTFB_DATA_DIR": str(tmp_path / "data"), **env})


def test_detect_on_a_binary_file(tmp_path: Path) -> None:
    binary = tmp_path / "x.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    result = ttfb(tmp_path, "detect", "--input", str(binary))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is not a UTF-8 text CSV" in result.stderr


def test_detect_with_no_positive_value(tmp_path: Path) -> None:
    csv = tmp_path / "neg.csv"
    csv.write_text("series,order,value\na,1,-1\na,2,-2\n")
    result = ttfb(tmp_path, "detect", "--input", str(csv))
    assert result.returncode == 2 and "holds no positive value" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["ab", "--scenario", "lm", "--repo", ".", "--a", "HEAD", "--b", "HEAD", "--runs", "0"],
     "--runs: must be at least 2, got 0"),
    (["up", "--runs", "-1"], "--runs: must be at least 1"),
    (["watch", "--repo", ".", "--interval", "0"], "--interval: must be more than 0"),
])
def test_impossible_arguments_are_refused_before_anything_starts(
        tmp_path: Path, args: list[str], message: str) -> None:
    result = ttfb(tmp_path, *args)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "data").exists()  # no lab was started


def test_bisect_of_an_unknown_commit_names_it(tmp_path: Path) -> None:
    result = ttfb(tmp_path, "bisect", "--repo", str(ROOT), "--scenario", "lm", "--good",
                  "no-such-rev", "--bad", "HEAD")
    assert result.returncode == 2
    assert f"no commit 'no-such-rev' in {ROOT}" in result.stderr


def test_an_arm_at_a_revision_that_is_not_there_is_refused_before_anything_starts(
        tmp_path: Path) -> None:
    result = ttfb(tmp_path, "ab", "--scenario", "lm", "--repo", str(ROOT), "--a", "HEAD",
                  "--b", "no-such-rev")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"ttfb ab: no commit 'no-such-rev' in {ROOT}" in result.stderr
    assert not (tmp_path / "data").exists()  # no lab was started
    result = ttfb(tmp_path, "ab", "--scenario", "lm", "--repo", str(ROOT), "--a", "HEAD",
                  "--b", f"python={tmp_path / 'venv' / 'bin' / 'python'}")
    assert result.returncode == 2 and "ttfb ab: no interpreter " in result.stderr
    assert not (tmp_path / "data").exists()
    # a bare name is found on PATH, as the agent finds it: the arm passes, and
    # the other arm's revision is what is refused
    result = ttfb(tmp_path, "ab", "--scenario", "lm", "--repo", str(ROOT), "--a", "HEAD",
                  "--a", f"python={Path(sys.executable).name}", "--b", "no-such-rev",
                  PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert result.returncode == 2 and "no interpreter" not in result.stderr
    assert f"ttfb ab: no commit 'no-such-rev' in {ROOT}" in result.stderr


def test_an_environment_the_runs_have_anyway_is_refused_before_anything_starts(
        tmp_path: Path) -> None:
    """Every run has OMP_NUM_THREADS=1 unless told otherwise: an arm asking
    for it measures nothing against HEAD, and "no change" would read as an
    answer. (HEAD against HEAD with nothing else is an A/A run, and runs.)"""
    result = ttfb(tmp_path, "ab", "--scenario", "lm", "--repo", str(ROOT), "--a", "HEAD",
                  "--b", "env=OMP_NUM_THREADS=1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("ttfb ab: the two arms run the same commit with the same interpreter and "
            "environment (env=OMP_NUM_THREADS=1 is what the runs have anyway") in result.stderr
    assert not (tmp_path / "data").exists()  # no lab was started


def test_a_folder_that_is_no_repository_is_named_so(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    result = ttfb(tmp_path, "bisect", "--repo", str(plain), "--scenario", "lm", "--good",
                  "HEAD~1", "--bad", "HEAD")
    assert result.returncode == 2
    assert f"ttfb bisect: {plain} is not a git repository" in result.stderr
    result = ttfb(tmp_path, "bisect", "--repo", str(tmp_path / "gone"), "--scenario", "lm",
                  "--good", "HEAD~1", "--bad", "HEAD")
    assert result.returncode == 2 and "is not a directory" in result.stderr


def test_a_bisect_whose_good_commit_comes_after_its_bad_one_is_refused(tmp_path: Path) -> None:
    result = ttfb(tmp_path, "bisect", "--repo", str(ROOT), "--scenario", "lm", "--good",
                  "HEAD", "--bad", "HEAD~2")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ttfb bisect: --good HEAD is not an earlier commit of --bad HEAD~2's history" \
        in result.stderr and "swapped" in result.stderr
    assert not (tmp_path / "data").exists()  # no lab was started


def test_a_list_setting_that_is_not_json_is_named_without_its_value(tmp_path: Path) -> None:
    """A webhook URL is a credential: the sentence names the variable, not
    what it holds."""
    result = ttfb(tmp_path, "alerts", "list",
                  TTFB_SLACK_WEBHOOKS="https://hooks.slack.com/services/T0/B0/secret")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ttfb: invalid settings: TTFB_SLACK_WEBHOOKS is not valid JSON" in result.stderr
    assert "secret" not in result.stderr


def test_a_branch_no_repository_has_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """A typo in --branch would otherwise watch nothing, for ever."""
    result = ttfb(tmp_path, "watch", "--repo", f"demo={ROOT}", "--branch", "no-such-branch",
                  "--headless")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ttfb watch: no repository has a branch 'no-such-branch' (demo: " in result.stderr
    assert not (tmp_path / "data" / "chdb").exists()  # no lab was started
