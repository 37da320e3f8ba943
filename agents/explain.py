"""Summarise a cProfile dump of a run, for explaining a regression."""

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
