"""In-workflow SDK: mark TTFB phases from inside a training workflow.

Standard library only. Workflows never talk to Kafka: each mark is one short
line written to the file descriptor the agent passes in ``TTFB_SDK_FD``.
Outside the lab (no descriptor) every call is a cheap no-op, so instrumented
code runs unchanged anywhere.

    from ttfb.sdk import phase, first_batch, timed_first_batch

    with phase("config"):
        cfg = load_config()
    batch = timed_first_batch(loader)      # the "data" phase ends here
    with phase("first_step"):
        loss = model(batch).sum(); loss.backward()

Timestamps are ``time.monotonic_ns()``: CLOCK_MONOTONIC is system-wide on
Linux, so the agent can subtract its own spawn time from them.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_clock = time.monotonic_ns
_fd: int | None = None
_opened = False


def _channel() -> int | None:
    global _fd, _opened
    if not _opened:
        _opened = True
        raw = os.environ.get("TTFB_SDK_FD", "")
        _fd = int(raw) if raw.isdigit() else None
    return _fd


_buffer: list[str] = []
_BUFFER_LIMIT = 256


def _write(line: str) -> None:
    """Queue one report line; sent in batches so a mark costs no syscall."""
    if (_fd if _opened else _channel()) is None:
        return
    _buffer.append(line)
    if len(_buffer) >= _BUFFER_LIMIT:
        flush()


def flush() -> None:
    """Send queued lines to the agent (also done at first batch and at exit)."""
    fd = _fd if _opened else _channel()
    if fd is None or not _buffer:
        return
    data = "".join(_buffer).encode()
    _buffer.clear()
    # try/except is cheaper than contextlib.suppress() on this path
    try:  # noqa: SIM105
        os.write(fd, data)
    except OSError:  # the agent went away; the workflow must not die of it
        pass


atexit.register(flush)


def mark(name: str, start_ns: int, end_ns: int) -> None:
    """Report that phase ``name`` ran from ``start_ns`` to ``end_ns``."""
    if (_fd if _opened else _channel()) is not None:
        _buffer.append(f"M\t{name}\t{start_ns}\t{end_ns}\n")
        if len(_buffer) >= _BUFFER_LIMIT:
            flush()


class phase:  # noqa: N801 - used like a function: ``with phase("config"):``
    """Time the block as TTFB component ``name`` (config, data, model, ...)."""

    __slots__ = ("name", "start")

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.start = _clock()

    def __exit__(self, *exc: object) -> None:
        mark(self.name, self.start, _clock())


def first_batch() -> None:
    """Mark the moment the first batch is ready (ends the ``data`` component)."""
    _write(f"F\t{_clock()}\n")
    flush()


def report(**fields: Any) -> None:
    """Send extra facts (device, versions) to the agent as one JSON line."""
    _write("R\t" + json.dumps(fields, default=str) + "\n")


def timed_first_batch(loader: Iterable[T], start_ns: int | None = None) -> T:
    """Fetch the first batch of a DataLoader, timing the fetch as ``data``.

    ``start_ns`` lets the data phase also cover preprocessing done before the
    loader existed.
    """
    start = _clock() if start_ns is None else start_ns
    batch = next(iter(loader))
    mark("data", start, _clock())
    first_batch()
    return batch


def timed_iter(loader: Iterable[T]) -> Iterator[T]:
    """Iterate a loader, timing everything until the first batch as ``data``."""
    start = _clock()
    iterator = iter(loader)
    first = True
    for batch in iterator:
        if first:
            mark("data", start, _clock())
            first_batch()
            first = False
        yield batch


def enabled() -> bool:
    """True when an agent is listening."""
    return _channel() is not None
