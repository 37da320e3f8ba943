"""The store's errors are sentences; its parameters carry any text."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from ttfb.settings import Settings
from ttfb.store import open_store


def test_parameters_with_tabs_newlines_backslashes_and_quotes(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path, _env_file=None))
    for text in ["a\tb", "new\nline", "back\\slash", "it's", "\t\\'\n"]:
        row = store.query("SELECT {s:String} AS s, {a:Array(String)} AS a",
                          {"s": text, "a": [text, "plain"]})[0]
        assert (row["s"], row["a"]) == (text, [text, "plain"])


def test_a_held_store_lock_ends_in_a_sentence(tmp_path: Path) -> None:
    from tests.integration.tinyrepo import make_repo

    make_repo(tmp_path / "repo", commits=1)
    open_store(Settings(data_dir=tmp_path, _env_file=None))  # create and migrate
    lock = os.open(tmp_path / "chdb.lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
        env.update(TTFB_DATA_DIR=str(tmp_path), TTFB_STORE_LOCK_TIMEOUT_S="1")
        result = subprocess.run(
            [sys.executable, "-m", "ttfb.cli", "check", "--repo", str(tmp_path / "repo"),
             "--base", "HEAD"], capture_output=True, text=True, timeout=60, env=env,
            cwd=Path(__file__).resolve().parents[2])
    finally:
        os.close(lock)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "ttfb check: the store is unavailable: chDB lock" in result.stderr
