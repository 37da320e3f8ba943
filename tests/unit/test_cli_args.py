"""Command-line arguments shared between commands read the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttfb.cli import parser


@pytest.mark.parametrize("command", [
    ["bisect", "--scenario", "lm", "--good", "HEAD~3", "--bad", "HEAD"],
    ["ab", "--scenario", "lm", "--a", "HEAD~1", "--b", "HEAD"],
    ["check", "--base", "HEAD~1", "--head", "HEAD"],
])
def test_a_repository_given_as_watch_takes_it_is_its_path(tmp_path: Path,
                                                           command: list[str]) -> None:
    repo = tmp_path / "proj"
    repo.mkdir()
    named = parser().parse_args([*command, "--repo", f"proj={repo}"])
    plain = parser().parse_args([*command, "--repo", str(repo)])
    assert named.repo == plain.repo == str(repo)


def test_a_path_that_holds_an_equals_sign_is_kept(tmp_path: Path) -> None:
    repo = tmp_path / "a=b"
    repo.mkdir()
    args = parser().parse_args(["bisect", "--scenario", "lm", "--good", "HEAD~1", "--bad",
                                "HEAD", "--repo", str(repo)])
    assert args.repo == str(repo)
