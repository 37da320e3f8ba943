"""Summarise a profiled run, for explaining a regression: cProfile's
cumulative time per function, ``-X importtime``'s per module, and which of
them belong to the repository and to what the run's commit changed (the
functions its changed lines fall in, the modules of its changed files)."""

from __future__ import annotations

import ast
import contextlib
import pstats
from pathlib import Path
from typing import Any

from agents.workspace import docstring
from ttfb.launcher import IMPORTTIME_MARK

# the lab's own package: its harness and launcher wrap every workflow, so
# their frames hold the workflow's time again and would explain nothing
LAB_CODE = str(Path(__file__).resolve().parent.parent / "ttfb") + "/"
# how the harness runs a script (``runpy.run_path``): its frames hold the
# whole run, on both sides, and say nothing of what grew
RUNPY = "<frozen runpy>"


def _relative(filename: str, root: Path | None) -> str:
    """``filename`` relative to ``root`` (POSIX), or "" outside it."""
    if root is None or not filename or filename.startswith("<"):
        return ""
    try:
        rel = Path(filename).resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return ""
    return "" if "site-packages" in rel.parts else rel.as_posix()


def summarise_profile(path: Path, top: int = 40, root: Path | None = None,
                      touched: frozenset[tuple[str, int, str]] = frozenset()) -> dict[str, Any]:
    """Cumulative time per function (ms) of a cProfile dump, the heaviest
    first: the ``top`` heaviest of all, and the ``top`` heaviest of the
    repository's own (under ``root``; listed under ``repository``), which are
    listed again under ``changed`` when they are one of ``touched`` (path
    relative to ``root``, first line, name)."""
    stats = pstats.Stats(str(path))
    rows: list[tuple[str, float, tuple[str, int, str]]] = []
    for (filename, line, name), (_, _, _, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        if filename.startswith(LAB_CODE) or filename == RUNPY:
            continue
        rows.append((f"{Path(filename).name}:{line}:{name}", cumtime * 1000.0,
                     (_relative(filename, root), line, name)))
    rows.sort(key=lambda r: -r[1])
    ours = [r for r in rows if r[2][0]][:top]
    kept = dict((k, ms) for k, ms, _ in rows[:top]) | {k: ms for k, ms, _ in ours}
    out: dict[str, Any] = {"cumulative_ms": dict(sorted(kept.items(), key=lambda kv: -kv[1]))}
    if root is not None:
        out["repository"] = [k for k, _, _ in ours]
        out["changed"] = [k for k, _, where in ours if where in touched]
    return out


def code_lines(root: Path, lines: dict[str, set[int]]) -> dict[str, set[int]]:
    """``lines`` less those of Python files that are blank, only a comment or
    in a docstring in the new version: a change there changes no code (as
    ``agents.workspace.changes_code`` judges a commit; a file left with none
    is left out)."""
    out = {}
    for rel, changed in lines.items():
        if rel.endswith(".py"):
            try:
                source = (root / rel).read_text()
            except (OSError, ValueError):
                source = ""
            text = source.splitlines()
            prose: set[int] = set()
            with contextlib.suppress(SyntaxError, ValueError):
                for node in ast.walk(ast.parse(source)):
                    doc = docstring(node)
                    if doc is not None:
                        prose.update(range(doc.lineno, (doc.end_lineno or doc.lineno) + 1))
            changed = {n for n in changed if not 0 < n <= len(text) or n not in prose
                       and text[n - 1].strip() and not text[n - 1].lstrip().startswith("#")}
        if changed:
            out[rel] = changed
    return out


def touched_functions(root: Path, lines: dict[str, set[int]]) -> frozenset[tuple[str, int, str]]:
    """The functions (path, first line as a profile names it, name) whose
    code the changed ``lines`` of each Python file fall in, the innermost;
    a changed line outside every function touches the module's own code
    (``<module>``, line 1)."""
    out: set[tuple[str, int, str]] = set()
    for rel, changed in lines.items():
        if not rel.endswith(".py") or not changed:
            continue
        try:
            tree = ast.parse((root / rel).read_text())
        except (OSError, SyntaxError, ValueError):
            continue
        functions = [(min([n.lineno, *(d.lineno for d in n.decorator_list)]),
                      n.end_lineno or n.lineno, n.name) for n in ast.walk(tree)
                     if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        # a comprehension or a lambda is a code object of its own in a profile
        # (``data.py:35:<listcomp>``): a changed line in one touches it too
        inline = [(n.lineno, n.end_lineno or n.lineno, INLINE[type(n)]) for n in ast.walk(tree)
                  if isinstance(n, ast.expr) and type(n) in INLINE]
        for line in changed:
            inside = [f for f in functions if f[0] <= line <= f[1]]
            first, _, name = max(inside) if inside else (1, 0, "<module>")
            out.add((rel, first, name))
            within = [f for f in inline if f[0] <= line <= f[1]]
            if within:
                first, _, name = max(within)
                out.add((rel, first, name))
    return frozenset(out)


# the names a profile gives the code objects of these expressions
INLINE: dict[type, str] = {ast.ListComp: "<listcomp>", ast.SetComp: "<setcomp>",
                           ast.DictComp: "<dictcomp>", ast.GeneratorExp: "<genexpr>",
                           ast.Lambda: "<lambda>"}


def _imported(path: Path) -> list[tuple[str, float, bool]]:
    """(module, cumulative ms, outermost) per line of ``python -X importtime``
    output, each reading ``import time: self [us] | cumulative | <indent>module``
    (an outermost import is not indented: code, not another import, ran it).
    Where the launcher marked them (``ttfb.launcher.IMPORTTIME_MARK``), only
    the imports the run's ``imports`` time holds: not those inside model
    construction (an optimizer's lazy import of its compiler is model time)
    nor after the step began."""
    out = []
    in_model = stepped = False
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(IMPORTTIME_MARK):
            what = line[len(IMPORTTIME_MARK):].strip()
            stepped = stepped or what == "step begins"
            in_model = what == "model begins"
            continue
        if not line.startswith("import time:") or in_model or stepped:
            continue
        fields = line[len("import time:"):].split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue  # the header line
        out.append((fields[2].strip(), int(fields[1]) / 1000.0,
                    not fields[2].startswith("  ")))
    return out


def import_times(path: Path) -> dict[str, float]:
    """Cumulative import time per module (ms) from ``python -X importtime``
    output (``_imported``); a module imported twice keeps its first (real)
    import."""
    return _first_times(_imported(path))


def _first_times(imported: list[tuple[str, float, bool]]) -> dict[str, float]:
    cumulative: dict[str, float] = {}
    for name, ms, _ in imported:
        cumulative.setdefault(name, ms)
    return cumulative


def heaviest(cumulative: dict[str, float], top: int = 2000,
             min_ms: float = 0.5) -> dict[str, float]:
    """Every module that costs something, the heaviest first: a module missing
    on one side reads as 0 ms."""
    return dict(sorted(((k, v) for k, v in cumulative.items() if v >= min_ms),
                       key=lambda kv: -kv[1])[:top])


def summarise_imports(path: Path, top: int = 2000, min_ms: float = 0.5) -> dict[str, float]:
    """The heaviest modules' cumulative import times (ms) of an ``-X importtime`` log."""
    return heaviest(import_times(path), top, min_ms)


def module_files(module: str, files: list[str]) -> list[str]:
    """The repository files (relative paths) that module ``module`` may be:
    ``pkg/mod.py`` or ``pkg/mod/__init__.py`` is ``pkg.mod``, or ``mod`` when
    ``pkg`` is on the path."""
    out = []
    for f in files:
        if not f.endswith(".py"):
            continue
        dotted = f[:-3].replace("/", ".").removesuffix(".__init__")
        if dotted == module or dotted.endswith("." + module):
            out.append(f)
    return out


CHANGED_FILES = 50  # of a profile's changed files, at most (the first by name)


def summarise(path: Path, root: Path | None, changed: dict[str, set[int]],
              modules: list[str], script: str = "") -> dict[str, Any]:
    """A profiled run's summary: functions (``cumulative_ms``), imports
    (``imports_ms``, when ``-X importtime`` wrote them), and the names of
    either that are the repository's (``repository``; ``modules`` are the
    repository files the run imported) and that the commit changed
    (``changed``: the functions its changed lines fall in, the modules of
    the files it changed; ``changed`` maps each file to those lines, of which
    blank, comment and docstring lines count for nothing), and the files
    the commit changed that the run imported or read (``changed_files``:
    a config the workflow executes, or a data file, has no frame of its own).
    ``script``: a script scenario's script (relative to ``root``), whose
    imports get an entry of their own, ``<script> (its imports)``."""
    if root is not None:
        changed = code_lines(root, changed)
    touched = touched_functions(root, changed) if root is not None else frozenset()
    profile = summarise_profile(path, root=root, touched=touched)
    if root is not None:
        profile["changed_files"] = sorted(set(changed).intersection(modules))[:CHANGED_FILES]
    imports = Path(str(path) + ".imports")
    if imports.exists():
        imported = _imported(imports)
        every = _first_times(imported)
        profile["imports_ms"] = heaviest(every)
        if script and root is not None:
            # a script runs as __main__, imported by nobody: what its run
            # paid in imports (its outermost imports) stands for it where
            # the commit changed the script (an eager import added at its
            # top); otherwise the modules it imports say what grew, and it
            # is one more entry
            own = f"{script} (its imports)"
            profile["imports_ms"][own] = round(sum(ms for _, ms, outermost in imported
                                                   if outermost), 3)
            if script in changed:
                profile["changed"].append(own)
        # marked whatever they cost: a module a change made cheap is what it changed
        for name in every:
            files = module_files(name, modules)
            if files and root is not None:
                profile["repository"].append(name)
                if set(changed).intersection(files):
                    profile["changed"].append(name)
    return profile
