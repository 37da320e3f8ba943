"""An agent with slots: scenarios in different slots run at once, each on its
own core; one slot runs its commands in order; offsets are committed only
after every command up to them is done. Real broker, real agent, real runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from agents.agent import Agent, AgentConfig
from agents.catalog import Catalog, Scenario
from agents.consumer import consume
from agents.service import slot_cores
from agents.workspace import Workspaces
from producers.commands import CommandSender
from tests.integration.conftest import clean_settings, group_offsets
from ttfb import events as ev
from ttfb.bus import EmbeddedBroker, consumer_options, ensure_topics
from ttfb.emitter import Emitter
from ttfb.settings import Settings
from ttfb.signing import Verifier

# each run notes when it started and ended and which cores it could use
SCRIPT = """\
import json, os, sys, time
start = time.time()
time.sleep(1.0)
with open(os.path.join(os.environ["STAMPS"], sys.argv[1] + "-" + str(start)), "w") as f:
    json.dump({"scenario": sys.argv[1], "start": start, "end": time.time(),
               "cores": sorted(os.sched_getaffinity(0))}, f)
"""


def _repo(path: Path) -> Path:
    path.mkdir()
    (path / "work.py").write_text(SCRIPT)
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t",
                                                "commit", "-qm", "work"]):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    return path


def _catalog() -> Catalog:
    # slots by place in the sorted names: a and c in slot 0 of two, b in slot 1
    return Catalog(scenarios={name: Scenario(name=name, repo="r", script="work.py", args=[name])
                              for name in ("a", "b", "c")})


async def _serve(settings: Settings, tmp: Path, slots: int,
                 commands: list[ev.RunRequested]) -> tuple[list[dict[str, object]], int]:
    config = AgentConfig(
        repos={"r": _repo(tmp / "repo")}, catalog=_catalog(),
        workspaces=Workspaces(tmp / "ws"), warmup=False,
        verifier=Verifier(settings.signing_key.get_secret_value()),
        allowed_env=("STAMPS",),  # the arm's variable, as this agent's operator allows
        slot_cores=slot_cores(slots, os.cpu_count() or 1) if slots > 1 else ((),))
    emitter = await Emitter(settings, "slots-agent").start()
    stop = asyncio.Event()
    task = asyncio.create_task(consume(Agent(config, emitter), settings.topic("commands"),
                                       consumer_options(settings), "slots", stop))
    await CommandSender(settings).send_all(commands)
    stamps = tmp / "stamps"
    wanted = sum(c.runs for c in commands)
    for _ in range(600):
        if len(list(stamps.iterdir())) >= wanted:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await task
    await emitter.stop()
    offsets = await group_offsets(settings, "slots", settings.topic("commands"))
    assert offsets
    behind = sum(end - (committed or 0) for committed, end in offsets.values())
    return [json.loads(p.read_text()) for p in stamps.iterdir()], behind


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"),
                    reason="slots pin runs to distinct cores: needs Linux and 2 or more cores")
@pytest.mark.parametrize("slots", [1, 2])
def test_slots_run_scenarios_at_once_and_commit_after_effects(tmp_path: Path,
                                                              slots: int) -> None:
    broker = EmbeddedBroker().start()
    try:
        settings = clean_settings(tmp_path, kafka_bootstrap=broker.bootstrap)
        asyncio.run(ensure_topics(settings))
        (tmp_path / "stamps").mkdir()
        env = ev.Arm(env={"STAMPS": str(tmp_path / "stamps")})
        commands = [ev.RunRequested(scenario=name, repo="r", commit="HEAD", runs=2, arm=env)
                    for name in ("a", "b", "c")]
        stamps, behind = asyncio.run(_serve(settings, tmp_path, slots, commands))
    finally:
        broker.stop()
    assert len(stamps) == 6
    assert behind == 0, "every command is done: the group's offsets are at the end"
    by = {name: sorted((s for s in stamps if s["scenario"] == name),
                       key=lambda s: s["start"]) for name in ("a", "b", "c")}

    def overlap(x: dict[str, object], y: dict[str, object]) -> bool:
        return x["start"] < y["end"] and y["start"] < x["end"]  # type: ignore[operator]

    # a slot never runs two things at once
    one_slot = [by["a"] + by["c"], by["b"]] if slots == 2 else [stamps]
    for runs in one_slot:
        assert not any(overlap(x, y) for i, x in enumerate(runs) for y in runs[i + 1:])
    crossed = any(overlap(x, y) for x in by["a"] + by["c"] for y in by["b"])
    if slots == 2:
        assert crossed, "b is in the other slot: its runs overlap a's or c's"
        last = (os.cpu_count() or 2) - 1
        cores = {name: {tuple(s["cores"]) for s in runs}  # type: ignore[call-overload]
                 for name, runs in by.items()}
        assert cores == {"a": {(last,)}, "b": {(last - 1,)}, "c": {(last,)}}
    else:
        assert not crossed
