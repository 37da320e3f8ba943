"""What a catalog scenario may ask of an agent: paths inside the repository at
that commit, an interpreter the operator named."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.catalog import Scenario
from agents.runner import place_links, run_once
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


def test_an_entry_in_a_src_layout_is_a_module_of_the_repository(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "__init__.py").write_text("")
    (root / "src" / "pkg" / "train.py").write_text("def main(config): pass\n")
    assert spec_for(Scenario(name="s", repo="r", entry="pkg.train:main"), root).entry
    with pytest.raises(SpecError, match="names no module of the repository"):
        spec_for(Scenario(name="s", repo="r", entry="pkg.train:main", pythonpath=["src/pkg"]),
                 root)


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


def test_the_commit_is_imported_not_an_editable_install_of_it(tmp_path: Path) -> None:
    """setuptools' editable finder sits in sys.meta_path, ahead of sys.path: a
    project installed editable from the user's working copy would be imported
    instead of the checkout under test, unless the harness drops it."""
    import subprocess

    checkout, installed = tmp_path / "checkout", tmp_path / "working-copy"
    for root, marker in ((checkout, "checkout"), (installed, "working copy")):
        (root / "proj").mkdir(parents=True)
        (root / "proj" / "__init__.py").write_text(f"WHERE = {marker!r}\n")
    probe = f"""
import importlib.util, sys, types
finder_module = types.ModuleType("__editable___proj_0_1_finder")
finder_module.MAPPING = {{"proj": {str(installed / "proj")!r}}}
class _EditableFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname == "proj":
            return importlib.util.spec_from_file_location(
                "proj", finder_module.MAPPING["proj"] + "/__init__.py")
        return None
_EditableFinder.__module__ = finder_module.__name__
sys.modules[finder_module.__name__] = finder_module
sys.meta_path.insert(0, _EditableFinder)
import ttfb.harness as harness
from pathlib import Path
if sys.argv[1] == "harness":
    harness.use_checkout([Path({str(checkout)!r})])
else:
    sys.path.insert(0, {str(checkout)!r})
import proj
print(proj.WHERE)
"""
    run = [sys.executable, "-c", probe]
    cwd = Path(__file__).resolve().parents[2]
    plain = subprocess.run([*run, "plain"], capture_output=True, text=True, cwd=cwd, check=True)
    assert plain.stdout.strip() == "working copy"  # the trap is real
    fixed = subprocess.run([*run, "harness"], capture_output=True, text=True, cwd=cwd,
                           check=True)
    assert fixed.stdout.strip() == "checkout"


@pytest.mark.parametrize(("path", "target", "says"), [
    ("/srv/data.bin", "/srv/data.bin", "inside the repository"),
    ("../data.bin", "/srv/data.bin", "inside the repository"),
    (".", "/srv/data", "names the repository itself"),
    ("data.bin", "data.bin", "absolute path"),
])
def test_the_catalog_refuses_a_link_outside_the_repository_or_to_a_relative_path(
        path: str, target: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Scenario(name="s", repo="r", script="t.py", links={path: target})


def test_a_link_is_placed_where_the_checkout_lacks_its_path_and_nowhere_else(
        tmp_path: Path) -> None:
    root = repo(tmp_path)
    data = tmp_path / "datasets" / "tokens.bin"
    data.parent.mkdir()
    data.write_bytes(b"\0" * 8)
    (root / "tracked.txt").write_text("the commit's own\n")
    scenario = Scenario(name="s", repo="r", script="scripts/train.py",
                        links={"prepared/tokens.bin": str(data), "tracked.txt": str(data)})
    spec = spec_for(scenario, root)
    assert place_links(spec) == ""
    assert (root / "prepared" / "tokens.bin").read_bytes() == data.read_bytes()
    assert (root / "tracked.txt").read_text() == "the commit's own\n"  # the commit's is used
    # a link another scenario placed at that path, to data of its own, is replaced
    (root / "prepared" / "tokens.bin").unlink()
    (root / "prepared" / "tokens.bin").symlink_to(tmp_path / "elsewhere.bin")
    assert place_links(spec) == ""
    assert os.readlink(root / "prepared" / "tokens.bin") == str(data)


def test_a_link_to_what_the_host_lacks_or_through_a_symlink_out_is_refused(
        tmp_path: Path) -> None:
    root = repo(tmp_path)
    absent = Scenario(name="s", repo="r", script="scripts/train.py",
                      links={"prepared/tokens.bin": str(tmp_path / "absent.bin")})
    with pytest.raises(SpecError, match="does not exist on this host"):
        spec_for(absent, root)
    os.symlink(tmp_path, root / "out")
    (tmp_path / "data.bin").write_bytes(b"")
    escaping = Scenario(name="s", repo="r", script="scripts/train.py",
                        links={"out/data.bin": str(tmp_path / "data.bin")})
    with pytest.raises(SpecError, match="outside the repository"):
        spec_for(escaping, root)


def test_a_link_that_cannot_be_placed_fails_the_run_with_the_reason(tmp_path: Path) -> None:
    root = repo(tmp_path)
    data = tmp_path / "tokens.bin"
    data.write_bytes(b"")
    # the commit has a file where the link's folder would be
    scenario = Scenario(name="s", repo="r", script="scripts/train.py",
                        links={"scripts/train.py/tokens.bin": str(data)})
    outcome = run_once(spec_for(scenario, root))
    assert outcome.status == "failed"
    assert outcome.reason.startswith("could not link scripts/train.py/tokens.bin in the checkout")
