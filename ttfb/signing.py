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
from typing import TypeVar

from ttfb.events import Signed, encode

S = TypeVar("S", bound=Signed)


class CommandRefused(ValueError):
    """A command an agent will not run; ``reason`` goes to the dead letters."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _digest(command: Signed, signed_at: float, key: bytes) -> str:
    canonical = encode(command.model_copy(update={"signature": "", "signed_at": 0.0}))
    message = canonical + b"|" + repr(round(signed_at, 6)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(command: S, key: str, now: float | None = None) -> S:
    """A copy of ``command`` carrying its timestamp and signature."""
    signed_at = round(time.time() if now is None else now, 6)
    return command.model_copy(update={
        "signed_at": signed_at, "signature": _digest(command, signed_at, key.encode())})


class Verifier:
    """Checks signatures, age and replays (remembers recent event ids)."""

    def __init__(self, key: str, max_age_s: float = 3600.0, remember: int = 100_000) -> None:
        self.key = key.encode()
        self.max_age_s = max_age_s
        self.remember = remember
        self._seen: OrderedDict[str, float] = OrderedDict()

    def verify(self, command: Signed, now: float | None = None) -> None:
        """Raise ``CommandRefused`` unless the command is authentic, fresh and new."""
        now = time.time() if now is None else now
        if not command.signature:
            raise CommandRefused("unsigned command")
        expected = _digest(command, command.signed_at, self.key)
        if not hmac.compare_digest(expected, command.signature):
            raise CommandRefused("bad signature")
        age = now - command.signed_at
        if age > self.max_age_s:
            raise CommandRefused(
                f"stale command: signed {age:.0f}s ago (max {self.max_age_s:.0f}s)")
        if age < -60:
            raise CommandRefused("command signed in the future")
        if command.event_id in self._seen:
            raise CommandRefused(f"replayed command {command.event_id}")
        self._seen[command.event_id] = now
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)
