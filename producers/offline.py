"""``ttfb detect --input FILE.csv``: the lab's change detection over a whole history, offline."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from ttfb.settings import Settings
from ttfb.stats import HistoryConfig, detect_history, group_points
from ttfb.stats.season import season_of


class HistoryError(ValueError):
    pass


def _order(text: str) -> float:
    """Commit index or timestamp (ISO 8601 or a number)."""
    try:
        return float(text)
    except ValueError:
        from datetime import datetime

        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise HistoryError(f"order {text!r} is neither a number nor a timestamp") from None


def read_history(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    """CSV columns series, order, value[, commit] -> rows per series."""
    rows: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    # utf-8-sig: a spreadsheet's export starts with a byte-order mark
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        # " Value" is the column value: exports pad and capitalise headers
        reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
        missing = {"series", "order", "value"} - set(reader.fieldnames)
        if missing:
            raise HistoryError(f"{path}: missing column(s) {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            if None in (row["series"], row["order"], row["value"]):
                raise HistoryError(f"{path}:{line}: the row has fewer columns than the header")
            try:
                value = float(row["value"])
            except ValueError:
                raise HistoryError(f"{path}:{line}: value {row['value']!r} is not a number") \
                    from None
            # a NaN or non-positive value is no timing: the detector ignores it,
            # but its order still counts for the index of what comes after
            order = row["order"].strip()
            rows[row["series"]].append((_order(order), value, row.get("commit") or order))
    return rows


def seasons(history: dict[str, list[tuple[float, float, str]]],
            cfg: HistoryConfig) -> dict[str, int]:
    """The series read over whole periods, and their period in commits."""
    if cfg.season_z <= 0:  # seasons off: no series is read so, none need testing
        return {}
    found = {name: season_of(group_points(rows)) for name, rows in sorted(history.items())}
    return {name: p for name, p in found.items() if p is not None}


def detections(history: dict[str, list[tuple[float, float, str]]], cfg: HistoryConfig,
               higher_is_better: bool = False) -> list[dict[str, Any]]:
    """Every change of every series; a rise is a regression unless
    ``higher_is_better`` (throughput, a score)."""
    flip = {"regression": "improvement", "improvement": "regression"}
    out = []
    for name in sorted(history):
        for change in detect_history(group_points(history[name]), cfg):
            direction = flip[change.direction] if higher_is_better else change.direction
            out.append({"series": name, "index": change.index, "order": change.order,
                        "commit": change.commit, "direction": direction,
                        "effect_pct": round(change.effect_pct, 3),
                        "ci_low_pct": round(change.comparison.ci_low_pct, 3),
                        "ci_high_pct": round(change.comparison.ci_high_pct, 3),
                        "p_value": change.p_value})
    return out


OFFLINE_DEFAULT = HistoryConfig()


def detect_command(args: argparse.Namespace, settings: Settings) -> int:
    cfg = OFFLINE_DEFAULT if args.alpha is None else replace(OFFLINE_DEFAULT, alpha=args.alpha)
    if not 0 < cfg.alpha < 1:
        print(f"ttfb detect: --alpha must lie between 0 and 1, got {cfg.alpha}", file=sys.stderr)
        return 2
    try:
        history = read_history(Path(args.input))
    except (OSError, HistoryError) as exc:
        print(f"ttfb detect: {exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"ttfb detect: {args.input} is not a UTF-8 text CSV (series, order, value"
              "[, commit])", file=sys.stderr)
        return 2
    usable = {name: rows for name, rows in history.items()
              if any(v > 0 and v == v for _, v, _ in rows)}
    if not usable:
        print(f"ttfb detect: {args.input} holds no positive value: a timing is a positive "
              "number of milliseconds (non-positive and NaN values are ignored)",
              file=sys.stderr)
        return 2
    dropped = sorted(set(history) - set(usable))
    if dropped:
        print(f"ttfb detect: skipped {len(dropped)} series with no positive value: "
              f"{', '.join(dropped[:5])}{' ...' if len(dropped) > 5 else ''}", file=sys.stderr)
    found, periods = detections(usable, cfg, args.higher_is_better), seasons(usable, cfg)
    if args.json:
        print(json.dumps({"detections": found, "seasons": periods}, indent=2))
    else:
        for name, commits in periods.items():
            print(f"{name}: a season of {commits} commits; its changes are read over whole "
                  "periods (a period's commits after each commit against the period's before,"
                  f" at {cfg.season_z:g} robust standard deviations; p is that peak's own)")
        for d in found:
            print(f"{d['series']}: {d['direction']} at index {d['index']} (order {d['order']:g},"
                  f" commit {d['commit']}): {d['effect_pct']:+.1f}% p={d['p_value']:.2g}")
        if not found:
            print("no change detected")
    return 0
