"""Child-process entry: run one workflow repetition and report its phases.

Started by the agent's runner as ``python ttfb/harness.py ...`` in a fresh
process (by path, so an arm's other interpreter needs nothing installed).
It reports, over the SDK descriptor: interpreter ready ("S"), the workflow
import as the ``imports`` phase, the workflow's own phase marks, the
repository files it imported or read (its footprint: a commit that changes
none of them is not measured), and "E" when done.
"""

import time

_READY_NS = time.monotonic_ns()

import argparse  # noqa: E402 - the ready stamp must come first
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def _sdk() -> "Any":
    """Import ``ttfb.sdk`` even under an interpreter that lacks ttfb-lab."""
    here = str(Path(__file__).resolve().parent.parent)
    if here not in sys.path:
        sys.path.append(here)
    from ttfb import sdk

    return sdk


def _importtime_to(path: str) -> "int | None":
    """Send ``-X importtime`` lines (stderr) to ``path`` while the workflow runs.

    Only when the agent asked for them (PYTHONPROFILEIMPORTTIME in a profiled
    run); returns the saved stderr descriptor to restore.
    """
    if not os.environ.get("PYTHONPROFILEIMPORTTIME"):
        return None
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = os.dup(2)
    os.dup2(log, 2)
    os.close(log)
    return saved


def repo_modules(root: Path) -> list[str]:
    """Repository files (relative paths) of every module imported so far."""
    found: set[str] = set()
    root = root.resolve()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or not os.path.isabs(path):
            continue
        try:
            rel = Path(path).resolve().relative_to(root)
        except ValueError:
            continue
        if "site-packages" not in rel.parts:
            found.add(rel.as_posix())
    return sorted(found)


READ_FILES_MAX = 1000  # files read that one run reports, at most
_WRITES = os.O_WRONLY | os.O_RDWR


def _read_in(prefixes: "tuple[str, ...]", args: "tuple[Any, ...]") -> "str | None":
    """The repository path (relative, POSIX) an ``open`` audit event's
    arguments read, if they read one (compiled caches and ``.git`` do not
    count); None for a write, a descriptor, or a path elsewhere."""
    path, mode, flags = args
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str) or (mode is not None and any(c in mode for c in "wax+")) \
            or (mode is None and flags & _WRITES):
        return None
    # a module's file (most opens) comes absolute: no cwd to read
    full = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    if ".." in full or os.sep + "." + os.sep in full:
        full = os.path.normpath(full)
    for prefix in prefixes:
        if full.startswith(prefix):
            rel = full[len(prefix):].replace(os.sep, "/")
            return None if "__pycache__/" in rel or rel.startswith(".git/") else rel
    return None


def watch_reads(root: Path) -> "Callable[[], set[str]]":
    """Watch which repository files the run opens for reading from now on: a
    config, a tokenizer or data shipped in the repository shapes the run as
    its code does. Returns what lists them (relative paths of files that
    exist) once the run is done. From the ``open`` audit event (``open()``,
    ``io.open``, ``os.open``; the interpreter raises it for every module file
    it reads too), in this process and in those it forks (a DataLoader's
    workers), which send theirs over a pipe (non-blocking: a worker never
    waits on it; what does not fit is lost). A hook cannot be removed, and
    Python calls it on every audit event (0.15-0.17 µs each; some 17,000
    while torch is imported): ``import torch`` takes 15-19 ms (1.3-1.7 %)
    longer with it (``bench/reads.py``), alike in every run, so no
    comparison moves."""
    found: set[str] = set()
    base = root.absolute()  # the workflow may change directory
    prefixes = tuple({str(base) + os.sep, str(root.resolve()) + os.sep})
    main = os.getpid()
    forked_out, forked_in = os.pipe()  # the forked processes' reads
    os.set_blocking(forked_out, False)
    os.set_blocking(forked_in, False)

    def hook(event: str, args: "tuple[Any, ...]") -> None:
        if event != "open" or len(found) >= READ_FILES_MAX:
            return
        try:  # an audit hook's error would be the workflow's open() failing
            rel = _read_in(prefixes, args)
            if rel is None or rel in found:
                return
            found.add(rel)
            if os.getpid() != main:  # at most PIPE_BUF bytes: written whole or not
                os.write(forked_in, rel.encode()[:4000] + b"\n")
        except Exception:  # never fail the workflow's open()
            return

    def listed() -> set[str]:
        chunks = []
        try:
            while chunk := os.read(forked_out, 65536):
                chunks.append(chunk)
        except OSError:  # nothing more to read
            pass
        forked = b"".join(chunks).decode(errors="replace").splitlines()[:READ_FILES_MAX]
        # an import system's probe of a path that is no file (a path hook's
        # name) is no read
        return {rel for rel in found | set(forked) if (base / rel).is_file()}

    sys.addaudithook(hook)
    return listed


def _software_facts() -> dict[str, str]:
    facts = {"python": sys.version.split()[0]}
    torch = sys.modules.get("torch")
    if torch is not None:
        facts["torch"] = str(getattr(torch, "__version__", ""))
        try:
            if torch.cuda.is_available():
                facts["gpu"] = torch.cuda.get_device_name(0)
                facts["device"] = "cuda"
            else:
                facts["device"] = "cpu"
        except Exception:  # a broken CUDA install must not fail the run
            facts["device"] = "cpu"
    return facts


def use_checkout(paths: "list[Path]", first: "list[Path] | None" = None) -> None:
    """Import the repository from the checkout under test: its folders first on
    ``sys.path``, and no editable install of one of its packages (setuptools'
    finder would otherwise import the installed working copy instead)."""
    sys.path[0:0] = [str(p) for p in (first or []) + paths]
    names: set[str] = set()
    for folder in paths:
        if folder.is_dir():
            names.update(child.name[:-3] if child.name.endswith(".py") else child.name
                         for child in folder.iterdir())
    kept = []
    for finder in sys.meta_path:
        module = sys.modules.get(getattr(finder, "__module__", "") or "")
        mapping = getattr(module, "MAPPING", None)
        if (getattr(module, "__name__", "").startswith("__editable__")
                and isinstance(mapping, dict) and names & set(mapping)):
            continue
        kept.append(finder)
    sys.meta_path[:] = kept


def with_src(root: Path, paths: "list[Path]") -> "list[Path]":
    """``paths``, and the repository's ``src/`` after the root where the
    repository keeps its packages there (the src layout: ``src/pkg/__init__.py``)
    and the scenario names no folders of its own: a ``pip install -e .`` of
    such a project puts the working copy's ``src/`` on every interpreter's
    path, which would otherwise serve its code instead of the commit's."""
    src = root.resolve() / "src"
    if paths != [root.resolve()] or not src.is_dir():
        return paths
    if any((child / "__init__.py").is_file() for child in src.iterdir() if child.is_dir()):
        return [*paths, src]
    return paths


def _git_tops(path: str) -> "list[str]":
    """The git working trees ``path`` is in, innermost first (a submodule's,
    then its superproject's): each folder above it that holds ``.git``."""
    tops, folder = [], os.path.dirname(path)
    while True:
        if os.path.exists(os.path.join(folder, ".git")):
            tops.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            return tops
        folder = parent


def _ours_elsewhere(root: Path, full: str) -> str:
    """How the file ``full`` (outside the checkout) is the repository's:
    "copy" where a git working tree holds it at the path the checkout holds
    it too, "submodule" where it lies in a submodule whose folder the
    checkout has (empty: the lab's checkouts hold no submodules); "" else."""
    tops = _git_tops(full)
    for inner, top in zip([None, *tops], tops, strict=False):
        if (root / os.path.relpath(full, top)).is_file():
            return "copy"
        if inner is not None and (root / os.path.relpath(inner, top)).is_dir():
            return "submodule"
    return ""


# how a run that imported the repository's code from elsewhere ends its
# sentence (``ttfb init`` reads the first: the folder to add to the path)
EDITABLE_COPY = (", not from the commit's checkout (an editable install?): add the folder "
                 "that holds it to the scenario's pythonpath")
IN_SUBMODULE = (", not from the commit's checkout: it is in a git submodule, and the lab "
                "checks out no submodules (an editable install of the working copy's?)")


def imported_elsewhere(root: Path) -> "list[tuple[str, str, str]]":
    """Top-level modules the run imported from another working tree of the
    repository under test, outside the checkout and the interpreter's own
    folders (an editable install of the working copy, most often; an
    installed package of the same name from elsewhere is not one): (name,
    file, how: ``_ours_elsewhere``)."""
    import site

    root = root.resolve()
    folders = [str(root), sys.prefix, sys.base_prefix, sys.exec_prefix,
               str(Path(__file__).resolve().parent.parent), *site.getsitepackages(),
               site.getusersitepackages()]
    known = tuple({f + os.sep for folder in folders for f in (folder, os.path.realpath(folder))})
    found: list[tuple[str, str, str]] = []
    for name, module in list(sys.modules.items()):
        if "." in name:  # a submodule comes from where its top module does
            continue
        path = getattr(module, "__file__", None)
        if not path or not os.path.isabs(path) or path.startswith(known):
            continue
        full = os.path.realpath(path)
        how = "" if full.startswith(known) else _ours_elsewhere(root, full)
        if how:
            found.append((name, full, how))
    return sorted(found)


def package_module(script: Path) -> str:
    """The dotted name to run ``script`` by (``python -m pkg.train``) where it
    imports relatively (``from .model import Net``), which ``python
    script.py`` cannot; its top package's folder goes on ``sys.path``. ""
    for any other script."""
    try:
        source = script.read_text()
    except (OSError, ValueError):
        return ""
    # every run of a script passes here, after its ready stamp and before the
    # launcher's clock: in no component, but in each run's wall time. A
    # script with no ``from .`` (most) costs a search (argparse has loaded
    # ``re``), where importing ``ast`` and parsing nanoGPT's train.py took 6-7 ms
    if not re.search(r"\bfrom\s+\.", source):
        return ""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    if not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree)):
        return ""
    parts, folder = [script.stem], script.resolve().parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1:
        return ""  # in no package: it fails as ``python script.py`` would
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return ".".join(parts)


def run_entry(entry: str, config: dict, root: Path,  # type: ignore[type-arg]
              paths: "list[Path] | None" = None) -> None:
    sdk = _sdk()
    module_name, _, func_name = entry.partition(":")
    use_checkout(paths or [root])
    with sdk.phase("imports"):
        module = importlib.import_module(module_name)
    getattr(module, func_name or "main")(config)


def run_script(script: str, script_args: list[str], root: Path,
               paths: "list[Path] | None" = None) -> None:
    """Zero-code-change mode: hook torch, run the script to its first step.
    The script's folder and the repository root are importable, as when the
    user runs it from a checkout with the project on its path."""
    sdk = _sdk()
    from ttfb import launcher

    use_checkout(paths or [root], first=[Path(script).resolve().parent])
    components = launcher.run_script(script, script_args, package_module(Path(script)))
    for name, ms in components.items():
        sdk.mark(name, 0, int(ms * 1e6))


def _workflow(args: argparse.Namespace, rest: "list[str]", root: Path,
              paths: "list[Path]") -> None:
    if args.script:
        run_script(args.script, rest, root, paths)
    else:
        run_entry(args.entry, json.loads(args.config), root, paths)


def _workflow_error(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    """An error the workflow did not catch, printed as running it directly
    would print it: without the lab's frames (this harness, the launcher's
    import hooks, runpy's), which sat between every two of the script's."""
    import traceback

    ours = str(Path(__file__).resolve().parent) + os.sep

    def trim(error: traceback.TracebackException | None, seen: set[int]) -> None:
        if error is None or id(error) in seen:
            return
        seen.add(id(error))
        error.stack = traceback.StackSummary.from_list(
            [f for f in error.stack if not f.filename.startswith(ours)
             and f.filename != "<frozen runpy>"])
        for linked in (error.__cause__, error.__context__, *(error.exceptions or [])):
            trim(linked, seen)

    error = traceback.TracebackException(kind, value, tb)
    trim(error, set())
    sys.stderr.write("".join(error.format()))


def main(argv: list[str] | None = None) -> int:
    sys.excepthook = _workflow_error
    parser = argparse.ArgumentParser(prog="ttfb-harness")
    parser.add_argument("--entry", default="", help="module:function")
    parser.add_argument("--script", default="", help="an unmodified script (zero-code mode)")
    parser.add_argument("--config", default="{}", help="JSON config passed to the entry")
    parser.add_argument("--root", default=".", help="repository root")
    parser.add_argument("--profile", default="", help="write cProfile stats here")
    parser.add_argument("--path", action="append", default=[],
                        help="a repository folder to import from (repeatable)")
    args, rest = parser.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    sdk = _sdk()
    sdk._write(f"S\t{_READY_NS}\n")
    root = Path(args.root)
    paths = with_src(root, [(root / p).resolve() for p in args.path] or [root.resolve()])
    reads = watch_reads(root)
    if args.profile:  # a script's profile too: explanations work for both kinds
        import cProfile

        saved_stderr = _importtime_to(args.profile + ".imports")
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            _workflow(args, rest, root, paths)
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
            if saved_stderr is not None:
                os.dup2(saved_stderr, 2)
    else:
        _workflow(args, rest, root, paths)
    elsewhere = imported_elsewhere(root)
    if elsewhere:  # the commit's own code was not what ran: no measurement of it
        name, path, how = elsewhere[0]
        sys.stderr.write(f"ttfb-lab: the run imported the repository's {name!r} from {path}"
                         + (EDITABLE_COPY if how == "copy" else IN_SUBMODULE) + "\n")
        sys.stderr.flush()
        os._exit(1)
    sdk.report(modules=sorted(set(repo_modules(root)) | reads()), **_software_facts())
    sdk._write(f"E\t{time.monotonic_ns()}\n")
    sdk.flush()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: it is not part of TTFB and can hang on threads


if __name__ == "__main__":
    sys.exit(main())
