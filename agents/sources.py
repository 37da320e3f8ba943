"""Repositories the lab reads: a local path, or a Git URL cloned once as a
mirror into the data directory and fetched again when asked. Credentials in
a URL are never shown; transports that run commands are refused.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agents.workspace import WorkspaceError, git

# git transports a watched URL may use; never ``ext::`` (runs a command) or ``fd::``
GIT_PROTOCOLS = "file:git:http:https:ssh"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SCP = re.compile(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+:")


class WatchError(ValueError):
    """A repository or branch the watcher cannot follow; the message is a sentence."""


def redact(text: str) -> str:
    """``text`` with any credentials of a URL replaced by ``***``."""
    return re.sub(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@", r"\g<scheme>***@", text)


def strip_credentials(url: str) -> str:
    """``url`` without its user and password."""
    return re.sub(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@", r"\g<scheme>", url)


def is_url(location: str) -> bool:
    return "://" in location or "::" in location or bool(_SCP.match(location))


@dataclass
class Source:
    """One watched repository: its name in the catalog, where it comes from,
    and the local git directory the lab reads."""

    name: str
    location: str
    path: Path

    @property
    def remote(self) -> bool:
        return is_url(self.location)

    @property
    def shown(self) -> str:
        return redact(self.location)


def parse_source(spec: str, data_dir: Path) -> Source:
    """``NAME=LOCATION`` or ``LOCATION`` (the name is its last path part, less ``.git``)."""
    head, sep, rest = spec.partition("=")
    if sep and _NAME.match(head) and not is_url(head):
        name, location = head, rest
    else:
        location = spec
        last = location.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1] if is_url(location) \
            else Path(location).expanduser().resolve().name
        name = re.sub(r"\.git$", "", last)
    if not _NAME.match(name or "") or not name.strip("."):
        raise WatchError(f"cannot name repository {redact(spec)!r}: use NAME=LOCATION, "
                         "NAME of letters, digits, '.', '_' or '-'")
    if not location:
        raise WatchError(f"repository {name!r} has no location")
    if is_url(location):
        # git's <transport>::<address> form runs helpers (ext:: runs a command)
        if "::" in location or location.startswith("-"):
            raise WatchError(f"repository {name!r}: transport of {redact(location)!r} "
                             "is not allowed (use https, ssh, git or file)")
        return Source(name, location, data_dir / "repos" / f"{name}.git")
    return Source(name, location, Path(location).expanduser().resolve())


def _git_env() -> dict[str, str]:
    return {**os.environ, "GIT_ALLOW_PROTOCOL": GIT_PROTOCOLS, "GIT_TERMINAL_PROMPT": "0"}


def _run_git(args: list[str], what: str, timeout: float = 600) -> None:
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True,
                                timeout=timeout, env=_git_env())
    except subprocess.TimeoutExpired:
        raise WatchError(f"{what}: git took more than {timeout:.0f}s") from None
    if result.returncode != 0:
        detail = redact(result.stderr.strip().splitlines()[-1] if result.stderr.strip()
                        else f"exit code {result.returncode}")
        raise WatchError(f"{what}: {detail}")


def update(source: Source) -> None:
    """Clone a remote repository once, fetch it on every later call; check a
    local one is a git repository."""
    if not source.remote:
        if not source.path.exists():
            raise WatchError(f"repository {source.name!r}: no such directory {source.path}")
        try:
            git(source.path, "rev-parse", "--git-dir")
        except WorkspaceError:
            raise WatchError(f"repository {source.name!r}: {source.path} is not a git "
                             "repository") from None
        return
    if not (source.path / "HEAD").exists():
        partial = source.path.with_name(source.path.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        partial.parent.mkdir(parents=True, exist_ok=True)
        _run_git(["clone", "--mirror", "--quiet", "--", source.location, str(partial)],
                 f"cannot clone {source.shown}")
        # credentials stay out of the clone's config: fetches name the URL each time
        _run_git(["-C", str(partial), "remote", "set-url", "origin",
                  strip_credentials(source.location)], f"cannot clone {source.shown}")
        partial.rename(source.path)  # complete, or not there at all
        return
    _run_git(["-C", str(source.path), "fetch", "--prune", "--quiet", "--", source.location,
              "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
             f"cannot fetch {source.shown}")
