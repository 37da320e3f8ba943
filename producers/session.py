"""Finding or starting the lab a command talks to.

``ttfb up`` records its embedded bus in ``<data_dir>/lab.json``; later
commands (``ttfb alerts tail``) find it there. Commands that need agents and
streams of their own (``ttfb ab``, ``ttfb bisect``, ``ttfb check``) start a
headless embedded lab when no cluster is configured.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ttfb.settings import Settings
from ttfb.store import Store, open_store


def lab_file(settings: Settings) -> Path:
    return settings.data_dir / "lab.json"


def record_bus(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lab_file(settings).write_text(json.dumps({"kafka_bootstrap": settings.kafka_bootstrap,
                                              "pid": os.getpid()}))


def forget_bus(settings: Settings) -> None:
    with contextlib.suppress(FileNotFoundError):
        lab_file(settings).unlink()


def running_bus(settings: Settings) -> str:
    """The configured cluster, or the bus of a running ``ttfb up``; empty if none."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    try:
        info = json.loads(lab_file(settings).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return ""
    return str(info["kafka_bootstrap"])


@contextlib.contextmanager
def lab_for(settings: Settings, repos: dict[str, str]) -> Iterator[tuple[Settings, Store]]:
    """Settings and store of a lab able to run ``repos``: the cluster, or a fresh embedded one."""
    if not settings.embedded_bus:
        yield settings, open_store(settings)
        return
    from producers.lab import Lab

    with Lab(settings.model_copy(update={"repos": {**settings.repos, **repos}})) as lab:
        yield lab.settings, open_store(lab.settings)
