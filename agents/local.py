"""Local commands (no bus): ``ttfb run``, ``ttfb demo-repo``, ``ttfb shrink``."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from agents.catalog import CatalogError, Scenario, load_catalog
from agents.demo_history import write_demo_repo
from agents.fingerprint import fingerprint
from agents.runner import RunOutcome, RunSpec, run_once
from agents.shrink import shrink, shrink_args
from agents.spec import SpecError, spec_for
from agents.workspace import WorkspaceError, Workspaces, temporary_checkout
from ttfb.settings import Settings


def _outcome_json(outcome: RunOutcome) -> dict[str, Any]:
    row: dict[str, Any] = {"status": outcome.status, "ttfb_ms": round(outcome.ttfb_ms, 3),
                           "components": {k: round(v, 3) for k, v in outcome.components.items()}}
    if outcome.status != "completed":
        row.update(reason=outcome.reason, exit_code=outcome.exit_code,
                   stderr_tail=outcome.stderr_tail[-1000:])
    return row


def _print_runs(outcomes: list[RunOutcome], as_json: bool) -> None:
    facts = next((o.facts for o in outcomes if o.facts), {})
    if as_json:
        print(json.dumps({"runs": [_outcome_json(o) for o in outcomes],
                          "fingerprint": fingerprint(facts).model_dump()}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="time to first batch (ms)")
    columns = ["queue", "startup", "imports", "config", "data", "model", "first_step"]
    for name in ["run", *columns, "ttfb", "status"]:
        table.add_column(name, justify="right")
    for i, o in enumerate(outcomes):
        table.add_row(str(i), *(f"{o.components.get(c, 0):.1f}" for c in columns),
                      f"{o.ttfb_ms:.1f}", o.status if o.status == "completed" else o.reason)
    # a terminal's own width; piped, wide enough that no column is cut
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    if bool(args.script) == bool(args.scenario):
        print("ttfb run: give exactly one of --scenario or --script", file=sys.stderr)
        return 2
    if args.script:
        script = Path(args.script).resolve()
        if not script.is_file():
            print(f"ttfb run: no such script {script}", file=sys.stderr)
            return 2
        spec = RunSpec(root=script.parent, script=str(script), args=tuple(args.script_args),
                       timeout_s=args.timeout)
        run_once(spec)  # discarded warm-up: bytecode and page cache
    else:
        try:
            scenario = load_catalog(settings.catalog).get(args.scenario)
        except CatalogError as exc:
            print(f"ttfb run: {exc}", file=sys.stderr)
            return 2
        if scenario is None or not args.repo:
            print(f"ttfb run: unknown scenario {args.scenario!r} or missing --repo",
                  file=sys.stderr)
            return 2
        try:
            root, _ = Workspaces(settings.workspace_dir).checkout(
                scenario.repo, Path(args.repo).resolve(), args.commit)
        except WorkspaceError as exc:
            print(f"ttfb run: {exc}", file=sys.stderr)
            return 2
        try:
            spec = spec_for(scenario, root, args.production, args.timeout)
        except SpecError as exc:
            print(f"ttfb run: {exc}", file=sys.stderr)
            return 2
        run_once(spec)  # discarded warm-up
    outcomes = [run_once(spec) for _ in range(max(1, args.runs))]
    _print_runs(outcomes, args.json)
    return 0 if all(o.status == "completed" for o in outcomes) else 1


def demo_repo_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        manifest = write_demo_repo(Path(args.path))
    except FileExistsError as exc:
        print(f"ttfb demo-repo: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.path} with {len(manifest)} injected changes; manifest in "
          f"{Path(args.path).resolve().parent / 'manifest.json'}")
    return 0


def parity(scenario: Scenario, root: Path, runs: int = 1) -> dict[str, Any]:
    """Run production and shrunk configs; compare modules, phases and cost."""
    results: dict[str, dict[str, Any]] = {}
    for label, production in (("production", True), ("shrunk", False)):
        spec = spec_for(scenario, root, production, timeout=max(scenario.timeout_s, 900.0))
        outcomes = [run_once(spec) for _ in range(runs)]
        failed = [o for o in outcomes if o.status != "completed"]
        if failed:
            return {"scenario": scenario.name, "error": f"{label} run failed: {failed[0].reason}"}
        work = [sum(o.components[c] for c in ("config", "data", "model", "first_step"))
                for o in outcomes]
        results[label] = {"modules": outcomes[0].modules, "phases": outcomes[0].phases,
                          "work_ms": min(work), "ttfb_ms": min(o.ttfb_ms for o in outcomes),
                          "config": spec.config if scenario.entry else {"args": list(spec.args)}}
    prod, small = results["production"], results["shrunk"]
    return {
        "scenario": scenario.name,
        "modules_equal": prod["modules"] == small["modules"],
        "phases_equal": prod["phases"] == small["phases"],
        "parity": prod["modules"] == small["modules"] and prod["phases"] == small["phases"],
        "cost_ratio": round(prod["work_ms"] / max(small["work_ms"], 1e-6), 1),
        "production_work_ms": round(prod["work_ms"], 1),
        "shrunk_work_ms": round(small["work_ms"], 1),
        "phases": small["phases"],
        "only_in_production": sorted(set(prod["modules"]) - set(small["modules"])),
        "only_in_shrunk": sorted(set(small["modules"]) - set(prod["modules"])),
        "shrunk_config": small["config"],
    }


def shrink_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        scenario = load_catalog(settings.catalog).get(args.scenario)
    except CatalogError as exc:
        print(f"ttfb shrink: {exc}", file=sys.stderr)
        return 2
    if scenario is None:
        print(f"ttfb shrink: unknown scenario {args.scenario!r}", file=sys.stderr)
        return 2
    if not args.check:
        shrunk: Any = shrink(scenario.config, scenario.shrink) if scenario.entry else \
            {"args": shrink_args(scenario.args, scenario.shrink)}
        print(json.dumps(shrunk, indent=2))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(args.repo) if args.repo else Path(tmp) / "repo"
        if not args.repo:
            write_demo_repo(repo)
        try:
            with temporary_checkout(scenario.repo, repo.resolve(), "HEAD") as (root, _):
                report = parity(scenario, root)
        except (WorkspaceError, SpecError) as exc:
            print(f"ttfb shrink: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['scenario']}: parity={'yes' if report.get('parity') else 'NO'} "
              f"(modules {report.get('modules_equal')}, phases {report.get('phases_equal')}); "
              f"cost ratio {report.get('cost_ratio')}x "
              f"({report.get('production_work_ms')} ms -> {report.get('shrunk_work_ms')} ms)"
              + (f"; error: {report['error']}" if "error" in report else ""))
    return 0 if report.get("parity") and report.get("cost_ratio", 0) >= 10 else 1
