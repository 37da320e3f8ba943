"""Explaining a regression: import times and profiles of one good and one bad run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agents.explain import summarise_imports
from streams.bisect import Bisect, grown
from streams.bisect.state import record
from ttfb import events as ev


def importtime(tmp_path: Path, code: str) -> Path:
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], check=True,
                         capture_output=True, text=True).stderr
    out = tmp_path / "imports.txt"
    out.write_text(err)
    return out


def test_import_times_are_read_from_a_real_importtime_log(tmp_path: Path) -> None:
    good = summarise_imports(importtime(tmp_path, "import json"))
    bad = summarise_imports(importtime(tmp_path, "import json, email.mime.text"))
    assert "json" in good and "email.mime.text" not in good
    # a package's cumulative time includes the modules it imports
    assert bad["email.mime.text"] >= bad.get("email.mime.base", 0.0) > 0
    grew = [g["name"] for g in grown(good, bad, top=5)]
    assert grew[0] == "email.mime.text"


def test_an_imports_bisect_explains_with_modules_other_components_with_functions() -> None:
    profile = {"cumulative_ms": {"train.py:10:main": 900.0},
               "imports_ms": {"scipy.interpolate": 640.0}}
    for component, expected in (("imports", {"scipy.interpolate": 640.0}),
                                ("config", {"train.py:10:main": 900.0})):
        b = Bisect(bisect_id="b", detection_id="d", scenario="vision", component=component,
                   repo="demo", branch="main", good="g", bad="k")
        record(b, ev.RunCompleted(repo="demo", scenario="vision", commit="k", purpose="explain",
                                   ttfb_ms=1.0, components={"imports": 1.0},
                                   profile=profile))
        assert b.profiles["k"] == expected
