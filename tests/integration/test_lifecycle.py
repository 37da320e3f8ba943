"""Whatever ends a command of the lab, at whatever moment, start-up included,
no process of the lab is left behind, and an interrupted command says so and
exits non-zero."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import lab_processes, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    data, log = tmp_path / "data", tmp_path / "out.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env.update(TTFB_DATA_DIR=str(data), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "ttfb.cli", *args], env=env, cwd=ROOT,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    return proc, data, log


def when(moment: str, log: Path, proc: subprocess.Popen[bytes], data: Path) -> None:
    if moment == "start-up":
        time.sleep(0.5)  # imports, the demo repository
    elif moment == "broker spawned":  # between spawning Tansu and its port answering
        wait_until(lambda: (data / "logs" / "broker.log").exists() or proc.poll() is not None,
                   timeout=60, every=0.005)
    else:  # the lab is up and runs are under way
        wait_until(lambda: "lab up" in log.read_text() or proc.poll() is not None, timeout=90)
        time.sleep(2.0)


def send(proc: subprocess.Popen[bytes], how: str) -> None:
    if how == "TERM twice":
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
    else:
        proc.send_signal(getattr(signal, f"SIG{how}"))


# every signal at the moment races are likeliest (between spawning the broker
# and its port answering); at the other moments, the signals that differ there
CASES = [(how, "broker spawned") for how in ("TERM", "INT", "TERM twice", "KILL")] + \
    [("INT", "start-up"), ("TERM twice", "running"), ("KILL", "running")]


@pytest.mark.parametrize(("how", "moment"), CASES)
def test_ttfb_up_leaves_nothing_behind(tmp_path: Path, how: str, moment: str) -> None:
    proc, data, log = start(tmp_path, "up", "--headless", "--runs", "30", "--json")
    try:
        when(moment, log, proc, data)
        send(proc, how)
        code = proc.wait(60)
        wait_until(lambda: not lab_processes(data), timeout=20,
                   describe=lambda: (lab_processes(data), log.read_text()[-2000:]))
        if how != "KILL" and moment != "start-up":
            assert code in (130, 143), log.read_text()[-2000:]
            assert "interrupted" in log.read_text()
        # at start-up the signal may come before the interpreter has run any of
        # the lab's code: Python's own handling then ends it, non-zero
        assert code != 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in lab_processes(data):
            os.kill(pid, signal.SIGKILL)


ONE_OFF = {
    "bisect": ("bisect", "--scenario", "lm", "--good", "HEAD~3", "--bad", "HEAD",
               "--component", "imports"),
    "ab": ("ab", "--scenario", "lm", "--a", "HEAD~1", "--b", "HEAD", "--runs", "5"),
    "check": ("check", "--base", "HEAD~2", "--runs", "5"),
}
# Ctrl-C at start-up; TERM while the broker comes up; with runs under way,
# a double TERM (the second lands while the first is being handled) and KILL.
# SIGINT and SIGTERM share one handler (``ttfb.process.interrupt_on_signals``)
ONE_OFF_CASES = [("INT", "start-up"), ("TERM", "broker spawned"), ("TERM twice", "running"),
                 ("KILL", "running")]


@pytest.mark.parametrize("command", sorted(ONE_OFF))
@pytest.mark.parametrize(("how", "moment"), ONE_OFF_CASES)
def test_one_off_commands_leave_nothing_behind(tmp_path: Path, demo_repo: Path, command: str,
                                               how: str, moment: str) -> None:
    name, *rest = ONE_OFF[command]
    proc, data, log = start(tmp_path, name, "--repo", str(demo_repo), *rest)
    try:
        if moment == "running":
            wait_until(lambda: lab_processes(data) or proc.poll() is not None, timeout=60)
            time.sleep(4.0)
        else:
            when(moment, log, proc, data)
        send(proc, how)
        code = proc.wait(60)
        wait_until(lambda: not lab_processes(data), timeout=20,
                   describe=lambda: (lab_processes(data), log.read_text()[-2000:]))
        if how != "KILL" and moment != "start-up":
            assert code == (130 if how == "INT" else 143), log.read_text()[-2000:]
            assert "interrupted by SIG" in log.read_text()
        assert code != 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in lab_processes(data):
            os.kill(pid, signal.SIGKILL)


def test_an_interrupted_demo_repository_is_not_left_looking_complete(tmp_path: Path) -> None:
    """Interrupted after its 11th commit (as a signal would, by KeyboardInterrupt;
    a real signal cannot be timed into a write that takes a fraction of a
    second), the writer leaves neither the repository nor its partial copy."""
    probe = f"""
import agents.demo_history as history
written = []
original = history._commit
def commit(repo, subject, number):
    if len(written) == 11:
        raise KeyboardInterrupt
    written.append(subject)
    return original(repo, subject, number)
history._commit = commit
try:
    history.write_demo_repo({str(tmp_path / "repo")!r})
except KeyboardInterrupt:
    print("interrupted after", len(written))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.stdout.strip() == "interrupted after 11", result.stderr
    assert not (tmp_path / "repo").exists() and not list(tmp_path.glob(".repo.partial-*"))
    assert not (tmp_path / "manifest.json").exists()
    # and the next attempt writes it whole
    again, _, _ = start(tmp_path, "demo-repo", str(tmp_path / "repo"))
    assert again.wait(120) == 0
    count = subprocess.run(["git", "-C", str(tmp_path / "repo"), "rev-list", "--count", "HEAD"],
                           capture_output=True, text=True, check=True).stdout.strip()
    from agents.demo_history import _injected, _ordinary

    assert int(count) == 1 + len(_ordinary()) + len(_injected())  # the first commit too
