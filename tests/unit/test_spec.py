"""What a catalog scenario may ask of an agent: paths inside the repository at
that commit, an interpreter the operator named."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.catalog import Scenario
from agents.spec import SpecError, interpreter, spec_for


def repo(tmp_path: Path) -> Path:
    (tmp_path / "proj" / "pkg").mkdir(parents=True)
    (tmp_path / "proj" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "proj" / "pkg" / "train.py").write_text("def main(config): pass\n")
    (tmp_path / "proj" / "scripts").mkdir()
    (tmp_path / "proj" / "scripts" / "train.py").write_text("print('hi')\n")
    return tmp_path / "proj"


@pytest.mark.parametrize("field", ["script", "workdir"])
@pytest.mark.parametrize("value", ["/etc/passwd", "../../../../tmp/x.py", "~/x.py"])
def test_the_catalog_refuses_paths_outside_the_repository(field: str, value: str) -> None:
    base = {"name": "s", "repo": "r", "script": "train.py"}
    with pytest.raises(ValidationError, match="inside the repository"):
        Scenario.model_validate({**base, field: value})


def test_a_relative_interpreter_path_is_refused() -> None:
    with pytest.raises(ValidationError, match="absolute path or a command name"):
        Scenario(name="s", repo="r", script="t.py", python="venv/bin/python")


def test_a_symlink_out_of_the_checkout_is_refused(tmp_path: Path) -> None:
    root = repo(tmp_path)
    outside = tmp_path / "outside.py"
    outside.write_text("print('not the repository')\n")
    os.symlink(outside, root / "scripts" / "escape.py")
    scenario = Scenario(name="s", repo="r", script="scripts/escape.py")
    with pytest.raises(SpecError, match="outside the repository"):
        spec_for(scenario, root)


def test_an_entry_must_name_a_module_of_the_repository(tmp_path: Path) -> None:
    root = repo(tmp_path)
    assert spec_for(Scenario(name="s", repo="r", entry="pkg.train:main"), root).entry
    for entry in ("subprocess:run", "os:system", "json.tool:main"):
        with pytest.raises(SpecError, match="names no module of the repository"):
            spec_for(Scenario(name="s", repo="r", entry=entry), root)


def test_a_script_missing_at_this_commit_names_scenario_and_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="scenario 's': field 'script': no file 'gone.py'"):
        spec_for(Scenario(name="s", repo="r", script="gone.py"), repo(tmp_path))


def test_interpreter_order_agent_then_catalog_then_lab() -> None:
    scenario = Scenario(name="s", repo="r", script="t.py", python="/opt/env/bin/python")
    assert interpreter(scenario) == "/opt/env/bin/python"
    assert interpreter(scenario, {"s": "/host/bin/python"}) == "/host/bin/python"
    assert interpreter(scenario, {"*": "/all/bin/python"}) == "/all/bin/python"
    assert interpreter(Scenario(name="s", repo="r", script="t.py")) == sys.executable
    with pytest.raises(SpecError, match="no 'no-such-python-here' on PATH"):
        interpreter(Scenario(name="s", repo="r", script="t.py", python="no-such-python-here"))


def test_the_spec_runs_from_the_workdir_with_the_root_importable(tmp_path: Path) -> None:
    root = repo(tmp_path)
    spec = spec_for(Scenario(name="s", repo="r", script="scripts/train.py",
                             workdir="scripts", args=["--epochs", "1"]), root)
    assert (spec.workdir, spec.pythonpath, spec.args) == ("scripts", (".",), ("--epochs", "1"))
