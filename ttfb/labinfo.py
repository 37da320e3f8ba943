"""Finding the lab running here.

``ttfb up`` records its embedded bus in ``<data_dir>/lab.json``; later
commands (``ttfb alerts tail``, an agent joining it) find it there.
``producers.lab.lab_for`` starts a lab of its own for a command when none
runs the repositories it needs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ttfb.settings import Settings


def lab_file(settings: Settings) -> Path:
    return settings.data_dir / "lab.json"


def _write(path: Path, info: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))


def record_bus(settings: Settings, home: Path | None = None) -> None:
    """Record the running lab's bus and store in its data directory, and in
    ``home`` too (``ttfb up --demo`` keeps its own directory under the user's)."""
    info = {"kafka_bootstrap": settings.kafka_bootstrap, "pid": os.getpid(),
            "data_dir": str(settings.data_dir), "repos": settings.repos,
            "catalog": str(settings.catalog or "")}
    for folder in {settings.data_dir, *([home] if home else [])}:
        _write(folder / "lab.json", info)


def forget_bus(settings: Settings, home: Path | None = None) -> None:
    """The bus is gone; the store stays where later commands can read it."""
    for folder in {settings.data_dir, *([home] if home else [])}:
        _write(folder / "lab.json", {"data_dir": str(settings.data_dir)})


def _info(settings: Settings) -> dict[str, object]:
    try:
        data = json.loads(lab_file(settings).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def last_lab(settings: Settings) -> Settings:
    """Settings pointing at the store of the lab that last ran here (the demo's,
    after ``ttfb up --demo``); these settings when there was none."""
    data_dir = _info(settings).get("data_dir")
    if not data_dir or Path(str(data_dir)) == settings.data_dir or not settings.embedded_store:
        return settings
    return settings.model_copy(update={"data_dir": Path(str(data_dir))})


def running_bus(settings: Settings) -> str:
    """The configured cluster, or the bus of a running ``ttfb up``; empty if none."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    info = _info(settings)
    try:
        os.kill(int(str(info["pid"])), 0)
    except (OSError, ValueError, KeyError):
        return ""
    return str(info["kafka_bootstrap"])


def _same(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def repo_name(settings: Settings, path: str, default: str) -> str:
    """The name the lab's agents know ``path`` by (``default`` where none)."""
    return next((n for n, p in settings.repos.items() if _same(p, path)), default)


def running_lab(settings: Settings, repos: dict[str, str]) -> Settings | None:
    """Settings of the embedded lab running here whose agent already runs every
    repository of ``repos`` (by path), or None."""
    info = _info(settings)
    bus = running_bus(settings)
    known = info.get("repos")
    if not bus or not isinstance(known, dict) or not all(
            any(_same(str(p), path) for p in known.values()) for path in repos.values()):
        return None
    catalog = str(info.get("catalog") or "")
    if catalog and settings.catalog and not _same(catalog, str(settings.catalog)):
        return None  # its agent runs another catalog's scenarios
    return settings.model_copy(update={
        "kafka_bootstrap": bus, "data_dir": Path(str(info["data_dir"])),
        "repos": {str(k): str(v) for k, v in known.items()}})
