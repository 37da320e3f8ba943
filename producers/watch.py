"""``ttfb watch`` and ``ttfb backfill``: follow branches of repositories and plan
every new commit.

A repository is a local path or a Git URL (cloned once, as a mirror, into the
data directory, then fetched every interval). Each new first-parent commit of
a watched branch is planned by the scheduler (test selection, capacity,
release tags); the plan (``CommitPlanned``, its ``RunRequested`` and
``ScenarioSkipped``) is written to the store *before* its commands go on the
bus, and every id in it is derived from (repository, branch, commit,
scenario). So a watcher stopped at any moment, ``kill -9`` included, and
started again plans each commit exactly once: a stored plan is never planned
again, an unstored one was never sent, and a stored plan whose runs never
came is sent again with the same ids.

A force-push is a ``WatchNoted(kind="rewritten")`` listing the planned
commits that vanished; the new ones are planned. A repository or branch that
cannot be read is a ``WatchNoted(kind="problem")`` and the others go on.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agents.catalog import Catalog
from agents.sources import Source, WatchError, is_url, parse_source, redact, update
from agents.workspace import WorkspaceError, changed_files, git, is_ancestor, resolve
from producers.scheduler import is_release, plan_commit, plan_id
from streams.detection.policy import Policy
from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.signing import sign
from ttfb.store import Store, queries, watching

__all__ = ["Source", "WatchError", "Watcher", "is_url", "parse_source", "redact", "update"]

# the values a series' screen needs before it tests a commit (the detector's
# ``min_back_values``): a scenario's first commit gets as many runs, or the
# next one would go unscreened
BASELINE_VALUES = Policy().detector.min_back_values


# a commit planned: its marker, and its requests' ids with the runs each asks for
Planned = tuple[ev.CommitPlanned, dict[str, int]]
PLAN_BATCH = 200  # plans of unaffected commits stored and sent together, at most


def branches(source: Source) -> list[str]:
    """The repository's local branches (a clone's, the remote's as fetched)."""
    try:
        out = git(source.path, "for-each-ref", "--format=%(refname:short)", "refs/heads")
    except WorkspaceError:
        return []
    return out.split()


def has_branch(source: Source, branch: str) -> bool:
    try:
        branch_tip(source, branch)
    except WatchError:
        return False
    return True


def branch_tip(source: Source, branch: str) -> str:
    try:
        return resolve(source.path, f"refs/heads/{branch}")
    except WorkspaceError:
        raise WatchError(f"repository {source.name!r} has no branch {branch!r}") from None


def _first_parent(repo: Path, since: str | None, tip: str) -> list[str]:
    span = f"{since}..{tip}" if since else tip
    out = git(repo, "rev-list", "--reverse", "--first-parent", "--end-of-options", span)
    return [line for line in out.splitlines() if line]


def _merge_base(repo: Path, a: str, b: str) -> str | None:
    try:
        return git(repo, "merge-base", a, b).strip() or None
    except WorkspaceError:
        return None


Send = Callable[[list[ev.Event]], None]


def check_named(catalog: Catalog, sources: Sequence[Source]) -> None:
    """Refuse at once what can never work: a repository no scenario names."""
    named = {s.repo for s in catalog.scenarios.values()}
    for source in sources:
        if source.name not in named:
            raise WatchError(
                f"no scenario of the catalog names repository {source.name!r} "
                f"(scenarios name {', '.join(sorted(named)) or 'none'}); set repo = "
                f"\"{source.name}\" in a [[scenario]] of the catalog, or watch it as "
                f"NAME={source.shown}")


@dataclass
class Watcher:
    """Plans commits of the watched branches; the store says what is planned."""

    settings: Settings
    store: Store
    catalog: Catalog
    sources: list[Source]
    branches: list[str]
    send: Send
    runs: int = 3
    capacity_per_hour: int | None = None
    interval_s: float = 60.0
    say: Callable[[str], None] = print
    noted: set[str] = field(default_factory=set)
    # called about every second while the watcher waits for runs (the lab's
    # health, the progress line)
    tick: Callable[[], None] = lambda: None

    def check(self) -> None:
        check_named(self.catalog, self.sources)

    def poll(self) -> int:

        """Fetch every repository and plan every new commit; returns commits planned."""
        planned = 0
        for source in self.sources:
            try:
                update(source)
            except WatchError as exc:
                self.problem(source, "", str(exc))
                continue
            for branch in self.branches_of(source):
                try:
                    planned += self.follow(source, branch)
                except (WatchError, WorkspaceError) as exc:
                    self.problem(source, branch, str(exc))
        return planned

    def branches_of(self, source: Source) -> list[str]:
        """The branches given, else the repository's own (its HEAD's: ``main``,
        ``master``, whatever its default is)."""
        return self.branches or [default_branch(source)]

    def follow(self, source: Source, branch: str) -> int:
        """Plan the commits of ``branch`` the store has no plan of."""
        tip = branch_tip(source, branch)
        planned = watching.planned_commits(self.store, source.name, branch)
        if not planned:
            todo = [tip]  # a branch seen first: its tip starts the series (backfill: history)
        elif is_ancestor(source.path, planned[-1], tip):
            todo = _first_parent(source.path, planned[-1], tip)
        else:
            todo = self._rewritten(source, branch, planned, tip)
        done = set(planned)
        todo = [c for c in todo if c not in done]
        self.plan_all(source, branch, todo)
        return len(todo)

    def _rewritten(self, source: Source, branch: str, planned: list[str], tip: str) -> list[str]:
        """A force-push: record the planned commits no longer on the branch, and
        plan what is new since the old and new histories parted."""
        base = _merge_base(source.path, planned[-1], tip)
        recent = planned[-200:]
        vanished = [c for c in recent if not _exists(source.path, c)
                    or not is_ancestor(source.path, c, tip)]
        note = ev.WatchNoted(
            repo=source.name, branch=branch, kind="rewritten", vanished=vanished,
            detail=f"{branch} was rewritten: {len(vanished)} planned commit(s) vanished, "
                   f"new tip {tip[:12]}", producer="ttfb-watch",
            event_id=ev.derived_id("rewritten", source.name, branch, planned[-1], tip))
        self._record([note])
        self.say(f"{source.name}/{branch}: {note.detail}")
        return _first_parent(source.path, base, tip) if base else [tip]

    def plan(self, source: Source, branch: str, commit: str, purpose: str = "monitor",
             modules: Mapping[str, Sequence[str]] | None = None) -> Planned:
        """Plan ``commit``: its marker, and its requests' ids with the runs
        each asks for (what a backfill waits on)."""
        return self.plan_all(source, branch, [commit], purpose, modules)[0]

    def plan_all(self, source: Source, branch: str, commits: Sequence[str],
                 purpose: str = "monitor",
                 modules: Mapping[str, Sequence[str]] | None = None) -> list[Planned]:
        """Plan ``commits`` in order. The plans of commits no scenario is
        affected by (in a monorepo, most of a backfill) are stored and sent
        together, up to ``PLAN_BATCH`` at a time and before the next commit
        with runs: one store session and one connection to the bus for each
        batch, not each commit."""
        modules = queries.latest_modules(self.store) if modules is None else modules
        out: list[Planned] = []
        held: list[ev.Event] = []
        quiet: list[str] = []

        def flush() -> None:
            # durable first: a plan in the store is never made again, and its
            # commands are sent again if their runs never come
            if held:
                self._record(held)
                self.send(list(held))
                held.clear()
            if len(quiet) == 1:
                self.say(f"{source.name}/{branch} {quiet[0][:10]}: no scenario affected")
            elif quiet:
                self.say(f"{source.name}/{branch} {quiet[0][:10]}..{quiet[-1][:10]}: "
                         f"{len(quiet)} commits, no scenario affected")
            quiet.clear()

        for commit in commits:
            events, planned = self._draft(source, branch, commit, purpose, modules)
            held.extend(events)
            if planned[1]:
                flush()
                self.say(f"{source.name}/{branch} {commit[:10]}: "
                         f"{sum(planned[1].values())} runs of {', '.join(planned[0].requested)}")
            else:
                quiet.append(commit)
                if len(quiet) >= PLAN_BATCH:
                    flush()
            out.append(planned)
        flush()
        return out

    def _draft(self, source: Source, branch: str, commit: str, purpose: str,
               modules: Mapping[str, Sequence[str]]) -> tuple[list[ev.Event], Planned]:
        """``commit``'s plan, not yet stored or sent: its requests (signed),
        the scenarios it skips and its marker last."""
        capacity = None if self.capacity_per_hour is None else \
            int(self.capacity_per_hour * self.interval_s / 3600) or self.runs
        plan = plan_commit(self.catalog, source.name, commit, changed_files(source.path, commit),
                           modules, self.runs, capacity, is_release(source.path, commit), branch,
                           first_runs=BASELINE_VALUES)
        key = self.settings.signing_key.get_secret_value()
        requests = [sign(r, key) for r in plan.requests]
        marker = ev.CommitPlanned(
            repo=source.name, branch=branch, commit=commit, purpose=purpose,  # type: ignore[arg-type]
            requested=[r.scenario for r in requests],
            skipped=[s.scenario for s in plan.skipped], producer="ttfb-watch",
            event_id=plan_id(source.name, branch, commit, "planned"))
        return [*requests, *plan.skipped, marker], (marker, {r.request_id: r.runs
                                                             for r in requests})

    def resend_unanswered(self) -> int:
        """Send again the stored monitor commands whose runs never came (the
        embedded bus forgot them); the same ids, a fresh signature."""
        key = self.settings.signing_key.get_secret_value()
        again: list[ev.Event] = []
        for source in self.sources:
            for payload in watching.unanswered_requests(self.store, source.name, ["monitor"]):
                command = ev.decode(payload)
                if isinstance(command, ev.RunRequested):
                    again.append(sign(command, key))
        if again:
            self.send(again)
            self.say(f"sent again {len(again)} planned request(s) whose runs never came")
        return len(again)

    def backfill(self, source: Source, branch: str, last: int | None,
                 since: str | None) -> list[Planned]:
        """Plan up to ``last`` commits before the tip (or all after ``since``),
        oldest first, skipping any already planned."""
        update(source)
        tip = branch_tip(source, branch)
        commits = _first_parent(source.path, resolve(source.path, since) if since else None, tip)
        if last is not None:
            commits = commits[-last:]
        window = commits
        done = set(watching.planned_commits(self.store, source.name, branch))
        commits = [c for c in commits if c not in done]
        known = queries.latest_modules(self.store)
        scenarios = self.catalog.of_repos([source.name])
        if len(commits) < 2 or all(n in known for n in scenarios):
            planned = self.plan_all(source, branch, commits, "backfill", known)
        else:
            # a scenario never run: every commit would count as affecting it.
            # Its oldest commit's runs say which of the repository's files it
            # imports; the others are planned after them, and a commit that
            # changes none of those files (in a monorepo, most) is skipped
            first = self.plan(source, branch, commits[0], "backfill", known)
            learned = self._modules_of(first)
            known = {**known, **{n: sorted({*known.get(n, []), *m}) for n, m in learned.items()}}
            planned = [first, *self.plan_all(source, branch, commits[1:], "backfill", known)]
        if last and since is None:
            self._say_reach(source, branch, window, last,
                            sorted({f for n in scenarios for f in known.get(n, [])}))
        return planned

    def _say_reach(self, source: Source, branch: str, window: list[str], last: int,
                   files: list[str]) -> None:
        """Where most of the last ``last`` commits (``window``, oldest first)
        change nothing the scenarios import or read (a monorepo), say how far
        back ``last`` commits that do lie: the baseline a user asking for
        ``last`` commits meant."""
        if not files or not window:
            return
        tip = window[-1]
        touching = git(source.path, "rev-list", "--first-parent", f"--max-count={last}",
                       "--end-of-options", tip, "--", *files).split()
        measured = len(set(touching) & set(window))
        if measured >= last / 2 or len(touching) <= measured:
            return
        reach = 1 + int(git(source.path, "rev-list", "--first-parent", "--count",
                            "--end-of-options", f"{touching[-1]}..{tip}"))
        some = f"the last {last} that do" if len(touching) == last else \
            f"the {len(touching)} on the branch that do"
        self.say(f"{source.name}/{branch}: {measured} of the last {last} commits change what "
                 f"the scenarios import or read; {some} go back {reach} commits "
                 f"(--last {reach} measures them)")

    def _modules_of(self, planned: Planned) -> dict[str, list[str]]:
        """The modules the scenarios of a planned commit imported, once its
        runs are back (at most the scenarios' timeouts; what came by then)."""
        marker, asked = planned
        ids, wanted = list(asked), sum(asked.values())
        timeout = sum(self.catalog.scenarios[n].timeout_s for n in marker.requested) * self.runs
        if wanted:
            self.say(f"{marker.repo}/{marker.branch}: the oldest commit's runs first, to learn "
                     f"which files {', '.join(marker.requested)} import(s) or read(s) "
                     "(commits that change none of them are skipped)")
        deadline = time.monotonic() + timeout + 60
        found: dict[str, list[str]] = {}
        while wanted and time.monotonic() < deadline:
            found, back = watching.modules_at(self.store, ids)
            if back >= wanted or set(found) >= set(marker.requested):
                break
            self.tick()
            time.sleep(1.0)
        return found

    def problem(self, source: Source, branch: str, detail: str) -> None:
        """Say and record a problem once (until it changes); the watcher goes on."""
        detail = redact(detail)
        key = f"{source.name}\x1f{branch}\x1f{steady(detail)}"
        if key in self.noted:
            return
        self.noted.add(key)
        self.say(f"problem: {detail}")
        note = ev.WatchNoted(repo=source.name, branch=branch, kind="problem", detail=detail,
                             producer="ttfb-watch")
        self._record([note])
        self.send([note])

    def _record(self, events: Sequence[ev.Event]) -> None:
        self.store.write(events, self.settings.topic("commands"))


def steady(detail: str) -> str:
    """A problem's text less what changes from one try to the next (git's
    "after 1 ms" to connect): the same problem is said once, not again
    whenever its timing reads otherwise."""
    return re.sub(r"\b\d+(\.\d+)? ?(ms|s|seconds|milliseconds)\b", "<time>", detail)


def default_branch(source: Source) -> str:
    try:
        return git(source.path, "symbolic-ref", "--short", "HEAD").strip() or "main"
    except WorkspaceError:
        return "main"


def _exists(repo: Path, commit: str) -> bool:
    try:
        git(repo, "cat-file", "-e", f"{commit}^{{commit}}")
    except WorkspaceError:
        return False
    return True


def publish_thresholds(settings: Settings, catalog: Catalog, source: str) -> None:
    """Put the catalog's threshold overrides in force: one ``ThresholdsSet``
    a scenario, to the detections topic the fold reads."""
    from agents.catalog import thresholds_set
    from ttfb.emitter import emit_all

    events = thresholds_set(catalog, source, "ttfb-watch")
    asyncio.run(emit_all(settings, "ttfb-watch", [(e, "detections") for e in events]))


def bus_sender(settings: Settings) -> Send:
    """Send events to the commands topic (commands are already signed)."""
    from ttfb.emitter import emit_all

    def send(events: list[ev.Event]) -> None:
        if events:
            asyncio.run(emit_all(settings, "ttfb-watch", [(e, "commands") for e in events]))

    return send
