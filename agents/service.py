"""Agent process entry: ``python -m agents.service`` (settings from ``TTFB_``)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from agents.agent import Agent, AgentConfig, consume
from agents.catalog import load_catalog
from agents.sources import is_url, parse_source
from agents.workspace import Workspaces
from producers.emitter import Emitter
from ttfb.bus import consumer_options, stop_on_signals
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
        verifier=Verifier(settings.signing_key.get_secret_value(), settings.command_max_age_s),
        agent_id=settings.agent_id,
        slot_cores=slot_cores(slots, cores),
        profile_dir=settings.data_dir / "profiles",
        pythons=dict(settings.agent_python),
    )


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    config = agent_config(settings)
    config.profile_dir.mkdir(parents=True, exist_ok=True)
    emitter = await Emitter(settings, settings.agent_id).start()
    agent = Agent(config, emitter)
    try:
        await consume(agent, settings.topic("commands"), consumer_options(settings),
                      f"{settings.topic_prefix}-agents", stop,
                      session_ms=int(settings.group_session_timeout_s * 1000))
    finally:
        await emitter.flush(timeout=30)
        await emitter.stop()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(message)s")
    settings = Settings()

    async def run() -> None:
        await serve(settings, stop_on_signals())

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
