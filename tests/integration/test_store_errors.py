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


def test_every_query_reads_the_configured_database(tmp_path: Path) -> None:
    """A lab on a shared server keeps to its own database: with one named
    otherwise, no query may reach for ``ttfb.``, which does not exist here."""
    import inspect
    from datetime import UTC, datetime

    from ttfb import events as ev
    from ttfb.store import queries

    store = open_store(Settings(data_dir=tmp_path, clickhouse_database="labdb",
                                _env_file=None))
    run = ev.RunCompleted(scenario="s", commit="c", repo="r", ttfb_ms=3.0,
                          components={"imports": 3.0})
    assert store.write([run, ev.CommitPlanned(repo="r", branch="main", commit="c")]) == 2
    assert "labdb" in {r["name"] for r in store.query("SHOW DATABASES")}
    assert "ttfb" not in {r["name"] for r in store.query("SHOW DATABASES")}
    samples = {str: "s", int: 1, list: ["s"], "list[str]": ["s"], "Any": datetime.now(UTC)}
    called = 0
    for name, function in inspect.getmembers(queries, inspect.isfunction):
        if function.__module__ != queries.__name__:
            continue
        arguments = []
        for parameter in list(inspect.signature(function).parameters.values())[1:]:
            if parameter.default is not inspect.Parameter.empty:
                continue
            kind = parameter.annotation
            arguments.append(samples.get(kind, samples.get(str(kind), "s")))
        function(store, *arguments)  # raises if it names another database
        called += 1
    assert called >= 20


def _lock_is_free(path: Path) -> bool:
    from ttfb.store.backends import is_locked

    return not is_locked(path)


def test_a_held_session_serves_the_batches_that_follow_then_lets_the_lock_go(
        tmp_path: Path) -> None:
    """The sink's store keeps its session ``hold_s`` after opening it: the
    batches in that time share it (one session, not one each), other
    processes wait at most that long, and a store that does not hold gives
    the lock back after every call."""
    import time

    settings = Settings(data_dir=tmp_path, _env_file=None)
    open_store(settings)  # created and migrated, its lock given back
    held = open_store(settings, migrate=False, hold_s=2.0)
    for _ in range(3):
        assert held.query("SELECT 1 AS x") == [{"x": 1}]
    assert held.backend.sessions == 1  # type: ignore[attr-defined]
    assert not _lock_is_free(settings.chdb_path.parent / "chdb.lock")
    deadline = time.monotonic() + 10
    while not _lock_is_free(settings.chdb_path.parent / "chdb.lock"):
        assert time.monotonic() < deadline, "the held session never let the lock go"
        time.sleep(0.05)
    assert held.query("SELECT 2 AS x") == [{"x": 2}]  # a new session
    held.close()
    assert _lock_is_free(settings.chdb_path.parent / "chdb.lock")
    plain = open_store(settings)
    before = plain.backend.sessions  # type: ignore[attr-defined]
    for _ in range(2):
        plain.query("SELECT 1 AS x")
        assert _lock_is_free(settings.chdb_path.parent / "chdb.lock")
    assert plain.backend.sessions == before + 2  # type: ignore[attr-defined]


def test_a_session_closed_early_leaves_the_next_one_its_whole_hold(tmp_path: Path) -> None:
    """A held session closed at once (``close``) still has its timer running:
    that timer must not end the session opened after it."""
    import time

    settings = Settings(data_dir=tmp_path, _env_file=None)
    open_store(settings)
    lock = settings.chdb_path.parent / "chdb.lock"
    held = open_store(settings, migrate=False, hold_s=1.5)
    held.query("SELECT 1 AS x")
    first = time.monotonic()
    held.close()  # the first session's timer fires 1.5 s after ``first``
    time.sleep(0.8)
    held.query("SELECT 2 AS x")  # the second's, 1.5 s after now
    second = time.monotonic()
    time.sleep(max(0.0, first + 1.9 - time.monotonic()))
    if time.monotonic() < second + 1.4:  # past the first timer, short of the second's
        assert not _lock_is_free(lock), "the first session's timer closed the second"
    assert held.backend.sessions == 2  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while not _lock_is_free(lock):
        assert time.monotonic() < deadline, "the second session never let the lock go"
        time.sleep(0.05)


WRITER = r"""
import sys, time
from ttfb.settings import Settings
from ttfb.store import open_store
held = open_store(Settings(data_dir=sys.argv[1], _env_file=None), migrate=False, hold_s=0.3)
deadline = time.monotonic() + float(sys.argv[2])
print("writing", flush=True)
while time.monotonic() < deadline:  # a call as soon as the last is done: a burst
    held.query("SELECT count() AS n FROM ttfb.runs")
held.close()
print("done", flush=True)
"""


def test_a_reader_gets_its_turn_while_a_held_writer_writes_without_a_pause(
        tmp_path: Path) -> None:
    """A writer that holds its session and reopens it at once (the sink in a
    burst) lets a process that waits for the lock go first: each read comes
    within about a hold, not at the burst's end."""
    import time

    settings = Settings(data_dir=tmp_path, _env_file=None)
    reader = open_store(settings)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "12"],
                              stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
        time.sleep(1.0)
        waits = []
        for _ in range(4):
            started = time.monotonic()
            reader.query("SELECT count() AS n FROM ttfb.runs")
            waits.append(time.monotonic() - started)
            time.sleep(0.2)
        assert writer.poll() is None, "the writer stopped before the reads were done"
        assert max(waits) < 4.0, waits  # the burst lasts 12 s
    finally:
        writer.kill()
        writer.wait(10)


def test_a_held_session_gives_the_lock_up_at_once_to_a_process_that_waits(
        tmp_path: Path) -> None:
    """A session held for far longer than anyone should wait ends between two
    calls once another reader waits for the lock; the holder's next call
    opens a new one."""
    import time

    settings = Settings(data_dir=tmp_path, _env_file=None)
    open_store(settings)
    held = open_store(settings, migrate=False, hold_s=30.0)
    held.query("SELECT 1 AS x")
    assert not _lock_is_free(settings.chdb_path.parent / "chdb.lock")
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom ttfb.settings import Settings\n"
         "from ttfb.store import open_store\n"
         "s = open_store(Settings(data_dir=sys.argv[1], _env_file=None), migrate=False)\n"
         "print(s.query('SELECT 7 AS x')[0]['x'])", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    waited = time.monotonic() - started
    assert out.stdout.strip() == "7", out.stderr
    assert waited < 10.0, waited  # a process start and a session, not the 30 s hold
    assert held.query("SELECT 2 AS x") == [{"x": 2}]
    assert held.backend.sessions == 2  # type: ignore[attr-defined]
    held.close()
