"""``ttfb bisect``: the streams' bisect coordinator, started by hand, through the bus."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ttfb import events as ev
from ttfb.emitter import emit_all
from ttfb.process import raise_if_interrupted
from ttfb.settings import Settings

REPO_NAME = "bisect"


def bisect_command(args: argparse.Namespace, settings: Settings) -> int:
    from agents.catalog import load_catalog
    from agents.workspace import WorkspaceError, commit_range, is_ancestor, resolve
    from producers.lab import lab_for
    from ttfb.labinfo import repo_name
    from ttfb.store import queries

    repo = Path(args.repo).resolve()
    if load_catalog(settings.catalog).get(args.scenario) is None:
        print(f"ttfb bisect: unknown scenario {args.scenario!r}", file=sys.stderr)
        return 2
    try:
        good, bad = resolve(repo, args.good), resolve(repo, args.bad)
        listed = [sha for sha, _, _ in commit_range(repo, good, bad)][:ev.MAX_RANGE + 1]
        if good == bad or not is_ancestor(repo, good, bad):
            raise WorkspaceError(f"--good {args.good} is not an earlier commit of --bad "
                                 f"{args.bad}'s history: nothing lies between them to search"
                                 " (were they swapped?)")
    except WorkspaceError as exc:
        print(f"ttfb bisect: {exc}", file=sys.stderr)
        return 2
    with lab_for(settings, {REPO_NAME: str(repo)}) as (lab, store):
        # the lab's monitoring runs of the range, if it has made any: the
        # search starts from them, as it does after a confirmation
        monitored = monitored_runs(store, args.scenario, args.component, listed)
        start = ev.RegressionConfirmed(
            scenario=args.scenario, repo=repo_name(lab, str(repo), REPO_NAME),
            component=args.component, commit=bad, good_commit=good, direction=args.direction,
            bisect_max_runs=args.max_runs or 0, monitored=monitored,
            producer="ttfb-bisect-cli")
        if monitored:
            print(f"starting from {sum(map(len, monitored.values()))} monitoring runs of "
                  f"{len(monitored)} commits in the range", file=sys.stderr, flush=True)
        asyncio.run(emit_all(lab, "bisect-cli", [(start, "detections")]))
        began = time.monotonic()
        deadline = began + args.timeout
        shown = ""
        while time.monotonic() < deadline:
            raise_if_interrupted()
            done = [b for b in queries.bisects(store) if b["detection_id"] == start.detection_id]
            if done:
                break
            line = _progress(store, start)
            if line != shown:  # a person can tell slow from stuck
                shown = line
                print(f"{line}, {time.monotonic() - began:.0f}s", file=sys.stderr, flush=True)
            time.sleep(1.0)
        else:
            print("ttfb bisect: timed out", file=sys.stderr)
            return 1
    result = done[0]
    for key in ("steps", "explanation"):
        result[key] = json.loads(result[key]) if result[key] else []
    result["changed_files"] = list(result["changed_files"])
    _report(result, args.json)
    return 1 if result["error"] or result["inconclusive"] else 0


def _report(result: dict[str, Any], as_json: bool) -> None:
    """The bisect's result: JSON, or what a person reads."""
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    elif result["error"]:
        print(f"bisect failed: {result['error']}")
    elif result["inconclusive"]:
        print(f"inconclusive after {result['runs_spent']} runs (--max-runs): the culprit is "
              f"most likely (p = {float(result['likely_mass']):.2f}) after "
              f"{result['likely_after'][:10]} up to {result['likely_last'][:10]}; bisect "
              "that range again, or allow more runs")
    else:
        print(f"culprit {result['culprit']} by {result['author']}: {result['subject']}\n"
              f"effect {float(result['effect_pct']):+.1f}% on {result['component']}, confidence"
              f" {float(result['confidence']):.3f}, {result['runs_spent']} runs")
        for step in result["steps"]:
            print(f"  {step['commit'][:10]} {step['decision']:<8} {step['runs']} runs")
        if result["changed_files"]:
            print(f"it changed what the scenario imports or reads: "
                  f"{', '.join(result['changed_files'])}")
        if result["explanation"]:
            print("what grew from the culprit's parent to the culprit:")
            for entry in result["explanation"][:EXPLAINED]:
                where = f" ({entry['where']})" if entry.get("where") else ""
                print(f"  {float(entry['delta_ms']):+,.1f} ms  {entry['name']}{where}")


EXPLAINED = 5  # entries of the explanation the text output shows (--json: every one)


def monitored_runs(store: Any, scenario: str, component: str, commits: list[str],
                   per_commit: int = 3) -> dict[str, list[float]]:
    """The stored monitoring runs of ``commits`` in one component (``ttfb``:
    the total), ms: each commit's newest ``per_commit``, oldest first, from
    the hardware that ran most of them (a bisect's runs are compared with
    them)."""
    if not commits:
        return {}
    rows = store.query(
        f"SELECT commit, hardware_id,"
        " if({c:String} = 'ttfb', ttfb_ms, components[{c:String}]) AS ms,"
        " row_number() OVER (PARTITION BY commit, hardware_id"
        "   ORDER BY occurred_at DESC) AS newest"
        f" FROM {store.db}.runs FINAL"
        " WHERE scenario = {s:String} AND status = 'completed'"
        " AND purpose IN ('monitor', 'demo', 'adhoc') AND commit IN {cs:Array(String)}"
        " AND ({c:String} = 'ttfb' OR mapContains(components, {c:String}))"
        " ORDER BY occurred_at",
        {"s": scenario, "c": component, "cs": commits})
    rows = [r for r in rows if int(r["newest"]) <= per_commit and float(r["ms"]) > 0]
    if not rows:
        return {}
    hardware = Counter(r["hardware_id"] for r in rows).most_common(1)[0][0]
    out: dict[str, list[float]] = {}
    for r in rows:
        if r["hardware_id"] == hardware:
            out.setdefault(str(r["commit"]), []).append(float(r["ms"]))
    return {c: out[c] for c in commits if c in out}


def _progress(store: Any, start: ev.RegressionConfirmed) -> str:
    """One line of where the bisect stands: runs, the range the culprit most
    likely lies in, the likeliest commit; runs alone until its search begins."""
    from ttfb.store import queries

    state = queries.bisect_progress(store, start.scenario, start.detection_id)
    if state is None:
        spent = queries.runs_since(store, start.scenario, ["bisect", "explain"],
                                   start.occurred_at)
        return f"bisect: {spent} runs so far (endpoints)"
    budget = f"/{state['max_runs']}" if state["max_runs"] else ""
    # the candidates stay every commit of the range: what narrows is the likely range
    return (f"bisect: {state['runs_spent']}{budget} runs, {state['candidates']} commits "
            f"in range; likely after {state['likely_after'][:10]} up to "
            f"{state['likely_last'][:10]} (p = {state['likely_mass']:.2f}); likeliest "
            f"{state['likeliest'][:10]} at {state['probability']:.2f}")
