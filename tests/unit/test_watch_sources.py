"""Naming watched repositories, and keeping their credentials out of sight."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.watch import WatchError, is_url, parse_source, redact, steady


def test_names_come_from_the_spec_or_the_last_path_part(tmp_path: Path) -> None:
    assert parse_source("proj=/src/x", tmp_path).name == "proj"
    assert parse_source("/src/my-repo", tmp_path).name == "my-repo"
    remote = parse_source("https://example.com/org/trainer.git", tmp_path)
    assert (remote.name, remote.remote) == ("trainer", True)
    assert remote.path == tmp_path / "repos" / "trainer.git"
    assert parse_source("git@example.com:org/vision.git", tmp_path).name == "vision"


def test_credentials_in_a_url_are_never_shown(tmp_path: Path) -> None:
    source = parse_source("https://user:s3cret@example.com/org/repo.git", tmp_path)
    assert "s3cret" not in source.shown and "***@example.com" in source.shown
    assert redact("fatal: could not read https://tok@host/x") == \
        "fatal: could not read https://***@host/x"


@pytest.mark.parametrize("spec", ["ext::sh -c touch% /tmp/pwned", "x=fd::3",
                                  "x=--upload-pack=touch https://h/r"])
def test_transports_that_run_commands_are_refused(tmp_path: Path, spec: str) -> None:
    with pytest.raises(WatchError, match="not allowed"):
        parse_source(spec, tmp_path)


def test_urls_and_paths_are_told_apart() -> None:
    assert is_url("https://h/x") and is_url("git@h:x") and not is_url("/a/b")
    assert not is_url("relative/dir")


def test_credentials_are_stripped_for_what_is_kept() -> None:
    from agents.sources import strip_credentials

    assert strip_credentials("https://user:tok@host/org/r.git") == "https://host/org/r.git"
    assert strip_credentials("https://host/org/r.git") == "https://host/org/r.git"


def test_a_problem_whose_timing_alone_differs_is_the_same_problem() -> None:
    """git's "Failed to connect ... after 1 ms" reads "after 0 ms" at the next
    poll: the watcher must not take it for a new problem and say it again."""
    first = ("cannot clone https://***@127.0.0.1:41171/org/tiny.git: fatal: unable to access"
             " 'https://127.0.0.1:41171/org/tiny.git/': Failed to connect to 127.0.0.1 port"
             " 41171 after 1 ms: Couldn't connect to server")
    assert steady(first) == steady(first.replace("after 1 ms", "after 0 ms"))
    assert steady(first) != steady(first.replace("41171", "41172"))  # another server
    assert "port 41171" in steady(first)
