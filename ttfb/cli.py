"""The ``ttfb`` command line.

The core package imports none of the application folders: each command is
named here by the dotted path of its implementation and imported only when
run, so ``import ttfb`` stays light and dependencies point one way.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# command -> "module:function"; each function takes (args, settings) and returns an exit code
COMMANDS = {
    "up": "producers.lab:up_command",
    "run": "agents.local:run_command",
    "demo-repo": "agents.local:demo_repo_command",
    "shrink": "agents.local:shrink_command",
    "detect": "producers.offline:detect_command",
    "ab": "producers.experiments:ab_command",
    "check": "producers.check:check_command",
    "bisect": "producers.bisect_cli:bisect_command",
    "alerts": "producers.alerts:alerts_command",
    "watch": "producers.watch_cli:watch_command",
    "backfill": "producers.watch_cli:backfill_command",
    "init": "agents.init_cli:init_command",
    "agent": "agents.service:agent_command",
    "api": "producers.api:api_command",
    "replay": "producers.replay_cli:replay_command",
}

EXAMPLES = {
    "up": "ttfb up --demo                      # the demo story, dashboard on :8501",
    "run": "ttfb run --script train.py -- --epochs 1",
    "demo-repo": "ttfb demo-repo /tmp/trainlab",
    "shrink": "ttfb shrink --scenario lm --check",
    "detect": "ttfb detect --input history.csv --json",
    "ab": "ttfb ab --scenario lm --repo . --a HEAD~1 --b HEAD",
    "check": "ttfb check --repo . --base origin/main --head HEAD",
    "bisect": "ttfb bisect --repo . --scenario lm --good v1.2 --bad HEAD --component imports",
    "alerts": "ttfb alerts tail --json --from-beginning",
    "watch": "TTFB_CATALOG=ttfb.toml ttfb watch --repo myproj=~/src/myproj --branch main",
    "backfill": "TTFB_CATALOG=ttfb.toml ttfb backfill --repo myproj=~/src/myproj --last 20",
    "init": "ttfb init --script scripts/train.py -- --batch-size 8 --epochs 1",
    "agent": "TTFB_KAFKA_BOOTSTRAP=kafka:9092 ttfb agent --class h100 --repo myproj=https://...",
    "api": "ttfb api   # then: curl -s localhost:8502/api/v1/alerts?triage=untriaged",
    "replay": "ttfb replay --set detector.min_effect_pct=5   # exit 1: it would decide otherwise",
}


class _Help(argparse.RawDescriptionHelpFormatter):
    """Each option's default shown after it (none for flags and unset options),
    the example kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, argparse.SUPPRESS) \
                or not action.option_strings:
            return text
        return f"{text} (default: {default})".strip()


def _add(sub: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    return sub.add_parser(name, help=help, description=help,  # type: ignore[no-any-return]
                          formatter_class=_Help, epilog=f"example:\n  {EXAMPLES[name]}")


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``low``, else a sentence."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def _repo_path(text: str) -> str:
    """An argparse type: a repository's path, also as ``NAME=PATH`` (the form
    ``watch`` and ``backfill`` take, so one command line can be reused)."""
    name, eq, path = text.partition("=")
    if eq and name and not Path(text).exists() and Path(path).expanduser().exists():
        return str(Path(path).expanduser())
    return str(Path(text).expanduser())


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _up(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _add(sub, "up", help="start broker, streams, agent and dashboard; request demo runs")
    p.add_argument("--headless", action="store_true", help="no dashboard; exit when done")
    p.add_argument("--runs", type=_at_least(1), default=3,
                   help="demo runs to request and wait for")
    p.add_argument("--json", action="store_true", help="print the runs as JSON")
    p.add_argument("--timeout", type=_positive, default=600.0,
                   help="seconds to wait for the runs")
    p.add_argument("--demo", action="store_true",
                   help="play the demo repository's history; print a summary of what was found")
    p = _add(sub, "api", help="serve the lab's JSON API (scenarios, series, alerts, bisects, "
                              "experiments; triage)")
    p.add_argument("--host", help="address to listen on (default: TTFB_API_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: TTFB_API_PORT, 8502)")
    p = _add(sub, "replay", help="fold the lab's history through today's decision rules "
                                 "(or changed ones) and say what they decide otherwise; exit 1 "
                                 "when they do")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a detection Policy field, or detector.FIELD, for this replay "
                        "(repeatable)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")


def _run(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _add(sub, "run", help="measure a scenario or a script locally (no bus)")
    p.add_argument("--scenario", help="catalog scenario name")
    p.add_argument("--repo", type=_repo_path, help="repository path (for --scenario)")
    p.add_argument("--commit", default="HEAD", help="revision (for --scenario)")
    p.add_argument("--script", help="an unmodified training script to measure")
    p.add_argument("--runs", type=_at_least(1), default=1,
                   help="repetitions, each in a fresh process")
    p.add_argument("--production", action="store_true", help="use the unshrunk config")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds a run may take")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("script_args", nargs="*", help="arguments after -- go to the script")


def _misc(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _add(sub, "demo-repo", help="write the demo training repository with history")
    p.add_argument("path")
    p = _add(sub, "shrink", help="show a scenario's shrunk config; --check runs both")
    p.add_argument("--scenario", required=True)
    p.add_argument("--repo", type=_repo_path,
                   help="repository path (default: a fresh demo repository)")
    p.add_argument("--check", action="store_true", help="run both and report parity and cost")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = _add(sub, "detect", help="run the detector over a CSV history")
    p.add_argument("--input", required=True, help="CSV with series, order, value[, commit]")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--alpha", type=float, default=None,
                   help="chance that a series with no change shows one (default 0.02)")
    p.add_argument("--higher-is-better", action="store_true",
                   help="the values are a throughput or a score: a fall is the regression")


def _lab(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _add(sub, "ab", help="A/B two arms (revision, python=PATH, env=KEY=VALUE)")
    p.add_argument("--scenario", action="append", required=True, help="repeatable, or 'all'")
    p.add_argument("--repo", required=True, type=_repo_path,
                   help="the repository's path ([NAME=]PATH)")
    p.add_argument("--a", action="append", required=True, metavar="ARM",
                   help="arm A: a revision, python=PATH, env=KEY=VALUE (repeatable)")
    p.add_argument("--b", action="append", required=True, metavar="ARM",
                   help="arm B, as arm A")
    p.add_argument("--runs", type=_at_least(2), default=10, help="runs per arm")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = _add(sub, "check", help="pre-review: A/B merge base vs head; exit 1 on regression")
    p.add_argument("--repo", required=True, type=_repo_path,
                   help="the repository's path ([NAME=]PATH)")
    p.add_argument("--base", required=True, help="the revision to compare against")
    p.add_argument("--head", default="HEAD", help="the revision under review")
    p.add_argument("--runs", type=_at_least(2), default=8, help="runs per side and scenario")
    p.add_argument("--report", metavar="FILE",
                   help="append the Markdown report here (default: $GITHUB_STEP_SUMMARY "
                        "when set)")
    p.add_argument("--github-repo", metavar="OWNER/NAME",
                   help="with TTFB_GITHUB_TOKEN: post a check run there (default: "
                        "$GITHUB_REPOSITORY)")
    p.add_argument("--pr", type=_at_least(1), default=None,
                   help="with TTFB_GITHUB_TOKEN: the pull request whose comment to keep "
                        "up to date (default: the Actions event's)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = _add(sub, "bisect", help="find the commit that made a scenario slower")
    p.add_argument("--repo", required=True, type=_repo_path,
                   help="the repository's path ([NAME=]PATH)")
    p.add_argument("--scenario", required=True, help="catalog scenario name")
    p.add_argument("--good", required=True, help="a revision without the change")
    p.add_argument("--bad", required=True, help="a revision with the change")
    p.add_argument("--component", default="ttfb", help="a TTFB component, or ttfb (total)")
    p.add_argument("--direction", choices=["regression", "improvement"], default="regression",
                   help="what the change did to the component")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait")
    p.add_argument("--max-runs", type=_at_least(20), default=None,
                   help="runs the bisect may ask for; past them it ends inconclusive with "
                        "the range the culprit most likely lies in (default: its own budget)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    from ttfb.events.decisions import TRIAGE_STATUSES as TRIAGE

    p = _add(sub, "alerts", help="alerts: follow (tail), list as they stand, triage one")
    p.add_argument("action", choices=["tail", "list", "triage"])
    p.add_argument("alert_id", nargs="?", help="triage: the alert's id (`ttfb alerts list`)")
    p.add_argument("--status", choices=list(TRIAGE), help="triage: the alert's new status")
    p.add_argument("--note", default="", help="triage: why")
    p.add_argument("--by", default=None, help="triage: who (default: git's user.name)")
    p.add_argument("--triage", choices=[*TRIAGE, "untriaged"],
                   help="list: only alerts with this triage")
    p.add_argument("--scenario", help="only this scenario's alerts")
    p.add_argument("--kind", choices=["regression", "improvement"], help="only this kind")
    p.add_argument("--from-beginning", action="store_true", help="every stored alert first")
    p.add_argument("--json", action="store_true", help="one JSON object a line")


def _watch(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, text in (
            ("watch", "follow branches of repositories: measure every new commit, confirm, "
                      "bisect and alert (starts the lab unless TTFB_KAFKA_BOOTSTRAP is set)"),
            ("backfill", "measure past commits, oldest first, so detection has a baseline "
                         "from the first new commit")):
        p = _add(sub, name, text)
        p.add_argument("--repo", action="append", required=True, metavar="[NAME=]PATH_OR_URL",
                       help="a local repository or a Git URL (repeatable); NAME is the "
                            "catalog's `repo` (default: the last path part)")
        p.add_argument("--branch", action="append", metavar="BRANCH",
                       help="branch to follow (repeatable; default: the repository's own, "
                            "as its HEAD names it)")
        p.add_argument("--catalog", help="scenario catalog TOML (default: TTFB_CATALOG)")
        p.add_argument("--runs", type=_at_least(1), default=3,
                       help="runs per commit and scenario")
        p.add_argument("--capacity-per-hour", type=int, default=None,
                       help="most runs an hour (default: no limit)")
        p.add_argument("--interval", type=_positive, default=60.0,
                       help="seconds between fetches")
    p.add_argument("--last", type=int, default=None, help="the last N commits of the branch")
    p.add_argument("--since", default=None, help="every commit after this revision")
    p.add_argument("--timeout", type=float, default=7200.0,
                   help="seconds to wait for the runs")
    p = _add(sub, "init", "write a catalog entry for an unmodified training script, after a "
                          "real run of it")
    p.add_argument("--script", required=True, help="the script, inside a git repository")
    p.add_argument("--name", help="scenario name (default: the script's name)")
    p.add_argument("--repo-name", help="repository name (default: its folder's name)")
    p.add_argument("--catalog", help="catalog to append to (default: ttfb.toml at the root)")
    p.add_argument("--python", help="the project's interpreter (default: the lab's)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the runs go")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds a run may take")
    p.add_argument("--workdir", help="the folder its runs start in, from here or from the "
                                     "repository's root (default: the root; where that fails, "
                                     "the script's folder is tried)")
    p.add_argument("--env", action="append", metavar="KEY=VALUE",
                   help="an environment variable of its runs (repeatable)")
    p.add_argument("--link", action="append", metavar="PATH[=TARGET]",
                   help="a file or folder git does not track that the script reads at PATH of "
                        "the repository: each run's checkout links it from TARGET (default: the "
                        "working copy's own; repeatable)")
    p.add_argument("script_args", nargs="*", help="the script's arguments, after --")
    p = _add(sub, "agent", "a measurement agent that joins the cluster (TTFB_KAFKA_BOOTSTRAP) "
                           "or the lab running here, and takes its hardware class's runs")
    p.add_argument("--class", dest="hardware_class",
                   help="hardware class (default: TTFB_AGENT_CLASS, else cuda or cpu)")
    p.add_argument("--id", help="the agent's name in events (default: TTFB_AGENT_ID)")
    p.add_argument("--slots", type=int, help="runs at once (default: TTFB_AGENT_SLOTS)")
    p.add_argument("--catalog", help="scenario catalog TOML (default: TTFB_CATALOG)")
    p.add_argument("--repo", action="append", metavar="NAME=PATH_OR_URL",
                   help="allowlist a repository (repeatable; adds to TTFB_REPOS)")
    watch = sub.choices["watch"]
    watch.add_argument("--headless", action="store_true", help="no dashboard")
    watch.add_argument("--backfill", type=int, default=0, metavar="N",
                       help="first measure the last N commits of each branch")
    watch.add_argument("--once", action="store_true", help="plan what is new, then exit")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ttfb", description="ttfb-lab: time to first batch")
    sub = root.add_subparsers(dest="command", required=True)
    _up(sub)
    _run(sub)
    _misc(sub)
    _lab(sub)
    _watch(sub)
    return root


def resolve(command: str) -> Callable[..., int]:
    module, _, func = COMMANDS[command].partition(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    from ttfb.process import RECEIVED, ignore_further_signals, interrupt_on_signals, interrupted_by

    # from the first moment: a signal before a command sets its own handling
    # still ends in a sentence and an exit code, and the labs started stop. A
    # handler of our own for SIGINT too: asyncio.run replaces only the default
    # one, by cancelling its task, which a client library may swallow
    interrupt_on_signals()
    try:
        code = _main(argv)
    except KeyboardInterrupt:
        name = interrupted_by()
        print(f"ttfb {(argv or sys.argv[1:2] or ['command'])[0]}: interrupted by {name}; "
              "its result is incomplete", file=sys.stderr)
        code = 143 if name == "SIGTERM" else 130
    if RECEIVED:  # a second signal now must not replace the exit code
        ignore_further_signals()
    return code


def _main(argv: Sequence[str] | None) -> int:
    """Parse, build the settings, run the command; its errors as sentences."""
    from ttfb.store.backends import StoreUnavailable

    command = "command"
    try:
        from pydantic import ValidationError
        from pydantic_settings import SettingsError

        from ttfb.settings import Settings

        args = parser().parse_args(argv)
        command = args.command
        try:
            settings = Settings()
        except ValidationError as exc:
            # the fields and why, never their values: settings hold passwords
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                                 for e in exc.errors())
            print(f"ttfb: invalid settings: {problems}", file=sys.stderr)
            return 2
        except SettingsError as exc:  # a list or mapping that is not JSON
            field = re.search(r'field "(\w+)"', str(exc))
            name = f"TTFB_{field[1].upper()}" if field else "a TTFB_ variable"
            print(f"ttfb: invalid settings: {name} is not valid JSON (a list is written "
                  """'["first", "second"]')""", file=sys.stderr)
            return 2
        return int(resolve(args.command)(args, settings) or 0)
    except StoreUnavailable as exc:
        print(f"ttfb {command}: the store is unavailable: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
