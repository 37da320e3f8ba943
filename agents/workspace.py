"""Git workspaces: one cached, cleaned worktree per commit, bounded in number.

Revisions are validated before they reach git (no option injection) and
workspace paths never leave the workspace root.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

REV_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/~^@{}+-]{0,199}$")
# one lock for every Workspaces of the process: an agent's slots each keep their
# own worktrees, but `git worktree add/remove/prune` write the shared repository
_GIT_LOCK = threading.Lock()


class WorkspaceError(ValueError):
    pass


def validate_rev(rev: str) -> str:
    """Refuse anything git could read as an option or a path trick."""
    if not REV_PATTERN.match(rev) or ".." in rev or "//" in rev or rev.endswith(".lock"):
        raise WorkspaceError(f"invalid revision {rev!r}")
    return rev


def git(repo: Path, *args: str, timeout: float = 120,
        env: dict[str, str] | None = None) -> str:
    """The project's one way to run git in a repository: its output, or a
    ``WorkspaceError`` with what git said (``env``: variables to add)."""
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **env} if env else None)
    if result.returncode != 0:
        raise WorkspaceError(f"git {args[0]} failed: {result.stderr.strip()[:500]}")
    return result.stdout


def resolve(repo: Path, rev: str) -> str:
    """Full commit sha of ``rev`` in ``repo``."""
    validate_rev(rev)
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options",
                   f"{rev}^{{commit}}").strip()
    except WorkspaceError:  # --quiet: git says nothing of why
        if not Path(repo).is_dir():
            raise WorkspaceError(f"{repo} is not a directory") from None
        try:
            git(repo, "rev-parse", "--git-dir")
        except WorkspaceError:
            raise WorkspaceError(f"{repo} is not a git repository") from None
        raise WorkspaceError(f"no commit {rev!r} in {repo}") from None


def commit_info(repo: Path, sha: str) -> tuple[str, str]:
    """(author, subject) of a commit."""
    out = git(repo, "show", "-s", "--format=%an%x00%s", "--end-of-options", resolve(repo, sha))
    author, _, subject = out.strip().partition("\x00")
    return author, subject


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    """Whether commit ``older`` is in ``newer``'s history (or is it)."""
    try:  # git answers with its exit status alone
        git(repo, "merge-base", "--is-ancestor", "--end-of-options", older, newer)
    except WorkspaceError:
        return False
    return True


def commit_range(repo: Path, good: str, bad: str) -> list[tuple[str, str, str]]:
    """Commits from good (inclusive) to bad (inclusive), oldest first, first-parent."""
    good_sha, bad_sha = resolve(repo, good), resolve(repo, bad)
    out = git(repo, "log", "--first-parent", "--reverse", "--format=%H%x00%an%x00%s",
              "--end-of-options", f"{good_sha}..{bad_sha}")
    rows = [tuple(line.split("\x00", 2)) for line in out.splitlines() if line]
    good_author, good_subject = commit_info(repo, good_sha)
    return [(good_sha, good_author, good_subject), *rows]  # type: ignore[list-item]


def range_files(repo: Path, good: str, bad: str) -> dict[str, set[str]]:
    """The files each commit of good..bad (first-parent) changed, in one git call."""
    out = git(repo, "log", "--first-parent", "--name-only", "--format=%x00%H",
              "--end-of-options", f"{resolve(repo, good)}..{resolve(repo, bad)}")
    files: dict[str, set[str]] = {}
    for block in out.split("\x00")[1:]:
        sha, *paths = block.split("\n")
        files[sha.strip()] = {p for p in paths if p}
    return files


def docstring(node: ast.AST) -> ast.Expr | None:
    """The docstring statement of a module, class or function node; None for
    any other node, or one without."""
    if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
            or not node.body:
        return None
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        return first
    return None


def _code(source: str) -> str | None:
    """The code of a Python file without its comments and docstrings (the AST,
    docstrings dropped, positions not kept); None where it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if docstring(node) is not None:
            node.body = node.body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree)


def _blob(repo: Path, sha: str, path: str) -> str | None:
    """``path`` as of ``sha``; None where it does not exist there."""
    try:
        return git(repo, "show", f"{sha}:{path}")
    except WorkspaceError:
        return None


def changes_code(repo: Path, sha: str, path: str, base: str = "") -> bool:
    """Whether commit ``sha`` changes what ``path`` does (against ``base``,
    where given, else its first parent): False only for a Python file whose
    edit is to comments, docstrings or layout (both sides parse to the same
    code); any other file, an added or deleted one, or one that does not
    parse, counts as changed."""
    if not path.endswith(".py"):
        return True
    before, after = _blob(repo, base or f"{sha}^", path), _blob(repo, sha, path)
    if before is None or after is None:
        return True
    old, new = _code(before), _code(after)
    return old is None or new is None or old != new


def touches_code(repo: Path, good: str, bad: str, commits: list[str],
                 modules: set[str]) -> list[bool]:
    """Per commit of ``commits`` (of good..bad, first-parent): whether it changes
    the code of any of ``modules`` (see ``changes_code``)."""
    files = range_files(repo, good, bad)
    return [any(changes_code(repo, c, f) for f in sorted(files.get(c, set()) & modules))
            for c in commits]


def changed_files(repo: Path, rev: str) -> list[str]:
    """Paths (relative to the repository root) the commit changed; a merge's,
    against its first parent (what the merge brought into the branch: a
    plain ``git show`` of a merge lists only files that differ from every
    parent, none for a clean merge of a pull request)."""
    sha = resolve(repo, rev)
    out = git(repo, "show", "--format=", "--name-only", "--first-parent", "-m",
              "--end-of-options", sha)
    return [line for line in out.splitlines() if line]


def changed_lines(repo: Path, rev: str, since: str = "") -> dict[str, set[int]]:
    """Per file the commit changed (every commit after ``since``, where
    given: a pull request's base) whose code it changed (``changes_code``):
    the lines of its new version that the change touched (for a deletion,
    the lines either side of it)."""
    sha = resolve(repo, rev)
    base = resolve(repo, since) if since else ""
    out = git(repo, "diff", "-U0", "--no-color", "--end-of-options", base, sha) \
        if since else git(repo, "show", "-U0", "--format=", "--no-color", "--first-parent", "-m",
                          "--end-of-options", sha)
    lines: dict[str, set[int]] = {}
    current: set[int] | None = None
    for line in out.splitlines():
        if line.startswith("+++ "):
            path = line[4:]
            current = lines.setdefault(path[2:], set()) if path.startswith("b/") else None
        elif line.startswith("@@") and current is not None:
            match = re.match(r"@@ -\S+ \+(\d+)(?:,(\d+))? @@", line)
            if match:
                start, count = int(match[1]), int(match[2] if match[2] is not None else 1)
                current.update(range(start, start + count) if count else (start, start + 1))
    # a file whose code the change leaves as it was (a reformat) changed
    # nothing, as test selection judges it (``changes_code``)
    return {path: changed for path, changed in lines.items()
            if changes_code(repo, sha, path, base)}


class Workspaces:
    """Cached worktrees under ``root``; least recently used ones are removed."""

    def __init__(self, root: Path, max_worktrees: int = 16) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_worktrees = max_worktrees
        self._lock = _GIT_LOCK

    def _path(self, name: str, sha: str) -> Path:
        path = (self.root / re.sub(r"[^A-Za-z0-9_.-]", "_", name) / sha).resolve()
        if self.root not in path.parents:
            raise WorkspaceError(f"workspace path escapes {self.root}")
        return path

    def checkout(self, name: str, repo: Path, rev: str) -> tuple[Path, str]:
        """A clean worktree of ``repo`` at ``rev``: (path, full sha)."""
        sha = resolve(repo, rev)
        path = self._path(name, sha)
        with self._lock:
            if path.exists():
                # clean tracked and untracked files, keep ignored bytecode caches warm
                git(path, "checkout", "--force", "--quiet", "--detach", sha)
                git(path, "clean", "-fdq")
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                git(repo, "worktree", "add", "--force", "--detach", str(path), sha)
            path.touch()
            self._evict(repo)
        return path, sha

    def _evict(self, repo: Path) -> None:
        trees = sorted((p for p in self.root.glob("*/*") if p.is_dir()),
                       key=lambda p: p.stat().st_mtime)
        for old in trees[: max(0, len(trees) - self.max_worktrees)]:
            try:
                git(repo, "worktree", "remove", "--force", str(old))
            except WorkspaceError:
                shutil.rmtree(old, ignore_errors=True)
        if len(trees) > self.max_worktrees:
            subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True)


@contextlib.contextmanager
def temporary_checkout(name: str, repo: Path, rev: str) -> Iterator[tuple[Path, str]]:
    """A clean worktree of ``repo`` at ``rev`` (path, full sha) for the block
    alone: afterwards its folder is gone, and its entry in the repository's
    worktree list with it."""
    try:
        with tempfile.TemporaryDirectory(prefix="ttfb-checkout-") as tmp:
            yield Workspaces(Path(tmp)).checkout(name, repo, rev)
    finally:
        with _GIT_LOCK, contextlib.suppress(WorkspaceError):
            git(repo, "worktree", "prune")
