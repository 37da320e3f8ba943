"""The agent: commit bookkeeping of its slots, their cores, and the bisect hint."""

from agents.agent import _Offsets


def test_commit_stops_at_the_lowest_command_still_running() -> None:
    offsets = _Offsets()
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
    offsets = _Offsets()
    offsets.start("p0", 3)
    offsets.forget({"p0"})
    assert offsets.to_commit() == {} and offsets.count() == 0
    offsets.done("p0", 3)  # its command ending later does no harm


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


def test_a_range_listing_marks_the_commits_that_touch_the_scenarios_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The bisect's prior comes from the files the scenario imported on the
    agent's latest run of it; before any run, no hint at all."""
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
    ask = ev.CommitRangeRequested(scenario="vision", repo="demo", good="HEAD~6", bad="HEAD")
    assert agent.list_range(ask).affected == []
    agent._events(RunOutcome(status="completed", components={"imports": 1.0},
                             modules=["trainlab/lm/model.py", "trainlab/vision/model.py"]),
                  {"scenario": "vision", "commit": "c"}, "", "", "")
    listed = agent.list_range(ask)
    changed = [subprocess.run(["git", "-C", str(repo), "show", "--name-only", "--format=", c],
                              capture_output=True, text=True, check=True).stdout.split()
               for c in listed.commits]
    assert listed.affected == [bool({"trainlab/lm/model.py", "trainlab/vision/model.py"} & set(f))
                               for f in changed]
    assert any(listed.affected[1:]) and not all(listed.affected[1:])
