"""Two backends running the same SQL: embedded chDB and ClickHouse server.

chDB lets one process hold a data directory at a time, so every chDB call
takes an exclusive cross-process file lock and opens a short session
(30-150 ms) that it closes before releasing the lock. Writers (the sink) and
readers (the dashboard, the CLI) in different processes therefore take
turns. A writer with batches in quick succession may keep its session for
``hold_s`` after opening it (the sink does), and opens one session a
``hold_s``, not one a batch; it gives the session up sooner, between two
calls, when another process waits for the lock (the ``.wait`` file), so
the others wait for the call under way, not for the hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic_core import PydanticSerializationError, to_json

Row = dict[str, Any]


class StoreUnavailable(RuntimeError):
    """The store could not be reached (lock held too long, server down)."""


class Backend(Protocol):
    def command(self, sql: str, params: dict[str, Any] | None = None) -> None: ...
    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]: ...
    def strings(self, sql: str, params: dict[str, Any] | None = None) -> list[bytes]: ...
    def insert(self, table: str, rows: Sequence[Row]) -> None: ...
    def transaction(self) -> contextlib.AbstractContextManager[Backend]: ...
    def close(self) -> None: ...


def json_lines(rows: Sequence[Row]) -> bytes:
    """One JSON object a line (``JSONEachRow``), written by pydantic-core in
    a quarter of ``json.dumps``'s time (the sink writes two or three rows an
    event); by the standard library where pydantic-core refuses a value (a
    lone surrogate in a string made in this process, say)."""
    try:
        return b"".join([to_json(row, inf_nan_mode="constants") + b"\n" for row in rows])
    except PydanticSerializationError:
        return b"".join(json.dumps(row, separators=(",", ":")).encode() + b"\n" for row in rows)


def parse_json_lines(raw: bytes) -> list[Row]:
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def row_binary_strings(raw: bytes) -> list[bytes]:
    """The values of a ``RowBinary`` result whose every column is a String,
    row after row: each is its length (LEB128) and its bytes. Read this way,
    a page of stored payloads costs a fifth of its ``JSONEachRow`` form (no
    JSON inside JSON to unescape)."""
    out: list[bytes] = []
    i, end = 0, len(raw)
    while i < end:
        length = shift = 0
        while True:
            byte = raw[i]
            i += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        if i + length > end:
            raise ValueError("a RowBinary result cut short")
        out.append(raw[i:i + length])
        i += length
    return out


def _escaped(text: str) -> str:
    """ClickHouse reads a parameter's text in its escaped form: a tab, newline
    or backslash taken as written would end or change the value."""
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _literal(value: Any) -> str:
    """chDB takes query parameters as ClickHouse literals in text form."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(quoted(v) for v in value) + "]"
    return _escaped(str(value))


def quoted(value: Any) -> str:
    """A ClickHouse literal: a number as it is, anything else as a quoted string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return "'" + text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r") + "'"


YIELD_S = 0.5  # the longest a process about to take the chDB lock lets a waiting one go first
WATCH_S = 0.05  # how often a held session looks for a process waiting for the lock


def is_locked(path: Path) -> bool:
    """Whether another open file holds a lock on ``path`` (tried for a moment
    with an exclusive lock of its own, given back at once)."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor gives its lock back


class ChdbBackend:
    """Embedded ClickHouse; a file lock plus a short session per call or batch."""

    def __init__(self, path: Path, lock_timeout: float = 60.0, hold_s: float = 0.0) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock_path = self.path.parent / f"{self.path.name}.lock"
        self.lock_timeout = lock_timeout
        # 0: a session a transaction; else a session lasts this long after it
        # opened (closed then by a timer, or by the transaction that outlives it)
        self.hold_s = hold_s
        self._thread_lock = threading.RLock()
        self._session: Any = None
        self._lock_fd: int | None = None
        self._opened = 0.0
        self._depth = 0  # transactions under way (re-entrant within one thread)
        self.sessions = 0  # sessions opened, for tests and benchmarks; also each one's number

    @contextlib.contextmanager
    def transaction(self) -> Iterator[ChdbBackend]:
        """Hold the lock and one session for several statements."""
        with self._thread_lock:
            if self._session is None:
                self._open()
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
                if self._hold_over():
                    self._close()

    def _open(self) -> None:
        from chdb import session as chdb_session

        self._lock_fd = self._file_lock()
        try:
            self._session = chdb_session.Session(str(self.path))  # type: ignore[no-untyped-call]
            self._session.query("SET output_format_json_quote_64bit_integers=0")
        except BaseException:
            self._close()
            raise
        self._opened = time.monotonic()
        self.sessions += 1
        if self.hold_s > 0:
            # the watcher ends this session only: one closed early (``close``)
            # and another opened since keeps its own full hold
            watcher = threading.Thread(target=self._watch, args=(self.sessions,), daemon=True)
            watcher.start()

    def _watch(self, session: int) -> None:
        """End held session ``session`` once ``hold_s`` has passed, or at
        once, between transactions, when another process waits for the lock."""
        while True:
            time.sleep(WATCH_S)
            with self._thread_lock:
                if self._session is None or self.sessions != session:
                    return
                if self._hold_over():
                    self._close()
                    return

    def _hold_over(self) -> bool:
        """Whether the open session ends now: no transaction under way, and
        its hold has passed or another process waits for the lock (holds the
        ``.wait`` file)."""
        return not self._depth and (time.monotonic() - self._opened >= self.hold_s
                                    or is_locked(self._wait_path))

    def close(self) -> None:
        """Close a held session now (nothing to do without one)."""
        with self._thread_lock:
            if not self._depth:
                self._close()

    def _close(self) -> None:
        try:
            if self._session is not None:
                self._session.close()
        finally:
            self._session = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # closing the descriptor releases the lock
                self._lock_fd = None

    def _file_lock(self) -> int:
        """A descriptor holding the exclusive lock (closing it releases it).

        ``flock`` is not fair: a writer that reopens at once after each held
        session (the sink during a burst) would win every time against a
        reader that polls, and the reader would wait for the whole burst. A
        process that has to wait says so with a shared lock on the
        ``.wait`` file beside the lock; one about to take the lock first lets
        such a waiter go ahead (``YIELD_S`` at most, so two that yield to each
        other cannot stall)."""
        self._let_waiters_go()
        fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        waiting: int | None = None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreUnavailable(
                            f"chDB lock {self.lock_path} held for more than "
                            f"{self.lock_timeout:.0f}s") from None
                    if waiting is None:
                        waiting = os.open(self._wait_path, os.O_CREAT | os.O_RDWR, 0o644)
                        fcntl.flock(waiting, fcntl.LOCK_SH)
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
        except BaseException:
            os.close(fd)
            raise
        finally:
            if waiting is not None:
                os.close(waiting)

    @property
    def _wait_path(self) -> Path:
        return self.path.parent / f"{self.path.name}.wait"

    def _let_waiters_go(self) -> None:
        """Wait (``YIELD_S`` at most) while another process waits for the lock."""
        deadline = time.monotonic() + YIELD_S
        while is_locked(self._wait_path) and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run(self, sql: str, params: dict[str, Any] | None, fmt: str) -> bytes:
        with self.transaction():
            literal = {k: _literal(v) for k, v in (params or {}).items()}
            result = self._session.query(sql, fmt, params=literal) if literal else \
                self._session.query(sql, fmt)
            return bytes(result.bytes()) if result is not None else b""

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._run(sql, params, "CSV")

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        return parse_json_lines(self._run(sql, params, "JSONEachRow"))

    def strings(self, sql: str, params: dict[str, Any] | None = None) -> list[bytes]:
        return row_binary_strings(self._run(sql, params, "RowBinary"))

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        if rows:
            body = json_lines(rows).decode()
            self._run(f"INSERT INTO {table} FORMAT JSONEachRow\n{body}", None, "CSV")


class ServerBackend:
    """ClickHouse server through clickhouse-connect (HTTP)."""

    def __init__(self, url: str, user: str, password: str, database: str) -> None:
        import clickhouse_connect

        try:
            self.client = clickhouse_connect.get_client(
                dsn=url, username=user, password=password,
                settings={"output_format_json_quote_64bit_integers": 0},
            )
        except Exception as exc:
            raise StoreUnavailable(f"ClickHouse server at {url} unreachable: {exc}") from exc
        self.database = database

    @contextlib.contextmanager
    def transaction(self) -> Iterator[ServerBackend]:
        yield self

    def close(self) -> None:
        self.client.close()

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.client.command(sql, parameters=params or None)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        raw = self.client.raw_query(sql, parameters=params or None, fmt="JSONEachRow")
        return parse_json_lines(bytes(raw))

    def strings(self, sql: str, params: dict[str, Any] | None = None) -> list[bytes]:
        raw = self.client.raw_query(sql, parameters=params or None, fmt="RowBinary")
        return row_binary_strings(bytes(raw))

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        if rows:
            self.client.raw_insert(table, insert_block=json_lines(rows), fmt="JSONEachRow")
