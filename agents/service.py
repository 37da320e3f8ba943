"""Agent process entry: ``python -m agents.service`` (settings from ``TTFB_``)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from agents.agent import Agent, AgentConfig, consume
from agents.catalog import load_catalog
from agents.workspace import Workspaces
from producers.emitter import Emitter
from ttfb.bus import consumer_options, stop_on_signals
from ttfb.settings import Settings
from ttfb.signing import Verifier

log = logging.getLogger(__name__)


def agent_config(settings: Settings) -> AgentConfig:
    affinity: tuple[int, ...] = ()
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_setaffinity") and cores >= 2:
        # the workflow gets the machine's last core to itself; `ttfb up` keeps
        # the lab's own processes (broker, streams, agent, dashboard) on the
        # others. The machine's, not this process's: it may already be pinned.
        affinity = (cores - 1,)
    return AgentConfig(
        repos={name: Path(path) for name, path in settings.repos.items()},
        catalog=load_catalog(settings.catalog),
        workspaces=Workspaces(settings.workspace_dir),
        verifier=Verifier(settings.signing_key.get_secret_value(), settings.command_max_age_s),
        agent_id=settings.agent_id,
        cpu_affinity=affinity,
        profile_dir=settings.data_dir / "profiles",
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
