"""Where later commands find the lab: the bus while it runs, its store after."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ttfb.labinfo import forget_bus, last_lab, record_bus, running_bus
from ttfb.settings import Settings


def test_the_demo_lab_is_found_from_the_home_directory(tmp_path: Path) -> None:
    home = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    demo = home.model_copy(update={"data_dir": tmp_path / "demo-lab",
                                   "kafka_bootstrap": "127.0.0.1:9"})
    assert last_lab(home) == home and running_bus(home) == ""
    record_bus(demo, home=home.data_dir)
    assert running_bus(home) == "127.0.0.1:9"  # this process is the lab: alive
    assert last_lab(home).data_dir == tmp_path / "demo-lab"
    forget_bus(demo, home=home.data_dir)
    assert running_bus(home) == ""  # the bus is gone with the lab ...
    assert last_lab(home).data_dir == tmp_path / "demo-lab"  # ... its store is not


def test_a_dead_lab_has_no_bus(tmp_path: Path) -> None:
    home = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    (tmp_path / "lab.json").write_text(json.dumps(
        {"kafka_bootstrap": "127.0.0.1:9", "pid": 2**22 + os.getpid(), "data_dir": str(tmp_path)}))
    assert running_bus(home) == "" and last_lab(home) == home


def test_one_off_commands_use_the_running_lab_only_when_its_agent_runs_the_repo(
        tmp_path: Path) -> None:
    from ttfb.labinfo import repo_name, running_lab

    home = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    (tmp_path / "proj").mkdir()
    lab = home.model_copy(update={"kafka_bootstrap": "127.0.0.1:9",
                                  "repos": {"proj": str(tmp_path / "proj")}})
    assert running_lab(home, {"ab": str(tmp_path / "proj")}) is None  # no lab yet
    record_bus(lab, home=home.data_dir)
    found = running_lab(home, {"ab": str(tmp_path / "proj" / ".." / "proj")})
    assert found is not None and found.kafka_bootstrap == "127.0.0.1:9"
    assert repo_name(found, str(tmp_path / "proj"), "ab") == "proj"
    assert running_lab(home, {"ab": str(tmp_path / "other")}) is None  # not its repo
    other_catalog = home.model_copy(update={"catalog": tmp_path / "other.toml"})
    record_bus(lab.model_copy(update={"catalog": tmp_path / "mine.toml"}), home=home.data_dir)
    assert running_lab(other_catalog, {"ab": str(tmp_path / "proj")}) is None
