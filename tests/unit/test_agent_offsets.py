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
