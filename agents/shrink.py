"""Auto-shrinker: production config -> cheap config that runs the same code.

Rules, applied per key: ``set`` overrides exactly; ``cap`` (glob -> maximum)
clamps numbers, element-wise for lists; ``scale`` (glob -> factor) multiplies
numbers. Keys that no rule names keep their production value, so code paths
chosen by flags are unchanged.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from agents.catalog import ShrinkRules


def _first_match(key: str, patterns: dict[str, Any]) -> Any | None:
    for pattern, value in patterns.items():
        if fnmatchcase(key, pattern):
            return value
    return None


def _clamp(value: Any, limit: int) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return min(value, limit)
    if isinstance(value, list):
        return [_clamp(v, limit) for v in value]
    return value


def _scale(value: Any, factor: float) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return max(1, int(round(value * factor)))
    if isinstance(value, float):
        return value * factor
    if isinstance(value, list):
        return [_scale(v, factor) for v in value]
    return value


def shrink(config: dict[str, Any], rules: ShrinkRules) -> dict[str, Any]:
    """Return the shrunk copy of ``config`` under ``rules``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in rules.set:
            out[key] = rules.set[key]
            continue
        limit = _first_match(key, rules.cap)
        if limit is not None:
            out[key] = _clamp(value, int(limit))
            continue
        factor = _first_match(key, rules.scale)
        out[key] = _scale(value, float(factor)) if factor is not None else value
    for key, value in rules.set.items():
        out.setdefault(key, value)
    return out
