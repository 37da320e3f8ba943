"""``ttfb replay``: the lab's history through today's decision rules.

Every event the store holds for the decision folds is folded, in the order
it occurred, from empty states and without a broker (``streams.rebuild``),
by the rules of this build, optionally changed with ``--set`` (a field of
the detection ``Policy`` or its ``detector``): what a new rule would have
decided over months of real runs, before it decides anything live.

The replay's decisions are compared with the stored ones. Every output's id
is derived from its input's, so a decision made again the same way has the
same id: a finding, alert or bisect result the replay makes that the store
lacks (or has otherwise) is a difference, and so is one the store has that
the replay does not make. A confirmation today's rules would start that the
lab never started has no runs in the history: it is counted as needing
fresh runs, not decided.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter
from typing import Any

from ttfb import events as ev
from ttfb.settings import Settings

DECISIONS = ("CandidateDetected", "RegressionConfirmed", "ImprovementConfirmed",
             "DetectionDismissed", "Alert", "BisectCompleted")
COMPARED = ("type", "scenario", "component", "commit", "good_commit", "direction", "kind",
            "status", "culprit")


class ReplayError(ValueError):
    pass


def policy_with(changes: list[str]) -> Any:
    """Today's ``Policy`` with ``KEY=VALUE`` changes (``detector.KEY`` for
    the detector's), each value parsed as JSON, else kept as text."""
    from streams.detection import Policy

    policy = Policy()
    for change in changes:
        key, sep, text = change.partition("=")
        if not sep:
            raise ReplayError(f"--set {change!r}: expected KEY=VALUE")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        target_name, _, field = key.rpartition(".")
        if key == "detector.min_effect_ms":
            raise ReplayError("--set detector.min_effect_ms: the fold sets it from "
                              "min_effect_ttfb_pct (a share of the scenario's TTFB); set that")
        if target_name not in ("", "detector"):
            raise ReplayError(f"--set {key!r}: only Policy fields and detector.FIELD")
        target: Any = policy.detector if target_name == "detector" else policy
        names = {f.name for f in dataclasses.fields(target)}
        if field not in names:
            raise ReplayError(f"--set {key!r}: no such field; one of "
                              f"{sorted(names)}")
        updated = dataclasses.replace(target, **{field: value})
        policy = dataclasses.replace(policy, detector=updated) if target_name == "detector" \
            else updated
    return policy


def _summary(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event.get(k) for k in COMPARED if event.get(k) not in (None, "")}


def replay_history(settings: Settings, changes: list[str]) -> dict[str, Any]:
    """The replay's decisions against the stored ones."""
    from streams.rebuild import open_for_rebuild, replay, stored_events

    policy = policy_with(changes)
    store = open_for_rebuild(settings)
    try:
        started = time.perf_counter()
        # the log streamed into the fold, page by page (a year of it never in
        # memory at once); every decision kept, to compare with every stored one,
        # and the runs it asked for, to count those the history never had
        rebuilt = replay(stored_events(store, settings),
                         dataclasses.replace(policy, dashboard_url=settings.public_url()),
                         keep=None, kept=lambda o: getattr(o, "type", "") in DECISIONS
                         or isinstance(o, ev.RunRequested))
        loaded = time.perf_counter() - started - rebuilt.seconds
        made = {i: json.loads(ev.encode(o)) for i, o in rebuilt.outputs.items()
                if getattr(o, "type", "") in DECISIONS}
        stored = {r["event_id"]: json.loads(r["payload"]) for r in store.query(
            f"SELECT event_id, payload FROM {store.db}.events WHERE type IN {{t:Array(String)}}",
            {"t": list(DECISIONS)})}
        asked = {o.request_id for o in rebuilt.outputs.values() if isinstance(o, ev.RunRequested)}
        answered = {r["request_id"] for r in store.query_in(
            f"SELECT DISTINCT request_id FROM {store.db}.runs WHERE request_id IN"
            " {ids:Array(String)}", "ids", sorted(asked))}
    finally:
        store.close()
    changed = [i for i in made.keys() & stored.keys()
               if _summary(made[i]) != _summary(stored[i])]
    only_replay = [made[i] for i in made if i not in stored]
    only_stored = [stored[i] for i in stored if i not in made]
    return {
        "events": rebuilt.events, "load_seconds": round(loaded, 3),
        "fold_seconds": round(rebuilt.seconds, 3),
        "events_per_second": round(rebuilt.events / rebuilt.seconds) if rebuilt.seconds else 0,
        "changes": changes, "same": len(made.keys() & stored.keys()) - len(changed),
        "only_today": [_summary(e) for e in only_replay],
        "only_then": [_summary(e) for e in only_stored],
        "changed": [{"then": _summary(stored[i]), "today": _summary(made[i])} for i in changed],
        "runs_needed": sum(1 for r in asked if r not in answered),
    }


def _counts(rows: list[dict[str, Any]]) -> str:
    counts = Counter(r.get("type", "?") for r in rows)
    return ", ".join(f"{n} {t}" for t, n in sorted(counts.items())) or "none"


def replay_command(args: argparse.Namespace, settings: Settings) -> int:
    from ttfb.labinfo import last_lab, running_bus

    settings = last_lab(settings)
    if settings.embedded_store and running_bus(settings):
        print("ttfb replay: the lab in this data directory is running and holds its store; "
              "stop it first (or replay a copy of the data directory)", file=sys.stderr)
        return 2
    try:
        result = replay_history(settings, args.set or [])
    except ReplayError as exc:
        print(f"ttfb replay: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(f"replayed {result['events']:,} events in {result['fold_seconds']:.2f} s "
              f"({result['events_per_second']:,}/s; loading them {result['load_seconds']:.2f} s)"
              + (f" with {', '.join(result['changes'])}" if result["changes"] else ""))
        print(f"decided the same: {result['same']}")
        print(f"only today's rules: {_counts(result['only_today'])}")
        print(f"only the lab then: {_counts(result['only_then'])}")
        print(f"decided otherwise: {len(result['changed'])}")
        for row in [*result["only_today"], *result["only_then"]]:
            if row.get("type") in ("Alert", "RegressionConfirmed", "ImprovementConfirmed"):
                side = "today" if row in result["only_today"] else "then "
                print(f"  {side} {row.get('type')}: {row.get('scenario')}/"
                      f"{row.get('component')} at {str(row.get('commit', ''))[:10]}")
        if result["runs_needed"]:
            print(f"today's rules would ask for {result['runs_needed']} run request(s) the "
                  "history has no runs for: those decisions need fresh runs")
    differs = result["only_today"] or result["only_then"] or result["changed"]
    return 1 if differs else 0
