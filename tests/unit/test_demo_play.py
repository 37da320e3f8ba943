"""The demo's driver keeps the agent a commit ahead: each commit is sent
before the runs of the one before it are stored, the baseline's first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.demo_history import write_demo_repo
from producers import demo
from producers.scheduler import new_commits
from ttfb.settings import Settings


def test_a_commit_is_sent_before_the_runs_of_the_one_before_it_are_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    write_demo_repo(repo)
    commits = new_commits(repo, "HEAD", None)
    said: list[tuple[str, str]] = []

    async def send(settings: Settings, events: list[Any]) -> None:
        commit = next(e.commit for e in events)
        said.append(("sent", commit))

    def wait_for_runs(store: Any, commit: str, *rest: Any) -> None:
        said.append(("stored", commit))

    monkeypatch.setattr(demo, "_send", send)
    monkeypatch.setattr(demo, "_wait_for_runs", wait_for_runs)
    monkeypatch.setattr(demo.queries, "latest_modules", lambda store: {})
    monkeypatch.setattr(demo, "_wait", lambda *a, **k: True)
    monkeypatch.setattr(demo, "summarise", lambda *a: {})
    settings = Settings(data_dir=tmp_path / "data", repos={"demo": str(repo)},
                        _env_file=None)  # type: ignore[call-arg]
    demo.play(settings, None, lambda: None, lambda line: None)  # type: ignore[arg-type]

    expected = [("sent", commits[0]), ("stored", commits[0]), ("sent", commits[1])]
    for k in range(2, len(commits)):
        expected += [("sent", commits[k]), ("stored", commits[k - 1])]
    assert said == [*expected, ("stored", commits[-1])]
