"""A child of the lab ends when the lab ends, even when its own shutdown hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# a child that ignores SIGTERM (as a shutdown stuck on a dead broker would
# look from outside), started by a "lab" that prints its pid and then sleeps
CHILD = """
import signal, sys, time
from ttfb.process import exit_with_lab
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if sys.argv[1] == "watch":
    exit_with_lab(grace_s=0.5)
time.sleep(120)
"""
LAB = """
import os, subprocess, sys, time
from ttfb.process import LAB_PID_ENV
env = {**os.environ}
if sys.argv[2] == "spawned":
    env[LAB_PID_ENV] = str(os.getpid())
child = subprocess.Popen([sys.executable, "-c", sys.argv[3], sys.argv[1]], env=env,
                         start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""


def orphan(watch: str, spawned: str) -> int:
    """Start a lab and its child, SIGKILL the lab; the child's pid."""
    lab = subprocess.Popen([sys.executable, "-c", LAB, watch, spawned, CHILD], cwd=ROOT,
                           stdout=subprocess.PIPE, text=True)
    assert lab.stdout is not None
    pid = int(lab.stdout.readline())
    time.sleep(1.0)  # the child has started its watch
    lab.kill()
    lab.wait()
    return pid


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize(("watch", "spawned", "ends"), [
    ("watch", "spawned", True),      # the lab's child: gone though it ignored SIGTERM
    ("none", "spawned", False),      # without the watch it would have stayed
    ("watch", "standalone", False),  # a worker run on its own is not the lab's to end
])
def test_a_child_of_a_killed_lab_ends_within_its_grace(watch: str, spawned: str,
                                                       ends: bool) -> None:
    pid = orphan(watch, spawned)
    try:
        assert gone_within(pid, 3.0) is ends
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# an "agent" whose run's workflow writes its pid and sleeps; threads busy
# beside the run, as an agent's consumer, drains and executor are
AGENT = """
import sys, threading, time
from pathlib import Path
from agents.runner import RunSpec, run_once
root = Path(sys.argv[1])
(root / "flow.py").write_text(
    "import os, sys, time\\n"
    "open(sys.argv[1], 'w').write(str(os.getpid()))\\n"
    "time.sleep(120)\\n")
for _ in range(4):
    threading.Thread(target=lambda: [sum(range(1000)) for _ in iter(int, 1)], daemon=True).start()
run_once(RunSpec(root=root, script="flow.py", args=(str(root / "pid"),), timeout_s=120,
                 cpu_affinity=tuple(sorted(__import__("os").sched_getaffinity(0)))[:1]))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; prctl is Linux's")
def test_a_run_s_workflow_ends_with_its_agent_killed(tmp_path: Path) -> None:
    agent = subprocess.Popen([sys.executable, "-c", AGENT, str(tmp_path)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text():
            assert time.monotonic() < deadline and agent.poll() is None, "the run never started"
            time.sleep(0.05)
        pid = int((tmp_path / "pid").read_text())
        assert alive(pid)
    finally:
        agent.kill()
        agent.wait()
    try:
        assert gone_within(pid, 3.0)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
