"""The ``ttfb`` command line.

The core package imports none of the application folders: each command is
named here by the dotted path of its implementation and imported only when
run, so ``import ttfb`` stays light and dependencies point one way.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# command -> "module:function"; each function takes (args, settings) and returns an exit code
COMMANDS = {
    "up": "producers.lab:up_command",
    "run": "agents.local:run_command",
    "demo-repo": "agents.local:demo_repo_command",
    "shrink": "agents.local:shrink_command",
    "detect": "producers.offline:detect_command",
    "ab": "producers.experiments:ab_command",
    "check": "producers.experiments:check_command",
    "bisect": "producers.bisect_cli:bisect_command",
    "alerts": "producers.alerts:tail_command",
}


def _up(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("up", help="start broker, streams, agent and dashboard; request demo runs")
    p.add_argument("--headless", action="store_true", help="no dashboard; exit when done")
    p.add_argument("--runs", type=int, default=3, help="demo runs to request and wait for")
    p.add_argument("--json", action="store_true", help="print the runs as JSON")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the runs")
    p.add_argument("--demo", action="store_true",
                   help="play the demo repository's history; print a summary of what was found")


def _run(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="measure a scenario or a script locally (no bus)")
    p.add_argument("--scenario", help="catalog scenario name")
    p.add_argument("--repo", help="repository path (for --scenario)")
    p.add_argument("--commit", default="HEAD", help="revision (for --scenario)")
    p.add_argument("--script", help="an unmodified training script to measure")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--production", action="store_true", help="use the unshrunk config")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--json", action="store_true")
    p.add_argument("script_args", nargs="*", help="arguments after -- go to the script")


def _misc(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo-repo", help="write the demo training repository with history")
    p.add_argument("path")
    p = sub.add_parser("shrink", help="show a scenario's shrunk config; --check runs both")
    p.add_argument("--scenario", required=True)
    p.add_argument("--repo", help="repository path (default: a fresh demo repository)")
    p.add_argument("--check", action="store_true", help="run both and report parity and cost")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("detect", help="run the detector over a CSV history")
    p.add_argument("--input", required=True, help="CSV with series, order, value[, commit]")
    p.add_argument("--json", action="store_true")
    p.add_argument("--alpha", type=float, default=None,
                   help="chance that a series with no change shows one (default 0.02)")


def _lab(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ab", help="A/B two arms (revision, python=PATH, env=KEY=VALUE)")
    p.add_argument("--scenario", action="append", required=True, help="repeatable, or 'all'")
    p.add_argument("--repo", required=True)
    p.add_argument("--a", action="append", required=True, metavar="ARM")
    p.add_argument("--b", action="append", required=True, metavar="ARM")
    p.add_argument("--runs", type=int, default=10, help="runs per arm")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("check", help="pre-review: A/B merge base vs head; exit 1 on regression")
    p.add_argument("--repo", required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--head", default="HEAD")
    p.add_argument("--runs", type=int, default=8)
    p = sub.add_parser("bisect", help="find the commit that made a scenario slower")
    p.add_argument("--repo", required=True)
    p.add_argument("--scenario", required=True)
    p.add_argument("--good", required=True)
    p.add_argument("--bad", required=True)
    p.add_argument("--component", default="ttfb", help="a TTFB component, or ttfb (total)")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("alerts", help="alerts: `ttfb alerts tail`")
    p.add_argument("action", choices=["tail"])
    p.add_argument("--scenario")
    p.add_argument("--kind", choices=["regression", "improvement"])
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--json", action="store_true")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ttfb", description="ttfb-lab: time to first batch")
    sub = root.add_subparsers(dest="command", required=True)
    _up(sub)
    _run(sub)
    _misc(sub)
    _lab(sub)
    return root


def resolve(command: str) -> Callable[..., int]:
    module, _, func = COMMANDS[command].partition(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    from ttfb.settings import Settings

    args = parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"ttfb: invalid settings: {exc}", file=sys.stderr)
        return 2
    return int(resolve(args.command)(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
