"""The store: ClickHouse schema, idempotent writes, and parameterised queries.

``open_store(settings)`` picks the backend: embedded chDB in the data
directory when ``TTFB_CLICKHOUSE_URL`` is empty, ClickHouse server otherwise.
Both run the same SQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.store.backends import Backend, ChdbBackend, ServerBackend, StoreUnavailable
from ttfb.store.rows import rows_for
from ttfb.store.schema import MIGRATIONS, MIGRATIONS_TABLE, TABLES

__all__ = ["Store", "StoreUnavailable", "open_store"]


IN_CHUNK = 5_000


class Store:
    """Idempotent writer and query runner over one backend."""

    def __init__(self, backend: Backend, database: str = "ttfb") -> None:
        self.backend = backend
        self.db = database

    def close(self) -> None:
        """Let go of the backend's session or connection (an embedded store's
        held session releases its lock)."""
        self.backend.close()

    def migrate(self) -> list[int]:
        """Apply missing migrations; returns the versions applied now."""
        applied_now: list[int] = []
        with self.backend.transaction() as tx:
            tx.command(f"CREATE DATABASE IF NOT EXISTS {self.db}")
            tx.command(MIGRATIONS_TABLE.format(db=self.db))
            done = {int(r["version"]) for r in tx.query(
                f"SELECT version FROM {self.db}.schema_migrations")}
            for version, description, statements in MIGRATIONS:
                if version in done:
                    continue
                for sql in statements:
                    tx.command(sql.format(db=self.db))
                tx.insert(f"{self.db}.schema_migrations",
                          [{"version": version, "description": description}])
                applied_now.append(version)
        return applied_now

    def schema_version(self) -> int:
        rows = self.query(f"SELECT max(version) AS v FROM {self.db}.schema_migrations")
        return int(rows[0]["v"]) if rows else 0

    def write(self, events: Iterable[ev.Event], topic: str = "") -> int:
        """Store events whose ``event_id`` is new; returns how many were new."""
        return self.write_batch([(topic, event, None) for event in events])

    def write_batch(self, items: Iterable[tuple[str, ev.Event, bytes | None]]) -> int:
        """Store (topic, event, the bytes it came as or None) whose
        ``event_id`` is new, in one session; returns how many were new.

        Duplicates inside the batch and ids already stored are skipped, so a
        replay changes nothing. The existence check and the insert run under
        one lock/session on chDB, so two writers cannot both insert an id.
        The bytes, where given, are the stored payload (no second encoding).
        """
        unique: dict[str, tuple[str, ev.Event, bytes | None]] = {}
        for item in items:
            unique.setdefault(item[1].event_id, item)
        if not unique:
            return 0
        with self.backend.transaction() as tx:
            seen = {r["event_id"] for r in tx.query(
                f"SELECT event_id FROM {self.db}.events WHERE event_id IN {{ids:Array(String)}}",
                {"ids": list(unique)})}
            fresh = [item for i, item in unique.items() if i not in seen]
            by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for topic, event, raw in fresh:
                for table, row in rows_for(event, topic, raw).items():
                    by_table[table].append(row)
            # the events log goes last: an id is "seen" only once its typed rows exist
            for table in sorted(by_table, key=lambda t: t == "events"):
                tx.insert(f"{self.db}.{table}", by_table[table])
        return len(fresh)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a query from ``ttfb.store.queries``; values only as parameters."""
        return self.backend.query(sql, params)

    def query_in(self, sql: str, name: str, values: Sequence[str],
                 params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """``query`` with the array parameter ``name`` set to ``values``,
        ``IN_CHUNK`` of them a query (chDB takes minutes over an ``IN`` of
        30,000 values against a large table): for a query whose rows each
        belong to one value (a filter, a ``GROUP BY`` the value)."""
        rows: list[dict[str, Any]] = []
        for i in range(0, len(values), IN_CHUNK):
            rows += self.query(sql, {**(params or {}), name: list(values[i:i + IN_CHUNK])})
        return rows

    def strings(self, sql: str, params: dict[str, Any] | None = None) -> list[bytes]:
        """A query whose every column is a String: their values as bytes, row
        after row (no JSON around them: the cheap way to read payloads)."""
        return self.backend.strings(sql, params)

    def count(self, table: str) -> int:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        return int(self.query(f"SELECT count() AS n FROM {self.db}.{table} FINAL")[0]["n"])

    def truncate(self, tables: Sequence[str] = TABLES) -> None:
        with self.backend.transaction() as tx:
            for table in tables:
                if table not in TABLES:
                    raise ValueError(f"unknown table {table!r}")
                tx.command(f"TRUNCATE TABLE IF EXISTS {self.db}.{table}")


def open_store(settings: Settings, migrate: bool = True,
               lock_timeout: float | None = None, hold_s: float = 0.0) -> Store:
    """The store the settings point at, migrated unless told otherwise;
    ``hold_s``: an embedded store's session is kept that long after it opens
    (``ChdbBackend``), for a writer of batches in quick succession."""
    backend: Backend
    if settings.embedded_store:
        backend = ChdbBackend(settings.chdb_path, lock_timeout=settings.store_lock_timeout_s
                              if lock_timeout is None else lock_timeout, hold_s=hold_s)
    else:
        backend = ServerBackend(
            settings.clickhouse_url, settings.clickhouse_user,
            settings.clickhouse_password.get_secret_value(), settings.clickhouse_database,
        )
    store = Store(backend, settings.clickhouse_database)
    if migrate:
        store.migrate()
    return store
