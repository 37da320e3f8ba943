"""The decision folds compiled by mypyc (``ttfb.native``) decide as the
Python ones, and are loaded only where they were built from these sources."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_rebuild_records import live_log
from ttfb import events as ev
from ttfb import native

ROOT = Path(__file__).resolve().parents[2]

# folds the logs in a file (a lab's: changes found, confirmations answered)
# testing every commit, and once taking the tests' records; prints what they left
FOLD = """
import json, sys
from streams.bisect import BisectPolicy
from streams.checkpoint import rules_id
from streams.detection import Policy
from streams.detection.recorded import Records
from streams.rebuild import replay
from tests.unit.test_rebuild_records import outcome
from ttfb import events as ev, native
left = []
for lines in json.load(open(sys.argv[1])):
    log = [ev.decode(line.encode()) for line in lines]
    left.append(outcome(replay(log, Policy(), keep=None)))
    left.append(outcome(replay(log, Policy(), keep=None, records=Records())))
print(json.dumps({"how": native.describe(), "file": sys.modules["streams.fold"].__file__,
                  "left": left, "rules": rules_id(Policy(), BisectPolicy())}))
"""

WHICH = """
import json, sys
import streams.fold
from tests.unit.test_rebuild_records import live_log
from ttfb import events as ev
from ttfb import native
print(json.dumps({"how": native.describe(), "file": streams.fold.__file__}))
"""


def environment(**env: str) -> dict[str, str]:
    """This process's environment less the lab's settings, plus ``env``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}, **env}


def run(script: str, *args: str, **env: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT,
                          env=environment(**env),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def compiled_here() -> None:
    if not native.active():
        pytest.skip(f"the folds are not compiled here: {native.describe()}")


def test_the_compiled_folds_decide_as_the_python_ones(tmp_path: Path) -> None:
    compiled_here()
    logs = tmp_path / "logs.json"  # (a log's ids are random: one log for both)
    logs.write_text(json.dumps([[ev.encode(e).decode() for e in live_log(seed)]
                                for seed in (3, 4)]))
    fast, python = run(FOLD, str(logs)), run(FOLD, str(logs), TTFB_NATIVE="0")
    assert str(fast["file"]).endswith(native._suffix()), fast["how"]
    assert str(python["file"]).endswith(".py") and python["how"] == "Python (TTFB_NATIVE=0)"
    assert fast["left"] == python["left"]
    # the same rules: a checkpoint written by either is taken by the other
    assert fast["rules"] == python["rules"]
    outputs, states = python["left"][0]  # type: ignore[index]
    assert len(outputs) > 100 and states  # (a log that decided things)


def test_the_tests_that_patch_the_folds_pass_on_the_python_ones() -> None:
    compiled_here()  # (otherwise they ran in this process)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "python_folds", "-p", "no:xdist",
         "-p", "no:cacheprovider", "tests/unit"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env=environment(TTFB_NATIVE="0"))
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"^4 passed", done.stdout, re.M) and "skipped" not in done.stdout, \
        done.stdout[-500:]


def test_compiled_folds_are_loaded_only_for_the_sources_they_were_built_from(
        tmp_path: Path) -> None:
    compiled_here()
    built = tmp_path / "native"
    shutil.copytree(native.native_dir(), built)
    loaded = run(WHICH, TTFB_NATIVE_DIR=str(built))
    assert str(loaded["file"]).startswith(str(built)) and loaded["how"].startswith("compiled")  # type: ignore[union-attr]
    manifest = json.loads((built / native.MANIFEST).read_text())
    manifest["modules"]["streams.detection.screen"] = "0" * 64  # an edited fold
    (built / native.MANIFEST).write_text(json.dumps(manifest))
    edited = run(WHICH, TTFB_NATIVE_DIR=str(built))
    assert edited["file"] == str(ROOT / "streams" / "fold.py")
    assert "sources changed" in str(edited["how"])


@pytest.mark.parametrize("manifest, why", [
    (None, "not compiled: make native"),
    ({"compiled": False, "why": "error: command 'gcc' failed"},
     "not compiled: error: command 'gcc' failed"),
    ({"compiled": True, "cache_tag": "cpython-27", "modules": {}, "files": {}},
     "compiled for cpython-27: make native"),
])
def test_folds_not_compiled_for_this_lab_run_as_python_and_say_why(
        tmp_path: Path, manifest: dict[str, object] | None, why: str) -> None:
    if manifest is not None:
        (tmp_path / native.MANIFEST).write_text(json.dumps(manifest))
    loaded = run(WHICH, TTFB_NATIVE_DIR=str(tmp_path))
    assert loaded["file"] == str(ROOT / "streams" / "fold.py")
    assert loaded["how"] == f"Python ({why})"


def test_a_build_that_fails_says_why_and_leaves_the_folds_python(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TTFB_NATIVE_DIR", str(tmp_path / "native"))

    def failing(folder: Path | None = None) -> Path:
        print("screen.py:12: error: mypyc cannot compile this")
        raise SystemExit(1)

    monkeypatch.setattr(native, "build", failing)
    assert native.main(["build"]) == 0  # (``make install`` goes on)
    said = capsys.readouterr().err
    assert "were not compiled (screen.py:12: error: mypyc cannot compile this)" in said
    manifest = json.loads((tmp_path / "native" / native.MANIFEST).read_text())
    assert manifest["compiled"] is False and manifest["modules"] == native.source_hashes()
    assert [p.name for p in tmp_path.iterdir()] == ["native"]  # nothing half-written beside it
    loaded = run(WHICH, TTFB_NATIVE_DIR=str(tmp_path / "native"))
    assert loaded["how"] == "Python (not compiled: screen.py:12: error: mypyc cannot compile this)"


def test_the_folds_objects_survive_pickling_and_deep_copies() -> None:
    """What a worker sends to its calibration process (a policy) or copies
    deep (a state, a bisect book) is made again whole, compiled as Python."""
    import copy
    import pickle

    from streams.bisect import BisectBook, BisectPolicy
    from streams.detection import Confirmation, Policy, ScenarioState
    from ttfb.stats import ChangePoint, DetectorConfig, Point, SeriesState, compare

    change = ChangePoint(1, 1.0, "c1", "c0", "regression",
                         compare([1.0, 1.1, 1.2, 1.0], [2.0, 2.1, 2.2, 2.0]))
    series = SeriesState((Point(0.0, "c0", (1.0, 1.1)),), (Point(1.0, "c1", (2.0,)),), 2,
                         (change,))
    state = ScenarioState(series={"data|h|main": series}, confirming={"d": Confirmation(
        "d", "c1", "c0", {"data": "regression"}, "h", "main", 4)})
    for value in (Policy(), BisectPolicy(), DetectorConfig(alpha=0.01), change, series, state,
                  BisectBook()):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value


def test_a_calibration_is_answered_in_its_own_process() -> None:
    """The worker's calibration process takes the policy pickled (compiled
    or not) and answers with the operating point."""
    import asyncio

    import numpy as np

    from streams.decisions import _CalibrationPool
    from streams.detection import Policy, calibration_answer

    rng = np.random.default_rng(3)
    request = ev.CalibrationRequested(
        scenario="s", history=[list(1000 * np.exp(rng.normal(0, 0.03, 3))) for _ in range(16)],
        accepted=16, producer="test")
    pool = _CalibrationPool()
    try:
        answered = asyncio.run(pool.answer(request, Policy()))
    finally:
        pool.close()
    assert answered.accepted == 16 and answered.points
    here = calibration_answer(request, Policy())  # (deterministic: seeded by the history)
    assert (answered.chosen, answered.chosen_k) == (here.chosen, here.chosen_k)


def test_a_failed_build_is_told_in_a_sentence() -> None:
    compiler = subprocess.CalledProcessError(1, ["/usr/bin/gcc", "-O3", "x.c"])
    try:
        try:
            raise compiler
        except subprocess.CalledProcessError as e:
            raise RuntimeError(str(e)) from e  # (as setuptools raises it)
    except RuntimeError as raised:
        assert native._failure(raised, "") == \
            "the C compiler (/usr/bin/gcc) exited with status 1"
    assert native._failure(ModuleNotFoundError("No module named 'mypyc'"), "") == \
        "mypyc is not installed: pip install mypy"
