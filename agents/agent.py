"""The measurement agent: consume commands, run workflows, emit measurements.

An agent trusts no command by default: it runs only scenarios from its own
catalog, only repositories on its allowlist, and only commands signed with
the shared key. Everything else is refused, dead-lettered with the reason and
counted. Runs execute in worker threads, so the consumer keeps its group
membership alive: one at a time by default (one agent per host keeps timings
clean), or one per slot, each slot on its own core. A scenario always runs in
the same slot, so its baseline, its confirmations and its bisects compare
runs made on one core.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from agents.catalog import Catalog, Scenario
from agents.fingerprint import fingerprint
from agents.runner import RunOutcome, RunSpec, run_once
from agents.sources import Source, WatchError, update
from agents.spec import SpecError, spec_for
from agents.workspace import (
    WorkspaceError,
    Workspaces,
    changed_lines,
    commit_info,
    commit_range,
    touches_code,
)
from ttfb import events as ev
from ttfb import metrics
from ttfb.emitter import Emitter
from ttfb.signing import CommandRefused, Verifier

log = logging.getLogger(__name__)
T = TypeVar("T")

# which of a slot's queued commands runs first (lower first; in arrival order
# within a rank): what a person or an open decision waits for before the
# monitoring of further commits. A bisect's runs are the last step to an
# attributed alert; a confirmation's and an A/B's come next. Their order
# within each rank (a confirmation's interleaving) is kept.
RANKS = {"bisect": 0, "explain": 0, "confirm": 1, "ab": 1, "adhoc": 1, "monitor": 2, "demo": 2}
# added to a background run's rank (``RunRequested.background``: it refines a
# change already told): it goes after every monitoring run
BEHIND = 10


@dataclass
class AgentConfig:
    repos: dict[str, Path]
    catalog: Catalog
    workspaces: Workspaces
    verifier: Verifier
    agent_id: str = "agent-local"
    warmup: bool = True
    slot_cores: tuple[tuple[int, ...], ...] = ((),)  # per slot: the cores its runs get
    profile_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    pythons: dict[str, str] = field(default_factory=dict)  # scenario (or "*") -> interpreter
    hardware_class: str = "cpu"  # the runs it takes: its class's, and unclassed ones it can run
    cuda: bool = False  # a GPU is visible: it may take device = "cuda" scenarios
    remotes: dict[str, Source] = field(default_factory=dict)  # repositories known by URL
    allowed_pythons: tuple[str, ...] = ()  # what an A/B arm may name
    allowed_env: tuple[str, ...] = ()


REFUSAL_KINDS = ("unsigned command", "bad signature", "stale command", "command signed in the "
                 "future", "replayed command", "unknown repository", "unknown scenario",
                 "interpreter not allowed", "environment not allowed", "malformed JSON",
                 "unknown event type", "unsupported schema_version", "oversized payload",
                 "empty payload", "expected a JSON object", "invalid")


def refusal_kind(reason: str) -> str:
    """A refusal's kind from a fixed set: counters keyed by what a message
    says would grow with every distinct message an attacker sends."""
    return next((k for k in REFUSAL_KINDS if reason.startswith(k)), "other")


class Agent:
    def __init__(self, config: AgentConfig, emitter: Emitter) -> None:
        self.config = config
        self.emitter = emitter
        self.refused: Counter[str] = Counter()
        self.running = self.queued = 0  # commands executing and waiting (the consumer's lanes)
        self._warm: set[tuple[str, str]] = set()
        self._modules: dict[str, set[str]] = {}  # scenario -> repo files its latest run imported
        # each slot its own worktrees: one slot's checkout must not clean or evict
        # the tree another slot is running from
        root = config.workspaces.root
        self._workspaces = [config.workspaces] + [
            Workspaces(root.parent / f"{root.name}-slot{i}", config.workspaces.max_worktrees)
            for i in range(1, self.slots)]

    @property
    def slots(self) -> int:
        return max(1, len(self.config.slot_cores))

    def slot_of(self, scenario: str) -> int:
        """The slot a scenario always runs in: its place in the sorted catalog."""
        names = self.config.catalog.names()
        return names.index(scenario) % self.slots if scenario in names else 0

    def lane(self, raw: bytes) -> tuple[int, int]:
        """The lane a command message will run in, and its rank there
        (``RANKS``): a run's slot (0 for anything unreadable: ``handle``
        refuses it there); a range's listing, the lane after the last slot,
        its own. A listing takes milliseconds and a bisect's every batch
        waits for it: it never waits behind a run (a real workflow's run can
        take minutes). A background run ranks ``BEHIND`` its purpose's."""
        try:
            data = json.loads(raw)
            scenario, purpose = data.get("scenario", ""), data.get("purpose", "")
            kind = data.get("type")
        except (ValueError, AttributeError):
            return 0, 0
        if kind == "CommitRangeRequested":
            return self.slots, 0
        slot = self.slot_of(scenario) if isinstance(scenario, str) else 0
        rank = RANKS.get(purpose, 0) if isinstance(purpose, str) else 0
        return slot, rank + BEHIND if data.get("background") is True else rank

    # ------------------------------------------------------------------ intake

    async def handle(self, raw: bytes, topic: str = "commands", first: int = 0,
                     yield_to: Callable[[], bool] | None = None) -> int | None:
        """Decode, check and execute one command message, a run request from
        its repetition ``first`` on. Between two repetitions, once
        ``yield_to()`` says a command of a better rank waits, it stops: the
        repetition to go on from is returned (None: the command is done)."""
        event = ev.decode_or_dead_letter(raw, topic, self.config.agent_id)
        if isinstance(event, ev.DeadLettered):
            await self._refuse(raw, event.reason)
            return None
        if not isinstance(event, (ev.RunRequested, ev.CommitRangeRequested)):
            return None  # other events on the commands topic are not for agents
        try:
            if first == 0:  # a request going on was checked when it began
                self.config.verifier.verify(event)
            if isinstance(event, ev.RunRequested) and not self.takes(event):
                return None  # another hardware class's run: its agents take it, and judge it
            self._check_allowed(event)
        except CommandRefused as exc:
            await self._refuse(raw, exc.reason)
            return None
        if isinstance(event, ev.RunRequested):
            loop = asyncio.get_running_loop()

            def publish(events: list[ev.Event]) -> None:  # each repetition as soon as it ends
                for result in events:
                    if isinstance(result, (ev.RunCompleted, ev.RunFailed)):
                        metrics.RUNS.labels("completed" if isinstance(
                            result, ev.RunCompleted) else "failed").inc()
                    if isinstance(result, ev.RunFailed):  # the operator's first question
                        log.warning("run of %s at %s failed: %s", result.scenario,
                                    result.commit[:12], result.reason[:300])
                    asyncio.run_coroutine_threadsafe(
                        self.emitter.emit(result, "measurements"), loop).result()

            _, resume = await asyncio.to_thread(self._execute, event, publish,
                                                self.slot_of(event.scenario), first, yield_to)
            return resume
        await self.emitter.emit(await asyncio.to_thread(self.list_range, event), "bisect")
        return None

    def takes(self, command: ev.RunRequested) -> bool:
        """Whether this agent runs ``command``: one named for its hardware class,
        or one named for none whose scenario's device it has."""
        if command.hardware_class:
            return command.hardware_class == self.config.hardware_class
        scenario = self.config.catalog.get(command.scenario)
        return scenario is None or scenario.device != "cuda" or self.config.cuda

    def _check_allowed(self, command: ev.RunRequested | ev.CommitRangeRequested) -> None:
        if command.repo not in self.config.repos:
            raise CommandRefused(f"unknown repository {command.repo!r} (not on the allowlist)")
        if self.config.catalog.get(command.scenario) is None:
            raise CommandRefused(f"unknown scenario {command.scenario!r} (not in the catalog)")
        if isinstance(command, ev.RunRequested):
            self._check_arm(command.arm)

    def _check_arm(self, arm: ev.Arm) -> None:
        """An arm may name only the interpreters and environment keys this agent's
        operator allowed: either can make the workflow load other code."""
        if arm.python and arm.python not in self.config.allowed_pythons:
            raise CommandRefused(f"interpreter not allowed: {arm.python!r} is not in this "
                                 "agent's TTFB_AGENT_ALLOWED_PYTHONS")
        refused = sorted(set(arm.env) - set(self.config.allowed_env))
        if refused:
            raise CommandRefused(f"environment not allowed: {', '.join(refused)[:200]} not in "
                                 "this agent's TTFB_AGENT_ALLOWED_ENV")

    async def _refuse(self, raw: bytes, reason: str) -> None:
        kind = refusal_kind(reason)
        self.refused[kind] += 1
        metrics.REFUSED.labels(kind).inc()
        count = self.refused[kind]
        if count <= 10 or count % 1000 == 0:  # a flood of junk must not flood the log
            log.warning("refused command (%s no. %d): %s", kind, count, reason[:300])
        await self.emitter.emit_soon(
            ev.dead_letter(raw, reason, "commands", self.config.agent_id, refused_command=True),
            "deadletter")

    # ------------------------------------------------------------------ work

    def list_range(self, command: ev.CommitRangeRequested) -> ev.CommitRangeListed:
        # one id per request: agents of several hardware classes each list the
        # range, and the store and the fold keep one listing
        base = {"request_id": command.request_id, "scenario": command.scenario,
                "repo": command.repo, "correlation_id": command.correlation_id,
                "producer": self.config.agent_id,
                "event_id": ev.derived_id(command.request_id, "listed")}
        try:
            rows = self._fetching(command.repo, lambda: commit_range(
                self.config.repos[command.repo], command.good, command.bad))
        except (WorkspaceError, WatchError) as exc:
            return ev.CommitRangeListed(**base, error=str(exc))
        if len(rows) > ev.MAX_RANGE + 1:
            return ev.CommitRangeListed(**base, error=ev.range_too_long(len(rows) - 1))
        affected: list[bool] = []
        modules = self._modules.get(command.scenario)
        if modules:  # a hint for the bisect's prior, finer than the scheduler's selection
            try:
                # a commit that edits only comments or docstrings of the modules
                # runs the same code: measured (the scheduler selects by file),
                # but not a likely culprit: a bisect of a weak change is drawn
                # to whatever commit the prior favours
                affected = touches_code(self.config.repos[command.repo], command.good,
                                        command.bad, [r[0] for r in rows], modules)
            except WorkspaceError:
                affected = []
        return ev.CommitRangeListed(**base, commits=[r[0] for r in rows],
                                    authors=[r[1] for r in rows], subjects=[r[2] for r in rows],
                                    affected=affected)

    def _fetching(self, name: str, work: Callable[[], T]) -> T:
        """``work()``; for a repository known by URL, fetched first when it is
        missing or ``work`` cannot find a commit (one announced after the last fetch)."""
        source = self.config.remotes.get(name)
        if source is None:
            return work()
        if not (source.path / "HEAD").exists():
            update(source)
        try:
            return work()
        except WorkspaceError:
            update(source)
            return work()

    def execute(self, request: ev.RunRequested,
                publish: Callable[[list[ev.Event]], None] | None = None,
                slot: int = 0) -> list[ev.Event]:
        """Run every repetition of a request in ``slot``; each repetition's events
        go to ``publish``."""
        return self._execute(request, publish, slot)[0]

    def _execute(self, request: ev.RunRequested,
                 publish: Callable[[list[ev.Event]], None] | None = None, slot: int = 0,
                 first: int = 0, yield_to: Callable[[], bool] | None = None,
                 ) -> tuple[list[ev.Event], int | None]:
        """``execute`` from repetition ``first``, stopping before the next one
        once ``yield_to()`` is true: the events, and where to go on (None: done)."""
        received_ns = time.monotonic_ns()
        scenario = self.config.catalog.get(request.scenario)
        assert scenario is not None
        repo = self.config.repos[request.repo]
        common = {"request_id": request.request_id, "scenario": request.scenario,
                  "repo": request.repo, "branch": request.branch, "purpose": request.purpose,
                  "arm": request.arm.label, "correlation_id": request.correlation_id,
                  "runs_total": request.runs,
                  "producer": self.config.agent_id}
        try:
            root, sha = self._fetching(
                request.repo, lambda: self._workspaces[slot].checkout(request.repo, repo,
                                                                      request.commit))
            author, subject = commit_info(repo, sha)
            changed = changed_lines(repo, sha, request.changed_since) if request.profile else {}
        except (WorkspaceError, WatchError) as exc:
            failed: list[ev.Event] = [ev.RunFailed(**common, commit=request.commit,
                                                   repetition=first, reason=str(exc),
                                                   fingerprint=fingerprint())]
            if publish:
                publish(failed)
            return failed, None
        try:
            spec = self._spec(scenario, root, request, self.config.slot_cores[slot])
        except SpecError as exc:
            failed = [ev.RunFailed(**common, commit=sha, repetition=first, reason=str(exc),
                                   fingerprint=fingerprint())]
            if publish:
                publish(failed)
            return failed, None
        warm_ns = time.monotonic_ns()
        self._warm_up(spec, request)
        # the discarded warm-up is the lab's method, not the job's queueing
        started_ns = received_ns + (time.monotonic_ns() - warm_ns)
        out: list[ev.Event] = []
        for repetition in range(first, request.runs):
            if repetition > first and yield_to is not None and yield_to():
                return out, repetition
            profile = request.profile and repetition == 0
            # a profiled run also records ``-X importtime`` (to explain imports)
            # one file per request: a side's profiled runs may run at once
            dump = self.config.profile_dir / f"{sha[:12]}-{request.request_id}.prof"
            run_spec = spec if not profile else RunSpec(**{
                **spec.__dict__, "profile_path": str(dump),
                "env": {**spec.env, "PYTHONPROFILEIMPORTTIME": "1"}})
            outcome = run_once(run_spec, requested_ns=started_ns)
            started_ns = time.monotonic_ns()
            events = self._events(outcome, {**common, "commit": sha, "repetition": repetition},
                                  author, subject, run_spec.profile_path, root, changed)
            if publish:
                publish(events)
            out.extend(events)
        return out, None

    def _spec(self, scenario: Scenario, root: Path, request: ev.RunRequested,
              cores: tuple[int, ...]) -> RunSpec:
        spec = spec_for(scenario, root, python=request.arm.python,
                        overrides=self.config.pythons)
        return replace(spec, env={**spec.env, **request.arm.env}, cpu_affinity=cores)

    def _warm_up(self, spec: RunSpec, request: ev.RunRequested) -> None:
        """One discarded run per (scenario, arm): bytecode and page cache settle.

        Not per commit: a new worktree only adds its few source files, and a
        warm-up per commit would double the cost of monitoring.
        """
        # the label names a side of an A/B or a bisect; it does not change the process
        key = (request.scenario, request.arm.model_dump_json(exclude={"label"}))
        if self.config.warmup and key not in self._warm:
            run_once(spec)
            self._warm.add(key)

    def _events(self, outcome: RunOutcome, fields: dict[str, object], author: str,
                subject: str, profile_path: str, root: Path | None = None,
                changed: dict[str, set[int]] | None = None) -> list[ev.Event]:
        fp = fingerprint(outcome.facts, self.config.hardware_class)
        if outcome.status != "completed":
            return [ev.RunFailed(**fields, fingerprint=fp, reason=outcome.reason,  # type: ignore[arg-type]
                                 exit_code=outcome.exit_code,
                                 stderr_tail=outcome.stderr_tail[-2000:])]
        run_id = ev.new_id()
        if outcome.modules:
            self._modules[str(fields["scenario"])] = set(outcome.modules)
        measured: list[ev.Event] = [
            ev.ComponentMeasured(**fields, run_id=run_id, fingerprint=fp,  # type: ignore[arg-type]
                                 component=name, ms=ms)
            for name, ms in outcome.components.items()]
        profile: dict[str, Any] = {}
        if profile_path and Path(profile_path).exists():
            from agents.explain import summarise

            try:
                scenario = self.config.catalog.get(str(fields["scenario"]))
                profile = summarise(Path(profile_path), root, changed or {}, outcome.modules,
                                    scenario.script if scenario else "")
            except Exception as exc:  # an unreadable profile must not lose the run
                log.warning("profile of %s unreadable: %s", fields.get("commit"), exc)
                profile = {"error": f"profile unreadable: {exc}"[:500]}
            finally:
                for dump in (Path(profile_path), Path(profile_path + ".imports")):
                    dump.unlink(missing_ok=True)
        completed = ev.RunCompleted(
            **fields, run_id=run_id, fingerprint=fp, ttfb_ms=outcome.ttfb_ms,  # type: ignore[arg-type]
            components=outcome.components, phases=outcome.phases, modules=outcome.modules,
            author=author, subject=subject, profile=profile)
        return [*measured, completed]
