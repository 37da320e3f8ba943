"""HMAC-SHA256 signing of commands, so agents run only what the lab asked for.

The signature covers the canonical bytes of the event (with ``signature`` and
``signed_at`` blanked) and the signing time. Agents refuse unsigned, badly
signed, stale and replayed commands. Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from pathlib import Path
from typing import TypeVar

from ttfb.events import Signed, encode

S = TypeVar("S", bound=Signed)


class CommandRefused(ValueError):
    """A command an agent will not run; ``reason`` goes to the dead letters."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


DEFAULT_KEY = "ttfb-dev-signing-key-change-me"
MIN_KEY_LENGTH = 32


def key_id(key: str) -> str:
    """A short public id of a key: a signature names the key that made it."""
    return hashlib.sha256(b"ttfb-key-id|" + key.encode()).hexdigest()[:8]


def _digest(command: Signed, signed_at: float, key: bytes) -> str:
    canonical = encode(command.model_copy(update={"signature": "", "signed_at": 0.0}))
    message = canonical + b"|" + repr(round(signed_at, 6)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(command: S, key: str, now: float | None = None) -> S:
    """A copy of ``command`` carrying its timestamp and ``KEYID:signature``."""
    signed_at = round(time.time() if now is None else now, 6)
    digest = _digest(command, signed_at, key.encode())
    return command.model_copy(update={"signed_at": signed_at,
                                      "signature": f"{key_id(key)}:{digest}"})


class Verifier:
    """Checks signatures (by the current key or, while keys rotate, the previous
    one), age and replays. Seen signatures are remembered in memory and, with
    a ``journal``, on disk: a restarted agent still refuses a replay."""

    def __init__(self, key: str, max_age_s: float = 3600.0, remember: int = 100_000,
                 previous: str = "", journal: Path | None = None) -> None:
        self.keys = {key_id(k): k.encode() for k in (key, previous) if k}
        self.key = key.encode()
        self.max_age_s = max_age_s
        self.remember = remember
        self._seen: OrderedDict[str, float] = OrderedDict()
        self.journal = journal
        if journal is not None:
            self._load(journal)

    def _load(self, journal: Path) -> None:
        """Ids seen within the age limit (older commands are refused as stale);
        the journal is rewritten with those alone, so it stays bounded."""
        horizon = time.time() - self.max_age_s - 60
        try:
            lines = journal.read_text().splitlines()
        except OSError:
            lines = []
        for line in lines[-self.remember:]:
            seen, _, at = line.partition("\t")
            try:
                when = float(at)
            except ValueError:
                continue
            if when >= horizon:
                self._seen[seen] = when
        journal.parent.mkdir(parents=True, exist_ok=True)
        partial = journal.with_suffix(".partial")
        partial.write_text("".join(f"{i}\t{t}\n" for i, t in self._seen.items()))
        partial.replace(journal)

    def verify(self, command: Signed, now: float | None = None) -> None:
        """Raise ``CommandRefused`` unless the command is authentic, fresh and new."""
        now = time.time() if now is None else now
        if not command.signature:
            raise CommandRefused("unsigned command")
        kid, sep, digest = command.signature.rpartition(":")
        key = self.keys.get(kid) if sep else self.key
        if key is None:
            raise CommandRefused("bad signature: signed with a key this agent does not hold")
        expected = _digest(command, command.signed_at, key)
        if not hmac.compare_digest(expected, digest):
            raise CommandRefused("bad signature")
        age = now - command.signed_at
        if age > self.max_age_s:
            raise CommandRefused(
                f"stale command: signed {age:.0f}s ago (max {self.max_age_s:.0f}s)")
        if age < -60:
            raise CommandRefused("command signed in the future")
        # a message is its signature: the same bytes again are a replay; the lab
        # sending a command again on purpose (the embedded bus forgot it) signs
        # it anew, with the same event id
        seen = command.signature
        if seen in self._seen:
            raise CommandRefused(f"replayed command {command.event_id}")
        self._seen[seen] = command.signed_at
        if self.journal is not None:
            with self.journal.open("a") as out:
                out.write(f"{seen}\t{command.signed_at}\n")
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)


def key_problem(key: str) -> str:
    """Why ``key`` must not sign commands on a shared bus; empty when it may."""
    if key == DEFAULT_KEY:
        return "the signing key is the default one"
    if len(key) < MIN_KEY_LENGTH:
        return f"the signing key is shorter than {MIN_KEY_LENGTH} characters"
    return ""
