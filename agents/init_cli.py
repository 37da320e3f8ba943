"""``ttfb init --script PATH [-- ARGS]``: a catalog entry for an unmodified
training script, checked with a real run before it is written."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import sys
import threading
from pathlib import Path

from agents.catalog import CatalogError, Scenario, load_catalog
from agents.runner import RunOutcome, run_once
from agents.spec import SpecError, spec_for
from agents.workspace import WorkspaceError, git, temporary_checkout
from ttfb.events import failure_summary
from ttfb.harness import EDITABLE_COPY
from ttfb.launcher import NO_STEP
from ttfb.settings import Settings


def _toml(scenario: Scenario) -> str:
    def value(v: object) -> str:
        return json.dumps(v)  # TOML's basic strings, arrays and numbers read as JSON's

    lines = ["", "[[scenario]]", f"name = {value(scenario.name)}", f"repo = {value(scenario.repo)}",
             f"script = {value(scenario.script)}", f"args = {value(scenario.args)}"]
    if scenario.workdir:
        lines.append(f"workdir = {value(scenario.workdir)}")
    if scenario.pythonpath != ["."]:
        lines.append(f"pythonpath = {value(scenario.pythonpath)}")
    if scenario.python:
        lines.append(f"python = {value(scenario.python)}")
    if scenario.env:
        pairs = ", ".join(f"{k} = {value(v)}" for k, v in scenario.env.items())
        lines.append(f"env = {{ {pairs} }}")
    if scenario.links:
        pairs = ", ".join(f"{value(k)} = {value(v)}" for k, v in scenario.links.items())
        lines.append(f"links = {{ {pairs} }}")
    lines += [f"device = {value(scenario.device)}", f"timeout_s = {scenario.timeout_s:g}",
              "cheap = true", ""]
    return "\n".join(lines)


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        if not eq:
            raise ValueError(f"--env {pair!r} must look like KEY=VALUE")
        env[key] = text
    return env


def _in_repo(given: str, base: Path, root: Path) -> str:
    """``given`` (absolute, or relative to ``base``) relative to the
    repository's ``root``, without resolving links; "" where it is outside
    the repository or the root itself."""
    place = Path(os.path.normpath(base / given))  # an absolute ``given`` replaces ``base``
    return place.relative_to(root).as_posix() if place.is_relative_to(root) and place != root \
        else ""


def _links(given: list[str], root: Path) -> dict[str, str]:
    """``--link PATH[=TARGET]`` as the catalog keeps them: PATH relative to
    the repository's root (or absolute, inside it), TARGET an absolute path
    (default: PATH in the working copy, which must exist)."""
    links = {}
    for item in given:
        path, eq, target = item.partition("=")
        rel = _in_repo(path, root, root)
        if not rel:
            raise ValueError(f"--link {path!r} is not a path inside the repository {root}")
        source = Path(target).expanduser().absolute() if eq else root / rel
        if not source.exists():
            raise ValueError(f"--link {item!r}: there is no {source} to link to")
        links[rel] = str(source.resolve())
    return links


def _untracked_input(stderr_tail: str, root: Path, workdir: str) -> str:
    """Where a run in a clean checkout died on a file it reads that the
    working copy has and git does not track: that path, relative to the
    root; "" otherwise."""
    for missing in reversed(re.findall(r"No such file or directory: '([^']+)'", stderr_tail)):
        rel = _in_repo(missing, root / workdir, root)
        if rel and (root / rel).exists():
            return rel
    return ""


def _run_at_head(scenario: Scenario, root: Path) -> RunOutcome:
    """One run of ``scenario`` in a temporary checkout of ``root`` at HEAD,
    saying every while that it still runs: a script with a long evaluation
    before its first step can take the whole timeout."""
    done = threading.Event()
    every = min(30.0, scenario.timeout_s / 4)

    def tick() -> None:
        waited = 0.0
        while not done.wait(every):
            waited += every
            print(f"  still running after {waited:.0f} s (stopped at {scenario.timeout_s:.0f} s)",
                  file=sys.stderr, flush=True)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        with temporary_checkout(scenario.repo, root, "HEAD") as (checkout, _):
            return run_once(spec_for(scenario, checkout))
    finally:
        done.set()
        ticker.join()


def _missing_module(stderr_tail: str, python: str, chosen: bool) -> str:
    """Where the script died importing a module the interpreter lacks, what
    to do about it (the lab's own interpreter has only the lab's packages)."""
    found = re.findall(r"ModuleNotFoundError: No module named '([^']+)'", stderr_tail)
    if not found:
        return ""
    module = found[-1].split(".")[0]
    return (f". {python} has no module {module!r}: "
            + ("install it there" if chosen else
               "give the project's own interpreter with --python (its virtual environment's "
               "bin/python), or install it in the lab's") + ".")


def _import_folder(stderr_tail: str, root: Path) -> str:
    """Where a run imported the repository's package from the working copy at
    ``root`` rather than from the checkout (the harness says so: an editable
    install of a layout the lab's default path misses, ``lib/pkg``), the
    folder (relative to the root) that holds it; "" otherwise."""
    found = re.findall(r"imported the repository's '[^']+' from (.+?)" + re.escape(EDITABLE_COPY),
                       stderr_tail)
    if not found:
        return ""
    path = Path(found[-1])
    holder = path.parent.parent if path.name == "__init__.py" else path.parent
    if not holder.is_relative_to(root.resolve()):
        return ""
    relative = holder.relative_to(root.resolve()).as_posix()
    return "" if relative == "." else relative


def _uses_datasets(root: Path, modules: list[str]) -> bool:
    """Whether the repository's code the run imported imports Hugging Face
    ``datasets`` (its cache keeps every run after the first from doing the
    preprocessing a fresh host does)."""
    pattern = re.compile(r"^\s*(from\s+datasets\b|import\s+datasets\b)", re.MULTILINE)
    for rel in modules:
        if rel.endswith(".py"):
            with contextlib.suppress(OSError, ValueError):
                if pattern.search((root / rel).read_text()):
                    return True
    return False


SLOW_RUN_S = 30.0  # a run this long makes every commit's measurement take minutes


def _slow_note(outcome: RunOutcome) -> str:
    """What to say of a run that took ``SLOW_RUN_S`` or longer to its first
    step, and where its time went; "" otherwise."""
    seconds = outcome.ttfb_ms / 1000
    if seconds < SLOW_RUN_S or not outcome.components:
        return ""
    part, ms = max(outcome.components.items(), key=lambda kv: kv[1])
    return (f"each run takes {seconds:.0f} s ({part} {ms / 1000:.0f} s of it), and every commit "
            "is measured with several runs: smaller sizes in the script's arguments (a batch, a "
            "sequence length, a number of layers) run the same code and keep the lab's runs short")


def _stopped_for_time(outcome: RunOutcome) -> bool:
    """The run reached no first step in its time: running it again in the
    working tree would tell nothing and take as long."""
    return outcome.reason.startswith("workflow hung") or NO_STEP in outcome.stderr_tail


def _workdir(given: str | None, root: Path) -> str:
    """``--workdir`` as the catalog keeps it: relative to the root (a path
    given is read from here, as ``--script`` is, or else from the root, as
    the catalog keeps it)."""
    if not given:
        return ""
    here, there = Path(given).resolve(), (root / given).resolve()
    inside = [f for f in (here, there) if f.is_relative_to(root) and f.is_dir()]
    if not inside:
        raise ValueError(f"--workdir {given!r} is not a folder of the repository {root} "
                         "(read from here, or from the repository's root)")
    folder = inside[0]
    relative = folder.relative_to(root).as_posix()
    return "" if relative == "." else relative


def _checked(scenario: Scenario, root: Path, script: Path,
             chosen: bool) -> tuple[Scenario, RunOutcome, str]:
    """The scenario after its run at HEAD, that run, and what to tell of the
    folder it ran in. A script kept in a folder of its own often reads its
    files relative to that folder (``python main.py``, run from there): where
    the run from the root fails, and no folder was chosen, the script's is
    tried too."""
    outcome = _run_at_head(scenario, root)
    held = _import_folder(outcome.stderr_tail, root)
    if outcome.status != "completed" and held and held not in scenario.pythonpath:
        print(f"the run imported the repository's code from the working copy {root}, not "
              f"from the checkout; trying again with {held}/ on its path...", file=sys.stderr)
        scenario = scenario.model_copy(update={"pythonpath": [*scenario.pythonpath, held]})
        outcome = _run_at_head(scenario, root)
    folder = script.parent.relative_to(root).as_posix()
    if outcome.status == "completed" or chosen or folder == "." or _stopped_for_time(outcome):
        return scenario, outcome, ""
    print(f"the run from the repository's root failed ({outcome.reason}); trying again from "
          f"{folder}/, the script's folder...", file=sys.stderr)
    moved = scenario.model_copy(update={"workdir": folder})
    again = _run_at_head(moved, root)
    if again.status != "completed":
        return scenario, outcome, f" (from {folder}/ too: {again.reason})"
    return moved, again, (f"runs start in {folder}/ (workdir), where the script reads its files "
                          f"from; from the root it failed: {outcome.reason}")


def init_command(args: argparse.Namespace, settings: Settings) -> int:
    script = Path(args.script).resolve()
    if not script.is_file():
        print(f"ttfb init: no such script {script}", file=sys.stderr)
        return 2
    try:
        root = Path(git(script.parent, "rev-parse", "--show-toplevel").strip())
    except WorkspaceError:
        print(f"ttfb init: {script} is not inside a git repository", file=sys.stderr)
        return 2
    repo = args.repo_name or re.sub(r"[^A-Za-z0-9_.-]", "-", root.name)
    # ``word_language_model/main.py``: a folder of examples each with its
    # main.py (pytorch/examples) is named by the folder, not "main"
    generic = script.stem in ("main", "__main__") and script.parent != root
    name = args.name or re.sub(r"[^A-Za-z0-9_.-]", "-",
                               script.parent.name if generic else script.stem)
    catalog = Path(args.catalog) if args.catalog else root / "ttfb.toml"
    try:
        scenario = Scenario(name=name, repo=repo, script=script.relative_to(root).as_posix(),
                            args=list(args.script_args), python=args.python or "",
                            device=args.device, timeout_s=args.timeout,
                            env=_env_pairs(args.env or []),
                            workdir=_workdir(args.workdir, root),
                            links=_links(args.link or [], root))
        if catalog.exists() and load_catalog(catalog).get(name) is not None:
            raise CatalogError(f"{catalog}: scenario {name!r} exists; choose another --name")
        spec = spec_for(scenario, root)
    except (CatalogError, SpecError, ValueError) as exc:
        print(f"ttfb init: {exc}", file=sys.stderr)
        return 2
    print(f"checking {scenario.script} with a real run in a clean checkout of HEAD, as the "
          "lab runs each commit (stopped after its first step)...", file=sys.stderr)
    try:
        scenario, outcome, note = _checked(scenario, root, script,
                                            bool(args.workdir))
        spec = spec_for(scenario, root)
    except (SpecError, WorkspaceError) as exc:
        print(f"ttfb init: {exc}; commit the script first. Nothing written", file=sys.stderr)
        return 2
    if outcome.status != "completed":
        # works in the working tree (left as it is: no links placed there): what differs?
        if not _stopped_for_time(outcome) and \
                run_once(dataclasses.replace(spec, links=())).status == "completed":
            untracked = _untracked_input(outcome.stderr_tail, root, scenario.workdir)
            print(f"ttfb init: the run works in {root} but fails in a clean checkout of HEAD, "
                  "which is how the lab runs every commit: it needs files git does not track "
                  "(a prepared dataset?) or changes not committed. "
                  f"{failure_summary(outcome.reason, outcome.stderr_tail)}. "
                  + (f"{untracked} is in the working copy and not in git: give it to every "
                     f"run with --link {untracked} (each checkout links it from "
                     f"{(root / untracked).resolve()}), or commit it"
                     if untracked else "Commit the change, or give data kept outside git by an "
                     "absolute path in the script's arguments, or with --link PATH")
                  + ". Nothing written", file=sys.stderr)
            return 1
        print(f"ttfb init: the run failed, nothing written: {outcome.reason}{note}"
              f"{_missing_module(outcome.stderr_tail, spec.python, bool(args.python))}\n"
              f"{outcome.stderr_tail[-1500:]}", file=sys.stderr)
        return 1
    parts = ", ".join(f"{k} {v:,.0f} ms" for k, v in outcome.components.items())
    if note:
        print(note)
    with catalog.open("a") as out:
        out.write(_toml(scenario))
    print(f"measured: ttfb {outcome.ttfb_ms:,.0f} ms ({parts})")
    if slow := _slow_note(outcome):
        print(slow)
    print(f"wrote scenario {name!r} to {catalog}")
    if "HF_DATASETS_CACHE" not in scenario.env and _uses_datasets(root, outcome.modules):
        print("it uses Hugging Face datasets, whose converted and mapped files stay cached "
              "between runs: to measure its preprocessing as a fresh host runs it, add "
              'HF_DATASETS_CACHE = "{run_tmp}/datasets" to its env (or give init '
              "--env 'HF_DATASETS_CACHE={run_tmp}/datasets')")
    print(f"next: commit {catalog.name}, then\n"
          f"  TTFB_CATALOG={catalog} ttfb backfill --repo {repo}={root} --last 10\n"
          f"  TTFB_CATALOG={catalog} ttfb watch --repo {repo}={root}")
    return 0
