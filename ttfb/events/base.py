"""What every event shares: the constants, ids, and the base models."""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
COMPONENTS = ("queue", "startup", "imports", "config", "data", "model", "first_step")
Component = Literal["queue", "startup", "imports", "config", "data", "model", "first_step"]
Purpose = Literal["adhoc", "monitor", "confirm", "bisect", "ab", "demo", "explain"]
Direction = Literal["regression", "improvement"]
MAX_TIMING_MS = 6 * 3600 * 1000.0  # a component longer than six hours is not a measurement
DEFAULT_MAX_EVENT_BYTES = 1_000_000


def new_id() -> str:
    return uuid.uuid4().hex


_DERIVED = uuid.UUID("5f0c3c1e-7d1b-4e0e-9a59-74746662d1ab")


_DERIVED_BYTES = _DERIVED.bytes


def derived_id(*parts: str) -> str:
    """A stable id from its parts: a stream processor that re-processes an input
    after a crash emits the same ids again, so the duplicates collapse.

    ``uuid.uuid5(_DERIVED, name).hex``, without the ``UUID`` object (a
    rebuild derives one for every output it folds)."""
    digest = bytearray(hashlib.sha1(_DERIVED_BYTES + "\x1f".join(parts).encode(),
                                    usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return digest.hex()


def utcnow() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    """Frozen, strict-about-extras, finite-floats-only base for every payload."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Event(Model):
    """Fields every event carries."""

    schema_version: Literal[1] = 1
    event_id: str = Field(default_factory=new_id, min_length=8, max_length=64)
    occurred_at: datetime = Field(default_factory=utcnow)
    producer: str = Field("unknown", max_length=200)

    @property
    def key(self) -> str:
        """Partition key: all of one scenario's events land on one partition."""
        return str(getattr(self, "scenario", "") or self.event_id)


class Fingerprint(Model):
    """Hardware and software identity of the machine that measured a run."""

    host: str = ""
    cpu: str = ""
    gpu: str = ""
    python: str = ""
    torch: str = ""
    driver: str = ""
    device: str = "cpu"
    hardware_class: str = Field("", max_length=64, description="the agent's class (its series)")

    @property
    def hardware_id(self) -> str:
        """Stable short id of everything that makes timings comparable."""
        return _hardware_id((self.cpu, self.gpu, self.python, self.torch, self.driver,
                             self.device), self.hardware_class)


@functools.lru_cache(maxsize=1024)  # a fold reads it for every commit, of a few machines
def _hardware_id(parts: tuple[str, ...], hardware_class: str) -> str:
    raw = "|".join([*parts, *([hardware_class] if hardware_class else [])])
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


class Arm(Model):
    """Overrides of one side of an A/B: interpreter and environment variables."""

    label: str = "default"
    python: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class Signed(Event):
    """Commands are signed (HMAC-SHA256) so agents can refuse forged ones."""

    signed_at: float = 0.0
    signature: str = ""
