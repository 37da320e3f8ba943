"""Agent process entry: ``python -m agents.service`` (settings from ``TTFB_``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

from agents.agent import Agent, AgentConfig
from agents.catalog import CatalogError, load_catalog
from agents.consumer import consume
from agents.fingerprint import fingerprint, gpu_and_driver, hardware_class
from agents.sources import is_url, parse_source
from agents.workspace import Workspaces
from ttfb import events as ev
from ttfb.bus import consumer_options, run_until_signalled
from ttfb.emitter import Emitter
from ttfb.process import exit_with_lab
from ttfb.settings import Settings
from ttfb.signing import Verifier

log = logging.getLogger(__name__)


def slot_cores(slots: int, cores: int) -> tuple[tuple[int, ...], ...]:
    """The cores each slot's runs are pinned to: the machine's last cores, one
    a slot (the machine's, not this process's: it may already be pinned)."""
    if cores < 2 or not hasattr(os, "sched_setaffinity"):
        return ((),)
    return tuple((cores - 1 - i,) for i in range(min(slots, cores)))


def usable_slots(requested: int, cores: int) -> int:
    """Slots the agent runs: one core stays with the lab's own processes
    (`ttfb up` pins them there). Measured on 2 cores, a slot sharing the lab's
    core ran the demo's scenarios up to twice as slow, and noisy enough for 6
    false candidates."""
    return max(1, min(requested, cores - 1))


def agent_config(settings: Settings) -> AgentConfig:
    cores = os.cpu_count() or 1
    slots = usable_slots(settings.agent_slots, cores)
    if slots < settings.agent_slots:
        log.warning("agent_slots=%d on %d core(s): running %d at once, one core is the lab's",
                    settings.agent_slots, cores, slots)
    remotes = {name: parse_source(f"{name}={location}", settings.data_dir)
               for name, location in settings.repos.items() if is_url(location)}
    return AgentConfig(
        repos={name: remotes[name].path if name in remotes else Path(location)
               for name, location in settings.repos.items()},
        remotes=remotes,
        catalog=load_catalog(settings.catalog),
        workspaces=Workspaces(settings.workspace_dir),
        verifier=Verifier(settings.signing_key.get_secret_value(), settings.command_max_age_s,
                          previous=settings.signing_key_previous.get_secret_value(),
                          journal=settings.data_dir / "agent" / f"{settings.agent_id}.seen"),
        allowed_pythons=tuple(settings.agent_allowed_pythons),
        allowed_env=tuple(settings.agent_allowed_env),
        agent_id=settings.agent_id,
        slot_cores=slot_cores(slots, cores),
        profile_dir=settings.data_dir / "profiles",
        pythons=dict(settings.agent_python),
        hardware_class=hardware_class(settings.agent_class),
        cuda=bool(gpu_and_driver()[0]),
    )


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    refusal = settings.key_refusal()
    if refusal:
        raise SystemExit(f"agent: {refusal}")
    config = agent_config(settings)
    config.profile_dir.mkdir(parents=True, exist_ok=True)
    from ttfb import metrics

    metrics.serve(settings.metrics_host, settings.agent_metrics_port)
    emitter = await Emitter(settings, settings.agent_id).start()
    agent = Agent(config, emitter)
    await emitter.emit(ev.AgentAnnounced(
        agent_id=config.agent_id, hardware_class=config.hardware_class,
        fingerprint=fingerprint(hw_class=config.hardware_class), slots=agent.slots,
        scenarios=config.catalog.names(), repos=sorted(config.repos),
        producer=config.agent_id), "commands")
    heartbeat = asyncio.create_task(beat(agent, emitter, settings.agent_heartbeat_s, stop))
    try:
        # one group per hardware class: every class sees every command, one agent
        # of a class runs it, and takes() leaves the other classes' runs alone
        group = settings.agents_group(config.hardware_class)
        log.info("agent %s: class %s, %d slot(s), fingerprint %s", config.agent_id,
                 config.hardware_class, agent.slots, fingerprint(hw_class=config.hardware_class))
        await consume(agent, settings.topic("commands"), consumer_options(settings),
                      group, stop,
                      session_ms=int(settings.group_session_timeout_s * 1000))
    finally:
        heartbeat.cancel()
        await emitter.flush(timeout=30)
        await emitter.stop()


async def beat(agent: Agent, emitter: Emitter, every_s: float, stop: asyncio.Event) -> None:
    """An ``AgentHeartbeat`` every ``every_s`` until ``stop``: alive, and how busy."""
    config = agent.config
    while not stop.is_set():
        try:
            await emitter.emit(ev.AgentHeartbeat(
                agent_id=config.agent_id, hardware_class=config.hardware_class,
                slots=agent.slots, running=agent.running, queued=agent.queued,
                producer=config.agent_id), "measurements")
        except Exception:  # a heartbeat missed is said by the next; the agent goes on
            log.warning("heartbeat not sent", exc_info=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


def agent_command(args: argparse.Namespace, settings: Settings) -> int:
    """``ttfb agent``: a measurement agent joining the cluster's bus (or the lab
    running here), taking the runs of its hardware class."""
    from ttfb.labinfo import running_bus

    update: dict[str, object] = {}
    if args.hardware_class:
        update["agent_class"] = args.hardware_class
    if args.id:
        update["agent_id"] = args.id
    if args.slots:
        update["agent_slots"] = args.slots
    if args.catalog:
        update["catalog"] = Path(args.catalog)
    if args.repo:
        pairs = [spec.partition("=") for spec in args.repo]
        if any(not sep or not name for name, sep, _ in pairs):
            print("ttfb agent: --repo takes NAME=PATH_OR_URL", file=sys.stderr)
            return 2
        update["repos"] = {**settings.repos, **{name: loc for name, _, loc in pairs}}
    if settings.embedded_bus:
        bus = running_bus(settings)
        if not bus:
            print("ttfb agent: no bus to join: set TTFB_KAFKA_BOOTSTRAP to the cluster's, or "
                  "start `ttfb watch` or `ttfb up` on this machine first", file=sys.stderr)
            return 2
        update["kafka_bootstrap"] = bus
        update["embedded_lab"] = True
    settings = settings.model_copy(update=update)
    refusal = settings.key_refusal()
    if refusal:
        print(f"ttfb agent: {refusal}", file=sys.stderr)
        return 2
    try:
        load_catalog(settings.catalog)
    except CatalogError as exc:
        print(f"ttfb agent: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(message)s")
    run_until_signalled(serve, settings)
    return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(message)s")
    settings = Settings()
    exit_with_lab()
    run_until_signalled(serve, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
