"""Explain a regression: which imports or functions grew between good and bad."""

from __future__ import annotations

import pstats
from pathlib import Path
from typing import Any


def summarise_profile(path: Path, top: int = 40) -> dict[str, Any]:
    """Cumulative time per function (ms) of a cProfile dump, the heaviest first."""
    stats = pstats.Stats(str(path))
    rows: list[tuple[str, float]] = []
    for (filename, line, name), (_, _, _, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((f"{Path(filename).name}:{line}:{name}", cumtime * 1000.0))
    rows.sort(key=lambda r: -r[1])
    return {"cumulative_ms": dict(rows[:top])}


def parse_importtime(stderr: str) -> dict[str, float]:
    """Cumulative import time (ms) per module from ``python -X importtime``."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        out[parts[2].strip()] = int(parts[1]) / 1000.0
    return out
