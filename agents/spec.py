"""From a catalog scenario and a checkout to the ``RunSpec`` of its runs.

One place for what a scenario may ask of the agent: the script, entry,
working directory, import path and links must lie inside the repository
checked out at that commit (after symlinks), a link's target must exist on
the host, and the interpreter is the scenario's, or the agent's override, or
the lab's own.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from agents.catalog import Scenario
from agents.runner import RunSpec
from agents.shrink import shrink, shrink_args
from ttfb.harness import with_src


class SpecError(ValueError):
    """A scenario that cannot run at this commit; the message names scenario and field."""


def _inside(root: Path, relative: str, scenario: str, field: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise SpecError(f"scenario {scenario!r}: field {field!r}: {relative!r} resolves to "
                        f"{path}, outside the repository")
    return path


def interpreter(scenario: Scenario, overrides: Mapping[str, str] | None = None) -> str:
    """The scenario's interpreter: the agent's override (by scenario name, or
    ``*``), else the catalog's, else the lab's own."""
    overrides = overrides or {}
    chosen = overrides.get(scenario.name) or overrides.get("*") or scenario.python
    if not chosen:
        return sys.executable
    if "/" not in chosen:
        found = shutil.which(chosen)
        if not found:
            raise SpecError(f"scenario {scenario.name!r}: field 'python': no {chosen!r} on PATH")
        return found
    return chosen


def spec_for(scenario: Scenario, root: Path, production: bool = False,
             timeout: float | None = None, python: str | None = None,
             overrides: Mapping[str, str] | None = None) -> RunSpec:
    """The run of ``scenario`` in the checkout ``root``; ``SpecError`` where the
    catalog asks for something outside it."""
    name = scenario.name
    paths = with_src(root, [_inside(root, p, name, "pythonpath") for p in scenario.pythonpath])
    workdir = _inside(root, scenario.workdir, name, "workdir")
    if not workdir.is_dir():
        raise SpecError(f"scenario {name!r}: field 'workdir': {scenario.workdir!r} is not a "
                        "folder of the repository at this commit")
    if scenario.script:
        script = _inside(root, scenario.script, name, "script")
        if not script.is_file():
            raise SpecError(f"scenario {name!r}: field 'script': no file {scenario.script!r} "
                            "in the repository at this commit")
    else:
        top = scenario.entry.partition(":")[0].split(".")[0]
        if not any((p / top).is_dir() or (p / f"{top}.py").is_file() for p in paths):
            raise SpecError(f"scenario {name!r}: field 'entry': {scenario.entry!r} names no "
                            "module of the repository at this commit")
    for rel, target in scenario.links.items():
        _inside(root, str(Path(rel).parent), name, "links")
        if not Path(target).exists():
            raise SpecError(f"scenario {name!r}: field 'links': {rel!r} goes to {target}, "
                            "which does not exist on this host")
    config = scenario.config if production else shrink(scenario.config, scenario.shrink)
    args = scenario.args if production or not scenario.script else \
        shrink_args(scenario.args, scenario.shrink)
    return RunSpec(root=root, entry=scenario.entry, script=scenario.script,
                   args=tuple(args), config=config if scenario.entry else {},
                   python=python or interpreter(scenario, overrides),
                   timeout_s=timeout or scenario.timeout_s,
                   workdir=scenario.workdir, pythonpath=tuple(scenario.pythonpath),
                   env=dict(scenario.env), links=tuple(scenario.links.items()))
