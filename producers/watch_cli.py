"""``ttfb watch`` and ``ttfb backfill``: the commands around ``producers.watch``.

On the embedded default ``ttfb watch`` starts the whole lab itself (broker,
streams, agent, dashboard unless ``--headless``), rebuilding the decision
state from the store; with ``TTFB_KAFKA_BOOTSTRAP`` set it only plans and
sends, as a service of a cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.catalog import CatalogError, load_catalog
from producers.alerts import line as alert_line
from producers.watch import (
    Source,
    Watcher,
    WatchError,
    branches,
    bus_sender,
    check_named,
    has_branch,
    parse_source,
    publish_thresholds,
    update,
)
from ttfb.events import failure_summary
from ttfb.process import interrupted_by, raise_if_interrupted
from ttfb.settings import Settings
from ttfb.store import Store, StoreUnavailable, open_store, queries, watching

ALERTS_EVERY = 10.0  # seconds between a watcher's looks for new alerts, at most


class Progress:
    """One line a person follows: a live line on a terminal, plain lines otherwise."""

    def __init__(self, store: Store, repos: list[str], live: bool | None = None,
                 alerts: bool = False) -> None:
        self.store, self.repos = store, repos
        self.live = sys.stderr.isatty() if live is None else live
        self.last = ""
        self.said: set[str] = set()  # failure lines printed so far
        # ``alerts``: each alert's line once per status it reaches (confirmed,
        # attributed, retracted), on standard output, from the first look on
        self.alerts = alerts
        self.told: set[tuple[str, str]] | None = None
        self.looked = 0.0

    def line(self) -> str:
        totals: dict[str, int] = {}
        for repo in self.repos:
            for key, value in watching.watch_progress(self.store, repo).items():
                # alerts and bisects are the lab's, not per repository
                totals[key] = value if key in ("attributed", "bisected") \
                    else totals.get(key, 0) + value
        return (f"commits planned {totals.get('planned', 0)}"
                f" (unaffected {totals.get('unaffected', 0)}),"
                f" runs done {totals.get('runs_done', 0)}/{totals.get('runs_queued', 0)},"
                f" candidates {totals.get('candidates', 0)},"
                f" confirmed {totals.get('confirmed', 0)},"
                f" bisected {totals.get('bisected', 0)},"
                f" attributed alerts {totals.get('attributed', 0)}")

    def show(self) -> None:
        try:
            line = self.line()
            failed = watching.recent_failures(self.store, self.repos)
        except StoreUnavailable:
            return
        for run in reversed(failed):
            # each failure said once, as a line of its own; a commit's repetitions
            # failing alike make one line
            message = f"run failed: {run['scenario']} at {str(run['commit'])[:10]}: " \
                f"{failure_summary(run['reason'], run.get('stderr_tail', ''))}"
            if message not in self.said:
                self.said.add(message)
                self.say(message)
        # an alert moves the line's counts, mostly: a second component's
        # confirmation of a change does not, so a look every ALERTS_EVERY too
        if self.alerts and (line != self.last or
                            time.monotonic() - self.looked >= ALERTS_EVERY):
            self.looked = time.monotonic()
            with contextlib.suppress(StoreUnavailable):
                for alert in self.new_alerts():
                    self.say(alert_line(alert), result=True)
        if line == self.last:
            return
        self.last = line
        if self.live:
            sys.stderr.write("\r\x1b[2K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def new_alerts(self) -> list[dict[str, Any]]:
        """Alerts, oldest first, whose status is new since the last look; at
        the first look none (those are history)."""
        rows = queries.current_alerts(self.store)
        now = {(str(r["alert_id"]), str(r["status"])) for r in rows}
        told, self.told = self.told, (self.told or set()) | now
        if told is None:
            return []
        return [r for r in reversed(rows) if (str(r["alert_id"]), str(r["status"])) not in told]

    def say(self, message: str, result: bool = False) -> None:
        """A line for the person following: on standard error, or on standard
        output for the ``result`` a command was run for (``> found.txt``)."""
        if self.live and self.last:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
        print(message, file=sys.stdout if result else sys.stderr, flush=True)
        if self.live and self.last:
            sys.stderr.write(self.last)
            sys.stderr.flush()


def _sources(args: argparse.Namespace, settings: Settings) -> list[Source]:
    sources = [parse_source(spec, settings.data_dir) for spec in args.repo]
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise WatchError(f"two repositories share a name: {', '.join(names)}; "
                         "name them with NAME=LOCATION")
    return sources


@contextlib.contextmanager
def _lab(settings: Settings, sources: list[Source], headless: bool,
         reuse: bool) -> Iterator[tuple[Settings, Callable[[], None]]]:
    """The lab the watcher plans for: a cluster (nothing to start), a running
    embedded lab (``reuse``), or an embedded lab of its own."""
    settings = settings.model_copy(update={
        "repos": {**settings.repos, **{s.name: str(s.path) for s in sources}}})
    if not settings.embedded_bus:
        refusal = settings.key_refusal()
        if refusal:
            raise WatchError(refusal)
        yield settings, raise_if_interrupted
        return
    if reuse:
        from ttfb.labinfo import running_bus

        bus = running_bus(settings)
        if bus:
            yield settings.model_copy(update={"kafka_bootstrap": bus, "embedded_lab": True}), \
                raise_if_interrupted
            return
    from producers.lab import Lab

    lab = Lab(settings, headless=headless, home=settings.data_dir, rebuild=True)
    try:
        lab.start()
        print(f"lab up: bus {lab.settings.kafka_bootstrap}, store {lab.settings.chdb_path},"
              f" logs {lab.logs}" + ("" if headless else f", dashboard "
                                     f"{lab.settings.public_url()}"), file=sys.stderr)
        yield lab.settings, lab.check
    finally:
        lab.stop()


def _watcher(args: argparse.Namespace, settings: Settings, sources: list[Source],
             progress_say: Callable[[str], None]) -> Watcher:
    catalog = load_catalog(args.catalog or settings.catalog)
    store = open_store(settings)
    return Watcher(settings=settings, store=store, catalog=catalog, sources=sources,
                   branches=args.branch or [], send=bus_sender(settings),
                   runs=args.runs, capacity_per_hour=args.capacity_per_hour,
                   interval_s=args.interval, say=progress_say)


def _prepare(args: argparse.Namespace, settings: Settings) -> tuple[Settings, list[Source]]:
    refusal = settings.key_refusal()
    if refusal:
        raise WatchError(refusal)
    catalog_path = Path(args.catalog) if args.catalog else settings.catalog
    sources = _sources(args, settings)
    # a bad catalog, or one naming none of the repositories, stops here: no process started
    check_named(load_catalog(catalog_path), sources)
    failed = []
    for source in sources:
        if source.remote and not source.path.exists():
            print(f"cloning {source.shown} into {source.path}", file=sys.stderr)
        try:
            update(source)
        except WatchError as exc:  # the others go on; the watcher retries and records it
            failed.append(str(exc))
            print(f"problem: {exc}", file=sys.stderr)
    if len(failed) == len(sources):
        raise WatchError("; ".join(failed))
    for branch in args.branch or []:  # a typo would watch nothing, for ever
        if not any(has_branch(s, branch) for s in sources):
            raise WatchError(f"no repository has a branch {branch!r} (" + "; ".join(
                f"{s.name}: {', '.join(branches(s)) or 'none'}" for s in sources) + ")")
    return settings.model_copy(update={"catalog": catalog_path}), sources


def watch_command(args: argparse.Namespace, settings: Settings) -> int:
    def stopped(name: str) -> int:  # the way a watcher is stopped: not a failure
        print(f"\nttfb watch: stopped by {name}; every commit planned so far is recorded",
              file=sys.stderr)
        return 0

    return _guarded("watch", lambda: _watch(args, settings), stopped)


def _watch(args: argparse.Namespace, settings: Settings) -> int:
    settings, sources = _prepare(args, settings)
    with _lab(settings, sources, args.headless, reuse=False) as (lab_settings, lab_check):
        watcher = _watcher(args, lab_settings, sources, print)
        progress = Progress(watcher.store, [s.name for s in sources], alerts=True)
        watcher.say = progress.say
        watcher.tick = _ticker(lab_check, progress)
        watcher.check()
        publish_thresholds(lab_settings, watcher.catalog, str(lab_settings.catalog or
                                                               "the default catalog"))
        watcher.resend_unanswered()
        for source in sources:
            for branch in watcher.branches_of(source):
                if args.backfill:
                    watcher.backfill(source, branch, args.backfill, None)
        while True:
            lab_check()
            watcher.poll()
            progress.show()
            deadline = time.monotonic() + args.interval
            while time.monotonic() < deadline:
                lab_check()
                time.sleep(min(1.0, args.interval))
                progress.show()
            if args.once:
                return 0


def backfill_command(args: argparse.Namespace, settings: Settings) -> int:
    """Plan past commits, oldest first, and wait for their runs."""
    def interrupted(name: str) -> int:
        print(f"\nttfb backfill: interrupted by {name}; the commits planned so far are "
              "recorded", file=sys.stderr)
        return 143 if name == "SIGTERM" else 130

    return _guarded("backfill", lambda: _backfill(args, settings), interrupted)


def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    settings, sources = _prepare(args, settings)
    with _lab(settings, sources, headless=True, reuse=True) as (lab_settings, lab_check):
        watcher = _watcher(args, lab_settings, sources, print)
        progress = Progress(watcher.store, [s.name for s in sources])
        watcher.say = progress.say
        watcher.tick = _ticker(lab_check, progress)
        watcher.check()
        started = datetime.now(UTC)  # what the lab stamps from here on is this backfill's
        planned = [p for source in sources for branch in watcher.branches_of(source)
                   for p in watcher.backfill(source, branch, args.last, args.since)]
        asked = {r: n for _, requests in planned for r, n in requests.items()}
        ids, wanted = list(asked), sum(asked.values())
        progress.say(f"backfill: {len(planned)} commit(s) planned, {wanted} runs to wait for")
        if not wanted:
            progress.say("backfill: these commits change no file the scenarios import or read; "
                         "nothing to run")
            return 0
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            lab_check()
            done, failed = _runs_done(watcher.store, ids)
            progress.show()
            if done >= wanted:
                if failed == done:  # nothing to build a baseline from: not what was asked
                    progress.say(f"ttfb backfill: every one of the {done} runs failed (the "
                                 "reasons are above); nothing was measured")
                    return 1
                progress.say(f"backfill: done, {done - failed} runs measured"
                             + (f", {failed} failed (the reasons are above)" if failed else ""))
                return _settled(watcher, progress, started, deadline, args.timeout)
            time.sleep(2.0)
        done, failed = _runs_done(watcher.store, ids)
        progress.say(f"ttfb backfill: timed out after {args.timeout:.0f}s with {done} of "
                     f"{wanted} runs" + (f", {failed} of them failed" if failed else ""))
        return 1


# what the lab decides after a backfill's runs: candidates confirmed or
# dismissed, bisects, their explanations
DECISION_PURPOSES = ["confirm", "bisect", "explain"]
QUIET_S = 15.0  # nothing stored and nothing asked for this long: the lab is done


def _settled(watcher: Watcher, progress: Progress, started: datetime, deadline: float,
             timeout: float) -> int:
    """Wait for what the backfill's runs started (confirmations, bisects),
    then say what they found (alerts raised since ``started``; a lab's
    earlier alerts are the dashboard's): a backfill that ends with its lab
    would leave a change confirmed and never attributed."""
    store, repos = watcher.store, [s.name for s in watcher.sources]
    scenarios = watcher.catalog.of_repos(repos)
    count, since = -1, time.monotonic()
    progress.say("backfill: waiting for the decisions its runs started (confirmations, "
                 "bisects)")
    while time.monotonic() < deadline:
        watcher.tick()
        asked = sum(len(watching.unanswered_requests(store, r, DECISION_PURPOSES, started))
                    for r in repos)
        now = watching.event_count(store, scenarios, started)
        if asked or now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= QUIET_S:
            found = [a for a in queries.current_alerts(store, since=started)
                     if a["scenario"] in scenarios]
            progress.say(f"backfill: {len(found)} change(s) found" + "".join(
                f"\n  {alert_line(a)}" for a in reversed(found)), result=True)
            return 0
        time.sleep(2.0)  # each look opens a store session beside the lab's sink
    progress.say(f"ttfb backfill: timed out after {timeout:.0f}s with decisions still under "
                 "way; `ttfb watch` or `ttfb up` on this data directory resumes them")
    return 1


def _guarded(command: str, body: Callable[[], int], interrupted: Callable[[str], int]) -> int:
    """``body()``, its errors as sentences: 2 for what the user gave, 1 for the lab."""
    try:
        return body()
    except KeyboardInterrupt:
        return interrupted(interrupted_by())
    except (WatchError, CatalogError, StoreUnavailable) as exc:
        print(f"ttfb {command}: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, TimeoutError) as exc:
        print(f"ttfb {command}: {exc}", file=sys.stderr)
        return 1


def _ticker(lab_check: Callable[[], None], progress: Progress) -> Callable[[], None]:
    def tick() -> None:
        lab_check()
        progress.show()
    return tick


def _runs_done(store: Store, ids: list[str]) -> tuple[int, int]:
    """Runs of the requests ``ids`` back so far, and how many of them failed."""
    if not ids:
        return 0, 0
    rows = store.query(f"SELECT count() AS n, countIf(status = 'failed') AS failed"
                       f" FROM {store.db}.runs FINAL"
                       " WHERE request_id IN {ids:Array(String)}", {"ids": ids})
    return int(rows[0]["n"]), int(rows[0]["failed"])
