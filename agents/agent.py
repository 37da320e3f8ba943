"""The measurement agent: consume commands, run workflows, emit measurements.

An agent trusts no command by default: it runs only scenarios from its own
catalog, only repositories on its allowlist, and only commands signed with
the shared key. Everything else is refused, dead-lettered with the reason and
counted. Runs execute one at a time (one agent per host keeps timings clean)
in a worker thread, so the consumer keeps its group membership alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.catalog import Catalog, Scenario
from agents.fingerprint import fingerprint
from agents.runner import RunOutcome, RunSpec, run_once
from agents.shrink import shrink
from agents.workspace import WorkspaceError, Workspaces, commit_info, commit_range
from producers.emitter import Emitter
from ttfb import events as ev
from ttfb.signing import CommandRefused, Verifier

log = logging.getLogger(__name__)
MAX_RANGE = 1000


@dataclass
class AgentConfig:
    repos: dict[str, Path]
    catalog: Catalog
    workspaces: Workspaces
    verifier: Verifier
    agent_id: str = "agent-local"
    warmup: bool = True
    cpu_affinity: tuple[int, ...] = ()
    profile_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))


class Agent:
    def __init__(self, config: AgentConfig, emitter: Emitter) -> None:
        self.config = config
        self.emitter = emitter
        self.refused: Counter[str] = Counter()
        self._warm: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ intake

    async def handle(self, raw: bytes, topic: str = "commands") -> None:
        """Decode, check and execute one command message."""
        event = ev.decode_or_dead_letter(raw, topic, self.config.agent_id)
        if isinstance(event, ev.DeadLettered):
            await self._refuse(raw, event.reason)
            return
        if not isinstance(event, (ev.RunRequested, ev.CommitRangeRequested)):
            return  # other events on the commands topic are not for agents
        try:
            self.config.verifier.verify(event)
            self._check_allowed(event)
        except CommandRefused as exc:
            await self._refuse(raw, exc.reason)
            return
        if isinstance(event, ev.RunRequested):
            loop = asyncio.get_running_loop()

            def publish(events: list[ev.Event]) -> None:  # each repetition as soon as it ends
                for result in events:
                    asyncio.run_coroutine_threadsafe(
                        self.emitter.emit(result, "measurements"), loop).result()

            await asyncio.to_thread(self.execute, event, publish)
        else:
            await self.emitter.emit(await asyncio.to_thread(self.list_range, event), "bisect")

    def _check_allowed(self, command: ev.RunRequested | ev.CommitRangeRequested) -> None:
        if command.repo not in self.config.repos:
            raise CommandRefused(f"unknown repository {command.repo!r} (not on the allowlist)")
        if self.config.catalog.get(command.scenario) is None:
            raise CommandRefused(f"unknown scenario {command.scenario!r} (not in the catalog)")

    async def _refuse(self, raw: bytes, reason: str) -> None:
        self.refused[reason.split(":")[0]] += 1
        log.warning("refused command: %s", reason)
        await self.emitter.emit(
            ev.dead_letter(raw, reason, "commands", self.config.agent_id, refused_command=True),
            "deadletter")

    # ------------------------------------------------------------------ work

    def list_range(self, command: ev.CommitRangeRequested) -> ev.CommitRangeListed:
        base = {"request_id": command.request_id, "scenario": command.scenario,
                "repo": command.repo, "correlation_id": command.correlation_id,
                "producer": self.config.agent_id}
        try:
            rows = commit_range(self.config.repos[command.repo], command.good, command.bad)
        except WorkspaceError as exc:
            return ev.CommitRangeListed(**base, error=str(exc))
        if len(rows) > MAX_RANGE + 1:
            return ev.CommitRangeListed(
                **base, error=f"range of {len(rows) - 1} commits exceeds {MAX_RANGE}; "
                              "narrow it with a closer good commit")
        return ev.CommitRangeListed(**base, commits=[r[0] for r in rows],
                                    authors=[r[1] for r in rows], subjects=[r[2] for r in rows])

    def execute(self, request: ev.RunRequested,
                publish: Callable[[list[ev.Event]], None] | None = None) -> list[ev.Event]:
        """Run every repetition of a request; each repetition's events go to ``publish``."""
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
            root, sha = self.config.workspaces.checkout(request.repo, repo, request.commit)
            author, subject = commit_info(repo, sha)
        except WorkspaceError as exc:
            failed: list[ev.Event] = [ev.RunFailed(**common, commit=request.commit,
                                                   reason=str(exc), fingerprint=fingerprint())]
            if publish:
                publish(failed)
            return failed
        spec = self._spec(scenario, root, request)
        warm_ns = time.monotonic_ns()
        self._warm_up(spec, request)
        # the discarded warm-up is the lab's method, not the job's queueing
        started_ns = received_ns + (time.monotonic_ns() - warm_ns)
        out: list[ev.Event] = []
        for repetition in range(request.runs):
            profile = request.profile and repetition == 0
            # a profiled run also records ``-X importtime`` (to explain imports)
            run_spec = spec if not profile else RunSpec(**{
                **spec.__dict__, "profile_path": str(self.config.profile_dir / f"{sha}.prof"),
                "env": {**spec.env, "PYTHONPROFILEIMPORTTIME": "1"}})
            outcome = run_once(run_spec, requested_ns=started_ns)
            started_ns = time.monotonic_ns()
            events = self._events(outcome, {**common, "commit": sha, "repetition": repetition},
                                  author, subject, run_spec.profile_path)
            if publish:
                publish(events)
            out.extend(events)
        return out

    def _spec(self, scenario: Scenario, root: Path, request: ev.RunRequested) -> RunSpec:
        return RunSpec(
            root=root, entry=scenario.entry, script=scenario.script, args=tuple(scenario.args),
            config=shrink(scenario.config, scenario.shrink) if scenario.entry else {},
            python=request.arm.python or RunSpec.python, env=dict(request.arm.env),
            timeout_s=scenario.timeout_s, cpu_affinity=self.config.cpu_affinity,
        )

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
                subject: str, profile_path: str) -> list[ev.Event]:
        fp = fingerprint(outcome.facts)
        if outcome.status != "completed":
            return [ev.RunFailed(**fields, fingerprint=fp, reason=outcome.reason,  # type: ignore[arg-type]
                                 exit_code=outcome.exit_code,
                                 stderr_tail=outcome.stderr_tail[-2000:])]
        run_id = ev.new_id()
        measured: list[ev.Event] = [
            ev.ComponentMeasured(**fields, run_id=run_id, fingerprint=fp,  # type: ignore[arg-type]
                                 component=name, ms=ms)
            for name, ms in outcome.components.items()]
        profile: dict[str, Any] = {}
        if profile_path and Path(profile_path).exists():
            from agents.explain import summarise_imports, summarise_profile

            profile = summarise_profile(Path(profile_path))
            imports = Path(profile_path + ".imports")
            if imports.exists():
                profile["imports_ms"] = summarise_imports(imports)
        completed = ev.RunCompleted(
            **fields, run_id=run_id, fingerprint=fp, ttfb_ms=outcome.ttfb_ms,  # type: ignore[arg-type]
            components=outcome.components, phases=outcome.phases, modules=outcome.modules,
            author=author, subject=subject, profile=profile)
        return [*measured, completed]


async def consume(agent: Agent, settings_topic: str, client_options: dict[str, object],
                  group_id: str, stop: asyncio.Event, session_ms: int = 10_000) -> None:
    """Consume commands until ``stop`` is set; commit each after its effects."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        settings_topic, group_id=group_id, enable_auto_commit=False,
        auto_offset_reset="earliest", max_poll_interval_ms=3_600_000,
        session_timeout_ms=session_ms, rebalance_timeout_ms=session_ms,
        heartbeat_interval_ms=1_000, **client_options)
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=1)
            for records in batch.values():
                for record in records:
                    try:
                        await agent.handle(record.value or b"")
                    except Exception:  # one bad command must never stop the agent
                        log.exception("command at offset %s failed", record.offset)
                    await consumer.commit()
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
