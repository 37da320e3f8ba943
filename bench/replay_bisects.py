"""A demo run's stored bisects, folded again with today's bisect policy.

Every bisect a lab stored is replayed from its own events (the confirmation
that started it, the commit range the agent listed, every run it got back),
in the order they were stored, through ``streams.bisect.decide``. The fold
is pure, so a bisect whose policy has not changed asks for the same runs and
reaches the same end; where the policy now ends it sooner (a change that
did not reproduce), the runs it no longer asks for are left out. Prints,
per bisect, the stored result beside the replayed one.

    .venv/bin/python bench/replay_bisects.py DATA_DIR [DATA_DIR ...]
    .venv/bin/python bench/replay_bisects.py --rehint DATA_DIR ...

``--rehint`` lists each range's ``affected`` hint again with today's agent
rule (``agents.workspace.touches_code``) on the lab's own demo repository
(``DATA_DIR/demo/repo``), from the modules of the scenario's latest run
before the listing. A bisect whose prior changes may ask for runs the lab
never made; it then stays unfinished.

DATA_DIR is a lab's data directory (``.ttfb/demo-lab`` after
``ttfb up --demo``); nothing else may hold its store while this reads it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agents.workspace import touches_code
from streams.bisect import BisectBook, BisectPolicy, decide
from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.store import open_store


def rehinted(listed: ev.CommitRangeListed, repo: Path,
             modules: set[str]) -> ev.CommitRangeListed:
    """The listing with its ``affected`` hint as the agent would give it now."""
    if not listed.affected or not listed.commits:
        return listed
    return listed.model_copy(update={"affected": touches_code(
        repo, listed.commits[0], listed.commits[-1], listed.commits, modules)})


def replay(data_dir: str, policy: BisectPolicy, rehint: bool = False) -> list[dict[str, Any]]:
    store = open_store(Settings(data_dir=data_dir))
    rows = store.query("SELECT type, payload FROM ttfb.events WHERE type IN"
                       " ('RegressionConfirmed', 'ImprovementConfirmed', 'CommitRangeListed',"
                       " 'RunCompleted', 'RunFailed', 'BisectCompleted')"
                       " ORDER BY occurred_at, event_id")
    stored = {}
    book, results = BisectBook(), {}
    latest_modules: dict[str, set[str]] = {}
    repo = Path(data_dir) / "demo" / "repo"
    for row in rows:
        event = ev.decode(row["payload"])
        if isinstance(event, ev.RunCompleted) and event.modules:
            latest_modules[event.scenario] = set(event.modules)
        if rehint and isinstance(event, ev.CommitRangeListed):
            event = rehinted(event, repo, latest_modules.get(event.scenario, set()))
        if isinstance(event, ev.BisectCompleted):
            stored[event.bisect_id] = event
            continue
        if isinstance(event, (ev.RunCompleted, ev.RunFailed)) and \
                event.purpose not in ("bisect", "explain"):
            continue
        book, out = decide(book, event, policy)
        for done in out:
            if isinstance(done, ev.BisectCompleted) and done.bisect_id not in results:
                results[done.bisect_id] = done
    report = []
    for bisect_id, before in stored.items():
        after = results.get(bisect_id)
        report.append({
            "scenario": before.scenario, "component": before.component,
            "direction": before.direction, "effect_pct": round(before.effect_pct, 1),
            "ci_pct": [round(before.ci_low_pct, 1), round(before.ci_high_pct, 1)],
            "stored_culprit": before.culprit[:10],
            "stored_confidence": round(before.confidence, 2),
            "stored_runs": before.runs_spent,
            "replayed_culprit": after.culprit[:10] if after else "(unfinished)",
            "replayed_reproduced": after.reproduced if after else None,
            "replayed_runs": after.runs_spent if after else None,
            # what an explanation leads with, before and as today's rules read it
            "stored_explanation": [e["name"] for e in before.explanation[:3]],
            "replayed_explanation": [e["name"] for e in after.explanation[:3]] if after else []})
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dirs", nargs="+")
    parser.add_argument("--rehint", action="store_true",
                        help="the ranges' affected hints as today's agent gives them")
    args = parser.parse_args()
    policy = BisectPolicy()
    for data_dir in args.data_dirs:
        print(f"== {data_dir}")
        for row in replay(data_dir, policy, rehint=args.rehint):
            print(json.dumps(row))


if __name__ == "__main__":
    main()
