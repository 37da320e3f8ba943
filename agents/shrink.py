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


def _number(text: str) -> int | float | None:
    for kind in (int, float):
        try:
            return kind(text)  # type: ignore[no-any-return]
        except ValueError:
            continue
    return None


def _rule(flag: str, text: str, rules: ShrinkRules) -> str:
    """A flag's value under ``rules`` (keys are flags: ``--batch-size``, ``--*-size``)."""
    if flag in rules.set:
        return str(rules.set[flag])
    value = _number(text)
    limit = _first_match(flag, rules.cap)
    if limit is not None and value is not None:
        return str(_clamp(value, int(limit)))
    factor = _first_match(flag, rules.scale)
    if factor is not None and value is not None:
        return str(_scale(value, float(factor)))
    return text


def shrink_args(args: list[str], rules: ShrinkRules) -> list[str]:
    """A script's production arguments made cheap: the same rules as a config's,
    keyed by flag, on ``--flag value`` and ``--flag=value``; a flag that ``set``
    names and the arguments lack is added. Positional arguments are kept."""
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(args):
        token = args[i]
        flag, eq, inline = token.partition("=")
        takes_next = not eq and token.startswith("-") and i + 1 < len(args) \
            and not (args[i + 1].startswith("-") and _number(args[i + 1]) is None)
        if token.startswith("-") and (eq or takes_next):
            value = inline if eq else args[i + 1]
            seen.add(flag)
            shrunk = _rule(flag, value, rules)
            out += [f"{flag}={shrunk}"] if eq else [flag, shrunk]
            i += 1 if eq else 2
            continue
        out.append(token)
        i += 1
    for flag, value in rules.set.items():
        if flag.startswith("-") and flag not in seen:
            out += [flag, str(value)]
    return out
