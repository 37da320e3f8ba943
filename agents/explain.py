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


def summarise_imports(path: Path, top: int = 2000, min_ms: float = 0.5) -> dict[str, float]:
    """Cumulative import time per module (ms) from ``python -X importtime`` output.

    Each line reads ``import time: self [us] | cumulative | <indent>module``;
    a module imported twice keeps its first (real) import.
    """
    cumulative: dict[str, float] = {}
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:"):].split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue  # the header line
        name = fields[2].strip()
        cumulative.setdefault(name, int(fields[1]) / 1000.0)
    # every module that costs something: a module missing on one side reads as 0 ms
    heaviest = sorted(((k, v) for k, v in cumulative.items() if v >= min_ms),
                      key=lambda kv: -kv[1])[:top]
    return dict(heaviest)
