"""The decision folds compiled to C by mypyc, where they have been built.

The folds (``MODULES``: the detection and bisect folds, the detector and
its tests, a rebuild's loop) are Python, and run as Python wherever nothing
was built. ``build`` compiles them with mypyc (mypy's compiler, a dev
dependency; it needs a C compiler) into ``native_dir()``, with a manifest
of the sources they were compiled from. ``install``, called before any of
them is imported (``ttfb.stats`` and ``streams`` call it), puts a finder
ahead of the import path's that loads the compiled modules instead: only
while every source still hashes as the manifest says (an edited fold runs as
Python until it is built again, ``make native``), for the interpreter they
were built for, and not where ``TTFB_NATIVE=0``. Compiled, a lab's rebuild
folds 1.7 times as fast, its streams 1.3 times (``BENCHMARKS.md``); the
decisions are the same (``tests/unit/test_native.py``).

Standard library only on import: ``ttfb.stats`` is imported where a worker
starts, and a finder that fails leaves the Python modules in place.

    python -m ttfb.native build     # compile (make install and make native do)
    python -m ttfb.native status    # compiled, or Python and why
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

MODULES = (
    "ttfb.stats.remade",
    "ttfb.stats.comparisons",
    "ttfb.stats.detector",
    "streams.fold",
    "streams.rebuild",
    "streams.detection.compare",
    "streams.detection.confirm",
    "streams.detection.fold",
    "streams.detection.overrides",
    "streams.detection.policy",
    "streams.detection.recorded",
    "streams.detection.runs",
    "streams.detection.screen",
    "streams.detection.state",
    "streams.detection.verdicts",
    "streams.bisect.fold",
    "streams.bisect.policy",
    "streams.bisect.state",
    "streams.bisect.verdict",
)
GROUP = "ttfb_folds"  # mypyc's shared library: ``ttfb_folds__mypyc``
MANIFEST = "manifest.json"
ROOT = Path(__file__).resolve().parent.parent  # the folder that holds ttfb/ and streams/


def native_dir() -> Path:
    """Where ``build`` writes and ``install`` reads (``TTFB_NATIVE_DIR``)."""
    return Path(os.environ.get("TTFB_NATIVE_DIR") or ROOT / "build" / "native")


def source(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def source_hashes() -> dict[str, str]:
    return {m: hashlib.sha256(source(m).read_bytes()).hexdigest() for m in MODULES}


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules (and their shared library) in one folder."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        found = self.paths.get(fullname)
        if found is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(found))
        return importlib.util.spec_from_file_location(fullname, found, loader=loader)


_finder: _Finder | None = None
_looked = False
_why = "Python (the compiled folds not looked for: ttfb.native.install)"


def install() -> bool:
    """Load the compiled folds from now on, where they are built for these
    sources and this interpreter; whether they will be. Once per process."""
    global _finder, _looked, _why
    if _looked:
        return _finder is not None
    _looked = True
    try:
        paths, _why = _usable(native_dir())
    except (OSError, ValueError, KeyError, TypeError) as e:
        paths, _why = None, f"the compiled folds could not be read ({e})"
    if paths is not None:
        _finder = _Finder(paths)
        sys.meta_path.insert(0, _finder)
    return _finder is not None


def _usable(folder: Path) -> tuple[dict[str, Path] | None, str]:
    if os.environ.get("TTFB_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None, "Python (TTFB_NATIVE=0)"
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return None, "Python (not compiled: make native)"
    built = json.loads(manifest.read_text())
    if not built.get("compiled"):
        return None, f"Python (not compiled: {built.get('why', 'no reason given')})"
    if built.get("cache_tag") != sys.implementation.cache_tag:
        return None, f"Python (compiled for {built.get('cache_tag')}: make native)"
    if built.get("modules") != source_hashes():
        return None, "Python (sources changed since they were compiled: make native)"
    paths = {name: folder / file for name, file in built["files"].items()}
    if not all(p.is_file() for p in paths.values()):
        return None, "Python (compiled files missing: make native)"
    loaded = [m for m in paths if m in sys.modules]
    if loaded:  # too late: a Python module already in use stays in use
        return None, f"Python ({loaded[0]} was imported first)"
    return paths, f"compiled (mypyc, {len(MODULES)} modules)"


def active() -> bool:
    """Whether this process loads the compiled folds."""
    return _finder is not None


def describe() -> str:
    """How this process runs the folds: compiled, or Python and why."""
    return _why


def build(folder: Path | None = None) -> Path:
    """Compile ``MODULES`` into ``folder`` (``native_dir()``), replacing what
    was there only once the new build is whole; its manifest last. Raises
    what mypyc or the C compiler raised."""
    from mypyc.build import mypycify
    from setuptools import Distribution

    folder = folder or native_dir()
    hashes = source_hashes()
    with _staged(folder) as staging, tempfile.TemporaryDirectory(prefix="ttfb-native-") as work:
        here = os.getcwd()
        os.chdir(ROOT)  # mypyc names a module by its path from here
        try:
            extensions = mypycify([str(source(m).relative_to(ROOT)) for m in MODULES],
                                  opt_level="3", group_name=GROUP,
                                  target_dir=os.path.join(work, "c"))
            dist = Distribution({"name": "ttfb-native", "ext_modules": extensions})
            command = dist.get_command_obj("build_ext")
            command.build_lib = str(staging)
            command.build_temp = os.path.join(work, "o")
            dist.run_command("build_ext")
        finally:
            os.chdir(here)
        names = {m: f"{m.replace('.', '/')}{_suffix()}" for m in MODULES}
        names[f"{GROUP}__mypyc"] = f"{GROUP}__mypyc{_suffix()}"
        missing = [m for m, f in names.items() if not (staging / f).is_file()]
        if missing:
            raise RuntimeError(f"mypyc built no {missing[0]}")
        if source_hashes() != hashes:
            raise RuntimeError("the folds' sources changed while they were compiled")
        _write_manifest(staging, {"compiled": True, "cache_tag": sys.implementation.cache_tag,
                                  "modules": hashes, "files": names})
    return folder


def record_failure(why: str, folder: Path | None = None) -> None:
    """Say in the manifest that these sources could not be compiled (the
    folds run as Python; ``make`` does not try again until they change)."""
    with _staged(folder or native_dir()) as staging:
        _write_manifest(staging, {"compiled": False, "why": why,
                                  "cache_tag": sys.implementation.cache_tag,
                                  "modules": source_hashes()})


def _suffix() -> str:
    return importlib.machinery.EXTENSION_SUFFIXES[0]


def _write_manifest(folder: Path, content: dict[str, object]) -> None:
    (folder / MANIFEST).write_text(json.dumps(content, indent=1, sort_keys=True))


@contextlib.contextmanager
def _staged(folder: Path) -> Iterator[Path]:
    """A fresh folder beside ``folder`` that takes its place once the block
    ends without an error (the old one moved aside first: a process that
    loaded its files keeps them), and is removed otherwise."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".native-", dir=folder.parent))
    try:
        yield staging
        old = folder.with_name(f".{folder.name}-old-{os.getpid()}")
        if folder.exists():
            folder.rename(old)
        staging.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _failure(error: BaseException, said: str) -> str:
    """A build's failure in a sentence (the compiler's own output went to
    stderr as it ran)."""
    if isinstance(error, ImportError):
        return "mypyc is not installed: pip install mypy"
    cause: BaseException | None = error  # (setuptools raises its own error from the compiler's)
    while cause is not None and not isinstance(cause, subprocess.CalledProcessError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, subprocess.CalledProcessError):
        command = cause.cmd[0] if isinstance(cause.cmd, (list, tuple)) else str(cause.cmd)
        return f"the C compiler ({command}) exited with status {cause.returncode}"
    lines = [line.strip() for line in f"{said}\n{error}".splitlines()
             if line.strip() and not line.strip().isdigit()]
    return (lines[-1] if lines else type(error).__name__)[:300]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["sources"]:  # what a build reads (the Makefile's prerequisites)
        print(" ".join(str(source(m).relative_to(ROOT)) for m in MODULES), "ttfb/native.py")
        return 0
    if args == ["status"]:
        install()
        print(f"decision folds: {describe()}")
        return 0
    if args != ["build"]:
        print("usage: python -m ttfb.native build | status | sources", file=sys.stderr)
        return 2
    started = time.monotonic()
    said = io.StringIO()  # mypyc's own report (the compiler's goes to stderr as it runs)
    try:
        with contextlib.redirect_stdout(said):
            folder = build()
    except (Exception, SystemExit) as e:  # mypyc's and the compiler's errors: setuptools exits
        sys.stderr.write(said.getvalue())  # (mypyc's errors, if it found any)
        why = _failure(e, said.getvalue())
        record_failure(why)
        print(f"The decision folds were not compiled ({why}); they run as Python, about half "
              "as fast. A C compiler and Python's headers are needed.", file=sys.stderr)
        return 0
    print(f"compiled the decision folds ({len(MODULES)} modules) into {folder} "
          f"in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
