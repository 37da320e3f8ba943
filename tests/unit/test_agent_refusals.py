"""What a command may not make an agent do: interpreters and environment keys
its operator did not allow, replays after a restart; and a flood of junk
leaves its memory bounded."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from pathlib import Path

import pytest

from agents.agent import Agent, AgentConfig
from agents.catalog import load_catalog
from agents.workspace import Workspaces
from ttfb import events as ev
from ttfb.signing import CommandRefused, Verifier, sign

KEY = "unit-test-signing-key-0123456789abcdef"


class Letters:
    """Collects what the agent emits instead of a bus."""

    def __init__(self) -> None:
        self.out: list[ev.Event] = []

    async def emit(self, event: ev.Event, topic: str) -> None:
        self.out.append(event)

    emit_soon = emit


def agent(tmp_path: Path, **config: object) -> tuple[Agent, Letters]:
    letters = Letters()
    made = Agent(AgentConfig(repos={"demo": tmp_path}, catalog=load_catalog(),
                             workspaces=Workspaces(tmp_path / "ws"),
                             verifier=Verifier(KEY, journal=tmp_path / "seen"), **config),  # type: ignore[arg-type]
                 emitter=letters)  # type: ignore[arg-type]
    return made, letters


def command(**arm: object) -> bytes:
    return ev.encode(sign(ev.RunRequested(scenario="lm", repo="demo", commit="HEAD",
                                          arm=ev.Arm(label="b", **arm)), KEY))  # type: ignore[arg-type]


@pytest.mark.parametrize(("arm", "reason"), [
    ({"env": {"PYTHONPATH": "/tmp/evil"}}, "environment not allowed: PYTHONPATH"),
    ({"env": {"LD_PRELOAD": "/tmp/x.so", "OMP_NUM_THREADS": "2"}},
     "environment not allowed: LD_PRELOAD"),
    ({"python": "/tmp/evil/python"}, "interpreter not allowed: '/tmp/evil/python'"),
])
def test_an_arm_may_ask_only_what_the_operator_allowed(tmp_path: Path, arm: dict[str, object],
                                                      reason: str) -> None:
    made, letters = agent(tmp_path, allowed_env=("OMP_NUM_THREADS",))
    asyncio.run(made.handle(command(**arm)))
    [letter] = letters.out
    assert isinstance(letter, ev.DeadLettered) and letter.refused_command
    assert letter.reason.startswith(reason), letter.reason


def test_an_allowed_arm_passes_the_check(tmp_path: Path) -> None:
    made, _ = agent(tmp_path, allowed_env=("OMP_NUM_THREADS",),
                    allowed_pythons=("/opt/py/bin/python",))
    made._check_arm(ev.Arm(env={"OMP_NUM_THREADS": "2"}, python="/opt/py/bin/python"))


def test_a_scenarios_env_reaches_its_runs_and_an_arms_env_wins(tmp_path: Path) -> None:
    """The catalog's env is the operator's; an allowed arm overrides a key of it."""
    from agents.catalog import Scenario

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    scenario = Scenario(name="s", repo="demo", entry="pkg:main",
                        env={"DATA_ROOT": "/srv/data", "WANDB_MODE": "disabled"})
    made, _ = agent(tmp_path, allowed_env=("WANDB_MODE",))
    plain = ev.RunRequested(scenario="s", repo="demo", commit="HEAD")
    assert made._spec(scenario, tmp_path, plain, ()).env == {"DATA_ROOT": "/srv/data",
                                                             "WANDB_MODE": "disabled"}
    arm = plain.model_copy(update={"arm": ev.Arm(env={"WANDB_MODE": "offline"})})
    assert made._spec(scenario, tmp_path, arm, ()).env == {"DATA_ROOT": "/srv/data",
                                                           "WANDB_MODE": "offline"}


def test_a_restarted_agent_still_refuses_a_replay(tmp_path: Path) -> None:
    signed = sign(ev.RunRequested(repo="demo", scenario="lm", commit="HEAD"), KEY)
    Verifier(KEY, journal=tmp_path / "seen").verify(signed)
    restarted = Verifier(KEY, journal=tmp_path / "seen")
    with pytest.raises(CommandRefused, match="replayed"):
        restarted.verify(signed)
    restarted.verify(sign(ev.RunRequested(repo="demo",
                     scenario="lm", commit="HEAD"), KEY))  # a new one
    # the lab sending the same command again on purpose signs it anew: accepted
    restarted.verify(sign(signed, KEY, now=signed.signed_at + 1))


def test_keys_rotate_a_command_signed_by_the_previous_key_still_verifies() -> None:
    old, new = "old-key-" + "a" * 32, "new-key-" + "b" * 32
    rotating = Verifier(new, previous=old)
    rotating.verify(sign(ev.RunRequested(repo="demo", scenario="lm", commit="c"), old))
    rotating.verify(sign(ev.RunRequested(repo="demo", scenario="lm", commit="c"), new))
    with pytest.raises(CommandRefused, match="does not hold"):
        Verifier(new).verify(sign(ev.RunRequested(repo="demo", scenario="lm", commit="c"), old))


def test_ten_thousand_junk_messages_leave_memory_bounded(tmp_path: Path) -> None:
    made, letters = agent(tmp_path)

    async def flood(start: int) -> None:
        for i in range(start, start + 5_000):
            await made.handle(json.dumps({"type": f"Junk{i}", "schema_version": 1}).encode())
        letters.out.clear()

    asyncio.run(flood(0))  # warm: whatever is allocated once
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    asyncio.run(flood(5_000))
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert len(made.refused) <= 3, made.refused  # a fixed set of kinds, not one per message
    assert made.refused["unknown event type"] == 10_000
    assert grown < 1_000_000, grown


def test_the_decision_cache_stays_bounded_whatever_scenario_names_arrive() -> None:
    from streams.decisions import StateCache
    from streams.packing import unpack

    cache = StateCache(limit=100)
    table: dict[str, object] = {}
    for i in range(10_000):
        detector, book = unpack(None)
        cache.keep(f"junk-{i}", table.get(f"junk-{i}"), detector, book)
    assert len(cache) == 100
    # the most recent are kept: a live scenario is not evicted by a flood of old names
    assert cache.load(table, "junk-9999")[0] is cache._entries["junk-9999"][1]


def test_a_request_that_made_way_goes_on_from_its_next_repetition(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request of three runs that makes way after its first goes on from
    the second: the signed command is not judged again (its id is in the
    replay journal, which would refuse it), and the three runs carry
    repetitions 0, 1 and 2 of the one request."""
    from agents.demo_history import write_demo_repo
    from agents.runner import RunOutcome

    repo = tmp_path / "repo"
    write_demo_repo(repo)
    ran: list[int] = []

    def run_once(spec: object, requested_ns: int = 0) -> RunOutcome:
        ran.append(len(ran))
        return RunOutcome(status="completed", components={"imports": 100.0 + len(ran)})

    monkeypatch.setattr("agents.agent.run_once", run_once)
    letters = Letters()
    made = Agent(AgentConfig(repos={"demo": repo}, catalog=load_catalog(),
                             workspaces=Workspaces(tmp_path / "ws"), warmup=False,
                             verifier=Verifier(KEY, journal=tmp_path / "seen")),
                 emitter=letters)  # type: ignore[arg-type]
    raw = ev.encode(sign(ev.RunRequested(scenario="lm", repo="demo", commit="HEAD", runs=3,
                                         purpose="monitor"), KEY))
    assert asyncio.run(made.handle(raw, yield_to=lambda: True)) == 1
    assert asyncio.run(made.handle(raw, first=1, yield_to=lambda: False)) is None
    runs = [e for e in letters.out if isinstance(e, ev.RunCompleted)]
    assert [r.repetition for r in runs] == [0, 1, 2] and len(ran) == 3
    assert {r.request_id for r in runs} == {runs[0].request_id} and \
        all(r.runs_total == 3 for r in runs)
    assert not [e for e in letters.out if isinstance(e, ev.DeadLettered)]
    # the same command from its start is a replay, and is refused
    asyncio.run(made.handle(raw))
    assert isinstance(letters.out[-1], ev.DeadLettered)
