"""The agent: commit bookkeeping of its slots, their cores, and the bisect hint."""

from agents.consumer import Lanes, Offsets


def test_commit_stops_at_the_lowest_command_still_running() -> None:
    offsets = Offsets()
    for offset in (5, 6, 7):
        offsets.start("p0", offset)
    offsets.start("p1", 0)
    assert offsets.to_commit() == {"p0": 5, "p1": 0}  # nothing done: nothing passed
    offsets.committed.update(offsets.to_commit())
    offsets.done("p0", 6)  # a later command finished first (another slot)
    assert offsets.to_commit() == {}, "6 is done but 5 is not: a crash must replay 5"
    offsets.done("p0", 5)
    assert offsets.to_commit() == {"p0": 7}
    offsets.done("p0", 7)
    offsets.done("p1", 0)
    assert offsets.to_commit() == {"p0": 8, "p1": 1}
    assert offsets.count() == 0


def test_a_revoked_partition_is_forgotten() -> None:
    offsets = Offsets()
    offsets.start("p0", 3)
    offsets.forget({"p0"})
    assert offsets.to_commit() == {} and offsets.count() == 0
    offsets.done("p0", 3)  # its command ending later does no harm


class _RankedSlot:
    """One slot that records what it ran, a run taking a while."""

    slots, running, queued = 1, 0, 0

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.listed_while: list[int] = []  # runs going on at each listing
        self.in_run = 0

    def lane(self, raw: bytes) -> tuple[int, int]:
        from agents.agent import Agent

        return Agent.lane(self, raw)  # type: ignore[arg-type]

    def slot_of(self, scenario: str) -> int:
        return 0

    async def handle(self, raw: bytes, **_: object) -> None:
        import asyncio
        import json

        try:
            data = json.loads(raw)
        except ValueError:
            self.ran.append("junk")
            return
        if data.get("type") == "CommitRangeRequested":
            self.listed_while.append(self.in_run)
            self.ran.append(f"listing-{data['n']}")
            return
        self.ran.append(f"{data['purpose']}{'+bg' if data.get('background') else ''}-{data['n']}")
        self.in_run += 1
        await asyncio.sleep(0.02)  # a run takes a while
        self.in_run -= 1


def _drain(purposes: list[str], **lanes_options: float) -> _RankedSlot:
    """``purposes`` queued in order (``listing``: a range's listing, ``junk``:
    unreadable bytes, ``+bg``: a background run), the slot's first run
    started once three are in; every command run."""
    import asyncio
    import json
    from types import SimpleNamespace

    async def drain() -> _RankedSlot:
        agent = _RankedSlot()
        lanes = Lanes(agent, Offsets(), **lanes_options)  # type: ignore[arg-type]
        for offset, purpose in enumerate(purposes):
            fields = {"type": "CommitRangeRequested"} if purpose == "listing" else \
                {"purpose": purpose.removesuffix("+bg"), "background": purpose.endswith("+bg")}
            value = b"{junk" if purpose == "junk" else \
                json.dumps({"scenario": "lm", "n": offset, **fields}).encode()
            lanes.put("tp", SimpleNamespace(value=value, offset=offset))
            if offset == 2:  # the slot's first run starts before the rest arrive
                lanes.advance()
        while lanes.busy or any(lanes.queued):
            lanes.advance()
            await lanes.wait(0.01)
        return agent

    return asyncio.run(drain())


def test_a_slot_runs_a_bisect_s_runs_before_confirmations_and_monitoring() -> None:
    """Queued commands run by rank, in arrival order within one: a bisect's
    runs (the last step to an attributed alert) before a confirmation's
    (kept in their interleaved order), both before the monitoring of
    further commits; an unreadable command keeps the first rank, where the
    agent refuses it. A range's listing has a lane of its own: it takes
    milliseconds, and a bisect places its batches by it, so it is answered
    while the slot's run goes on, not after it."""
    agent = _drain(["monitor", "monitor", "confirm", "bisect", "confirm", "junk",
                    "explain", "monitor", "listing"])
    assert [r for r in agent.ran if not r.startswith("listing")] == [
        "confirm-2", "bisect-3", "junk", "explain-6", "confirm-4", "monitor-0", "monitor-1",
        "monitor-7"]
    # the listing came last and was answered while the slot's first run went on
    assert agent.ran.index("listing-8") == 1 and agent.listed_while == [1]


def test_a_background_run_waits_behind_monitoring_for_a_while_at_most() -> None:
    """A confirmation's runs that refine a change already told run after the
    monitoring of further commits (which may hold the next change), and
    take a confirmation's rank once they have waited the lane's limit."""
    queued = ["monitor", "confirm+bg", "monitor", "bisect", "confirm", "confirm+bg", "monitor"]
    assert _drain(queued).ran == [
        "monitor-0", "bisect-3", "confirm-4", "monitor-2", "monitor-6", "confirm+bg-1",
        "confirm+bg-5"]
    assert _drain(queued, background_wait=0.0).ran == [
        "confirm+bg-1", "bisect-3", "confirm-4", "confirm+bg-5", "monitor-0", "monitor-2",
        "monitor-6"]


def test_a_commit_s_monitoring_runs_make_way_for_a_bisect_between_two_repetitions() -> None:
    """A command of several repetitions stops between two of them once a
    command of a better rank waits (a bisect's run behind a commit's three
    monitoring runs waited for all three), and goes on from its next
    repetition afterwards, its offset in flight until its last; one of the
    same rank waits for it to end."""
    import asyncio
    import json
    from types import SimpleNamespace

    from agents.agent import Agent

    class OneSlot:
        slots, running, queued = 1, 0, 0
        lane = Agent.lane

        def __init__(self) -> None:
            self.ran: list[str] = []

        def slot_of(self, scenario: str) -> int:
            return 0

        async def handle(self, raw: bytes, first: int = 0,
                         yield_to: object = None) -> int | None:
            data = json.loads(raw)
            for repetition in range(first, data.get("runs", 1)):
                if repetition > first and callable(yield_to) and yield_to():
                    return repetition
                self.ran.append(f"{data['purpose']}-{data['n']}.{repetition}")
                await asyncio.sleep(0.03)
            return None

    async def play() -> tuple[OneSlot, list[tuple[int, int]]]:
        agent = OneSlot()
        offsets = Offsets()
        lanes = Lanes(agent, offsets)  # type: ignore[arg-type]
        committable = []

        def put(n: int, purpose: str, runs: int = 1) -> None:
            value = json.dumps({"scenario": "lm", "n": n, "purpose": purpose, "runs": runs})
            lanes.put("tp", SimpleNamespace(value=value.encode(), offset=n))

        put(0, "monitor", 3)
        lanes.advance()
        await asyncio.sleep(0.01)  # the first monitoring run is going
        put(1, "monitor", 2)  # the same rank: waits for the first to end
        put(2, "bisect")
        while lanes.busy or any(lanes.queued):
            lanes.advance()
            await lanes.wait(0.005)
            lanes.advance()
            moved = offsets.to_commit()
            if moved:
                committable.append((len(agent.ran), moved["tp"]))
                offsets.committed.update(moved)
        return agent, committable

    agent, committable = asyncio.run(play())
    assert agent.ran == ["monitor-0.0", "bisect-2.0", "monitor-0.1", "monitor-0.2",
                         "monitor-1.0", "monitor-1.1"]
    # offset 0 stayed in flight while the bisect ran, and until its third run:
    # a crash before then replays it (committable offsets, after how many runs)
    assert [offset for _, offset in committable] == [0, 1, 3]
    assert committable[1][0] >= 4, committable


def test_a_lane_waits_a_moment_after_a_bisect_s_run_before_it_starts_monitoring() -> None:
    """The folds ask for a bisect's next run a fraction of a second after its
    last one ends; a monitoring run started in between held it up a whole
    run. After a command of one rank the lane waits its grace before one of
    a worse rank, and starts that one once the grace is over if nothing
    better came."""
    import asyncio
    import json
    import time
    from types import SimpleNamespace

    from agents.agent import Agent

    class OneSlot:
        slots, running, queued = 1, 0, 0
        lane = Agent.lane

        def __init__(self) -> None:
            self.ran: list[tuple[str, float]] = []

        def slot_of(self, scenario: str) -> int:
            return 0

        async def handle(self, raw: bytes, **_: object) -> None:
            data = json.loads(raw)
            self.ran.append((f"{data['purpose']}-{data['n']}", time.monotonic()))
            await asyncio.sleep(0.05)

    async def play(follow_up: bool) -> list[tuple[str, float]]:
        agent = OneSlot()
        lanes = Lanes(agent, Offsets(), grace=0.3)  # type: ignore[arg-type]

        def put(n: int, purpose: str) -> None:
            value = json.dumps({"scenario": "lm", "n": n, "purpose": purpose})
            lanes.put("tp", SimpleNamespace(value=value.encode(), offset=n))

        put(0, "bisect")
        put(1, "monitor")
        lanes.advance()
        running = lanes.running[0]
        assert running is not None
        await running[0]  # the bisect's run ended
        lanes.advance()
        if follow_up:
            await asyncio.sleep(0.1)  # the fold's next request, moments later
            put(2, "bisect")
        while lanes.busy or any(lanes.queued):
            lanes.advance()
            await lanes.wait(0.01)
        return agent.ran

    ran = asyncio.run(play(follow_up=True))
    assert [name for name, _ in ran] == ["bisect-0", "bisect-2", "monitor-1"]
    ran = asyncio.run(play(follow_up=False))
    assert [name for name, _ in ran] == ["bisect-0", "monitor-1"]
    waited = ran[1][1] - ran[0][1] - 0.05
    assert 0.25 <= waited <= 1.0, waited


def test_slots_leave_the_lab_a_core(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from agents.service import agent_config, slot_cores
    from ttfb.settings import Settings

    assert slot_cores(3, 8) == ((7,), (6,), (5,))
    assert slot_cores(4, 1) == ((),)  # one core: nothing to pin
    for cores, wanted in ((2, 1), (4, 3), (16, 8)):
        monkeypatch.setattr("os.cpu_count", lambda c=cores: c)
        config = agent_config(Settings(data_dir=tmp_path, agent_slots=8, _env_file=None))
        assert len(config.slot_cores) == wanted
        assert config.slot_cores[0] == (cores - 1,)


def test_a_range_listing_marks_the_commits_that_change_the_scenarios_code(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The bisect's prior comes from the files the scenario imported on the
    agent's latest run of it, less edits to their comments and docstrings;
    before any run, no hint at all."""
    import subprocess

    from agents.agent import Agent, AgentConfig
    from agents.catalog import load_catalog
    from agents.demo_history import write_demo_repo
    from agents.runner import RunOutcome
    from agents.workspace import Workspaces
    from ttfb import events as ev
    from ttfb.signing import Verifier

    repo = tmp_path / "repo"
    write_demo_repo(repo)
    agent = Agent(AgentConfig(repos={"demo": repo}, catalog=load_catalog(),
                              workspaces=Workspaces(tmp_path / "ws"), verifier=Verifier("k")),
                  emitter=None)  # type: ignore[arg-type]
    ask = ev.CommitRangeRequested(scenario="vision", repo="demo", good="HEAD~25", bad="HEAD")
    assert agent.list_range(ask).affected == []
    modules = {"trainlab/lm/model.py", "trainlab/recsys/features.py"}
    agent._events(RunOutcome(status="completed", components={"imports": 1.0},
                             modules=sorted(modules)),
                  {"scenario": "vision", "repo": "demo", "commit": "c"}, "", "", "")
    listed = agent.list_range(ask)
    touching = {subject for c, subject in zip(listed.commits, listed.subjects, strict=True)
                if modules & set(subprocess.run(
                    ["git", "-C", str(repo), "show", "--name-only", "--format=", c],
                    capture_output=True, text=True, check=True).stdout.split())}
    # three commits of the range touch those files: one changes code, one a
    # docstring, one adds a comment
    assert touching == {"Memoize click-log conversion", "Describe the synthetic click log",
                        "Explain the causal mask"}
    assert {s for s, hit in zip(listed.subjects, listed.affected, strict=True) if hit} == \
        {"Memoize click-log conversion"}


def test_only_comments_docstrings_and_layout_leave_a_file_s_code_unchanged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    from agents.workspace import changes_code
    from tests.unit.test_explain import commit_file

    repo = tmp_path / "r"
    repo.mkdir()

    def commit(text: str, name: str = "m.py") -> str:
        return commit_file(repo, name, text)

    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    commit("def f(x):\n    return x + 1\n")
    same = [commit('"""Module."""\n\ndef f(x):\n    # add one\n    return x + 1\n'),
            commit('"""Module, said otherwise."""\n\n\ndef f(x):\n    """One more."""\n'
                   '    return (x\n            + 1)\n')]
    other = [commit('"""Module."""\n\ndef f(x):\n    """One more."""\n    return x + 2\n'),
             commit('"""Module."""\nimport os\n\ndef f(x):\n    return x + 2\n')]
    assert [changes_code(repo, c, "m.py") for c in same] == [False, False]
    assert [changes_code(repo, c, "m.py") for c in other] == [True, True]
    broken = commit("def f(x:\n")
    assert changes_code(repo, broken, "m.py")  # does not parse: counted as changed
    assert changes_code(repo, commit("a = 1\n", "new.py"), "new.py")  # added
    assert changes_code(repo, commit("# x\n", "notes.txt"), "notes.txt")  # not Python
