"""``python -m producers.init``: create topics and migrate the store (cluster set-up)."""

from __future__ import annotations

import asyncio
import sys

from ttfb.bus import ensure_topics
from ttfb.settings import Settings
from ttfb.store import ingest, open_store


def main() -> int:
    settings = Settings()
    if settings.embedded_bus:
        print("producers.init: TTFB_KAFKA_BOOTSTRAP is empty; `ttfb up` sets up the embedded lab",
              file=sys.stderr)
        return 2
    asyncio.run(ensure_topics(settings, timeout=120))
    store = open_store(settings, migrate=False)
    applied = store.migrate()
    # the store follows the setting both ways: on, ClickHouse reads the
    # measurements topic itself, through views made again by this build (the
    # queue's consumer group resumes at its committed offsets); off, they go
    # and the sink writes every topic
    if settings.clickhouse_kafka_ingest:
        ingest.install(store.backend, settings)
    else:
        for sql in ingest.drop_ddl(settings):
            store.backend.command(sql)
    print(f"topics ready; migrations applied: {applied or 'none (up to date)'}; "
          f"ClickHouse reads the measurements topic itself: "
          f"{'yes' if settings.clickhouse_kafka_ingest else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
