"""``ttfb bisect``: the streams' bisect coordinator, started by hand, through the bus."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from ttfb import events as ev
from ttfb.emitter import emit_all
from ttfb.process import raise_if_interrupted
from ttfb.settings import Settings

REPO_NAME = "bisect"


def bisect_command(args: argparse.Namespace, settings: Settings) -> int:
    from agents.catalog import load_catalog
    from agents.workspace import WorkspaceError, resolve
    from producers.lab import lab_for
    from ttfb.labinfo import repo_name
    from ttfb.store import queries

    repo = Path(args.repo).resolve()
    if load_catalog(settings.catalog).get(args.scenario) is None:
        print(f"ttfb bisect: unknown scenario {args.scenario!r}", file=sys.stderr)
        return 2
    try:
        good, bad = resolve(repo, args.good), resolve(repo, args.bad)
    except WorkspaceError as exc:
        print(f"ttfb bisect: {exc}", file=sys.stderr)
        return 2
    with lab_for(settings, {REPO_NAME: str(repo)}) as (lab, store):
        start = ev.RegressionConfirmed(
            scenario=args.scenario, repo=repo_name(lab, str(repo), REPO_NAME),
            component=args.component, commit=bad, good_commit=good, direction="regression",
            producer="ttfb-bisect-cli")
        asyncio.run(emit_all(lab, "bisect-cli", [(start, "detections")]))
        began = time.monotonic()
        deadline = began + args.timeout
        shown = -1
        while time.monotonic() < deadline:
            raise_if_interrupted()
            done = [b for b in queries.bisects(store) if b["detection_id"] == start.detection_id]
            if done:
                break
            spent = queries.runs_since(store, args.scenario, ["bisect", "explain"],
                                       start.occurred_at)
            if spent != shown:  # progress: a person can tell slow from stuck
                shown = spent
                print(f"bisect: {spent} runs so far, {time.monotonic() - began:.0f}s",
                      file=sys.stderr, flush=True)
            time.sleep(1.0)
        else:
            print("ttfb bisect: timed out", file=sys.stderr)
            return 1
    result = done[0]
    for key in ("steps", "explanation"):
        result[key] = json.loads(result[key]) if result[key] else []
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    elif result["error"]:
        print(f"bisect failed: {result['error']}")
    else:
        print(f"culprit {result['culprit']} by {result['author']}: {result['subject']}\n"
              f"effect {float(result['effect_pct']):+.1f}% on {result['component']}, confidence"
              f" {float(result['confidence']):.3f}, {result['runs_spent']} runs")
        for step in result["steps"]:
            print(f"  {step['commit'][:10]} {step['decision']:<8} {step['runs']} runs")
    return 1 if result["error"] else 0
