"""What ``ttfb bisect`` says beside its culprit."""

from __future__ import annotations

import subprocess
from pathlib import Path

from producers.bisect_cli import touched
from tests.unit.test_explain import commit_file


def test_the_culprit_s_files_the_scenario_imports_or_reads_are_named(tmp_path: Path) -> None:
    """A config the run reads (no frame of its own in what grew) is named;
    a file outside the run's footprint, and one whose edit is a comment, are
    not; a culprit the repository lacks names nothing."""
    repo = tmp_path / "r"
    repo.mkdir()
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    commit_file(repo, "train.py", "import m\n")
    commit_file(repo, "m.py", "def f(x):\n    return x + 1\n")
    commit_file(repo, "config/small.py", "n_layer = 6\n")
    (repo / "m.py").write_text("def f(x):\n    # add one\n    return x + 1\n")
    (repo / "README.md").write_text("deeper\n")
    culprit = commit_file(repo, "config/small.py", "n_layer = 12\n")
    footprint = ["train.py", "m.py", "config/small.py"]
    assert touched(repo, culprit, footprint) == ["config/small.py"]
    assert touched(repo, culprit, ["train.py"]) == []
    assert touched(repo, "0" * 40, footprint) == []
