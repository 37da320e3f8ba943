"""``python -m producers.init``: create topics and migrate the store (cluster set-up)."""

from __future__ import annotations

import asyncio
import sys

from ttfb.bus import ensure_topics
from ttfb.settings import Settings
from ttfb.store import open_store


def main() -> int:
    settings = Settings()
    if settings.embedded_bus:
        print("producers.init: TTFB_KAFKA_BOOTSTRAP is empty; `ttfb up` sets up the embedded lab",
              file=sys.stderr)
        return 2
    asyncio.run(ensure_topics(settings, timeout=120))
    applied = open_store(settings).migrate()
    print(f"topics ready; migrations applied: {applied or 'none (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
