"""A small real git repository whose workflow costs what its files say: its
import does ``IMPORT_S`` seconds of work, so a commit that raises it is a
regression in ``imports`` of a known size. No torch: runs take a second."""

from __future__ import annotations

import subprocess
from pathlib import Path

TRAIN = '''
import time
from pathlib import Path
from tiny import heavy  # noqa: F401  (its import is the cost under watch)
from ttfb.sdk import phase, first_batch


def main(config):
    with phase("config"):
        time.sleep(0.01)
    with phase("data"):
        Path(__file__).with_name("vocab.txt").read_text()  # data the repository ships
        time.sleep(0.02)
    first_batch()
    with phase("model"):
        time.sleep(0.02)
    with phase("first_step"):
        time.sleep(0.02)
'''

CATALOG = '''
[[scenario]]
name = "tiny"
repo = "tiny"
entry = "tiny.train:main"
timeout_s = 60
'''


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def set_import_cost(repo: Path, seconds: float, message: str) -> str:
    """Commit ``tiny/heavy.py`` doing ``seconds`` of import work; returns the sha."""
    (repo / "tiny" / "heavy.py").write_text(
        f"import time\n\nIMPORT_S = {seconds!r}\ntime.sleep(IMPORT_S)\n")
    return commit(repo, message)


def commit(repo: Path, message: str, touch: str = "") -> str:
    if touch:
        path = repo / touch
        path.write_text(path.read_text() + f"# {message}\n" if path.exists() else "")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q",
        "-m", message)
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path, import_s: float = 0.5, commits: int = 3) -> list[str]:
    """A repository with ``commits`` ordinary commits; returns their shas."""
    (path / "tiny").mkdir(parents=True)
    (path / "tiny" / "__init__.py").write_text("")
    (path / "tiny" / "train.py").write_text(TRAIN)
    (path / "tiny" / "vocab.txt").write_text("the\nof\nand\n")
    (path / "NOTES.md").write_text("notes\n")
    git(path, "init", "-q", "-b", "main")
    shas = [set_import_cost(path, import_s, "tiny training workflow")]
    for number in range(1, commits):
        shas.append(commit(path, f"notes {number}", touch="NOTES.md"))
    return shas


def write_catalog(path: Path) -> Path:
    path.write_text(CATALOG)
    return path
