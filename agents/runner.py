"""Run one workflow repetition in a fresh process and derive its TTFB components.

The child is ``python ttfb/harness.py`` (or another interpreter, for an A/B
arm). It reports phase marks over an inherited pipe; stdout and stderr are
drained by threads that keep only a tail, so a flooding workflow cannot block
or exhaust the agent. Hangs are killed at the timeout. Every way a run can go
wrong ends as a ``RunOutcome`` with ``status="failed"`` and a reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ttfb.events import COMPONENTS
from ttfb.process import die_with_parent

HARNESS = Path(__file__).resolve().parent.parent / "ttfb" / "harness.py"
TAIL_BYTES = 4000
MAX_OUTPUT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class RunSpec:
    root: Path
    entry: str = ""
    script: str = ""
    args: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 300.0
    profile_path: str = ""
    cpu_affinity: tuple[int, ...] = ()
    workdir: str = ""  # relative to root
    pythonpath: tuple[str, ...] = (".",)  # relative to root, first on sys.path
    links: tuple[tuple[str, str], ...] = ()  # (path relative to root, absolute target)


@dataclass
class RunOutcome:
    status: str
    components: dict[str, float] = field(default_factory=dict)
    phases: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    exit_code: int | None = None
    stderr_tail: str = ""
    wall_ms: float = 0.0

    @property
    def ttfb_ms(self) -> float:
        return sum(self.components.values())


class _Drain(threading.Thread):
    """Read a stream to EOF keeping the last bytes and a byte count."""

    def __init__(self, stream: BinaryIO, limit: int = MAX_OUTPUT_BYTES) -> None:
        super().__init__(daemon=True)
        self.stream, self.limit = stream, limit
        self.tail = b""
        self.total = 0
        self.flooded = threading.Event()

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := self.stream.read1(65536):  # type: ignore[attr-defined]
                self.total += len(chunk)
                self.tail = (self.tail + chunk)[-TAIL_BYTES:]
                if self.total > self.limit:
                    self.flooded.set()


class _Marks(threading.Thread):
    """Collect SDK lines from the report pipe."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.buffer = bytearray()

    def run(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(self.fd, 65536):
                self.buffer.extend(chunk)
                if len(self.buffer) > MAX_OUTPUT_BYTES:
                    break
        with contextlib.suppress(OSError):
            os.close(self.fd)


def command_for(spec: RunSpec) -> list[str]:
    cmd = [spec.python, str(HARNESS), "--root", str(Path(spec.root).resolve())]
    for folder in spec.pythonpath:
        cmd += ["--path", folder]
    if spec.entry:
        cmd += ["--entry", spec.entry, "--config", json.dumps(spec.config)]
    else:
        script = Path(spec.script)
        cmd += ["--script", str(script if script.is_absolute()
                                else (Path(spec.root) / script).resolve())]
    if spec.profile_path:
        cmd += ["--profile", spec.profile_path]
    if spec.script:
        cmd += ["--", *spec.args]
    return cmd


# what every run has unless the scenario or the agent's environment says
# otherwise: reproducible hashing, one intra-op thread (runs beside each other
# on a host do not fight over its cores)
RUN_DEFAULTS = {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}


def run_env(scenario_env: dict[str, str], base: dict[str, str]) -> dict[str, str]:
    """A run's environment from the agent's (``base``) and the scenario's
    (an A/B arm's included)."""
    env = {k: v for k, v in base.items() if not k.startswith("TTFB_")}
    env.update(scenario_env)
    for key, value in RUN_DEFAULTS.items():
        env.setdefault(key, value)
    return env


# compilers' caches each run starts without (a folder of its own, removed after
# it), as a job on a fresh host does: a torch.compile run that found the graph
# its warm-up run compiled took 5.5 s where the job takes 15. A team whose jobs
# share a warm cache sets these in the scenario's env (or the agent's), and
# its runs use that one
COLD_CACHES = {"TORCHINDUCTOR_CACHE_DIR": "inductor", "TRITON_CACHE_DIR": "triton"}


# in a scenario's env value, the run's own empty folder (removed after it):
# HF_DATASETS_CACHE = "{run_tmp}/datasets" makes every run convert and map
# its dataset afresh, as a job on a fresh host does
RUN_TMP = "{run_tmp}"


def child_env(spec: RunSpec, fd: int, caches: str) -> dict[str, str]:
    """The run's environment; ``caches`` is the run's own folder (removed after it)."""
    env = run_env(spec.env, dict(os.environ))
    for key, folder in COLD_CACHES.items():
        env.setdefault(key, os.path.join(caches, folder))
    for key, value in spec.env.items():  # the scenario's win: env's too
        if RUN_TMP in value:
            env[key] = value.replace(RUN_TMP, os.path.join(caches, "run"))
    env["TTFB_SDK_FD"] = str(fd)
    if spec.script:  # zero-code mode stops a script with no recognisable step, and says so
        env["TTFB_STEP_LIMIT_S"] = str(max(1.0, spec.timeout_s - 5.0))
    return env


def run_once(spec: RunSpec, requested_ns: int | None = None) -> RunOutcome:
    """Run one repetition; never raises for a misbehaving workflow."""
    requested_ns = requested_ns or time.monotonic_ns()
    read_fd, write_fd = os.pipe()
    marks = _Marks(read_fd)
    marks.start()

    agent = os.getpid()

    def pin() -> None:
        # a workflow dies with the thread that runs it (its agent's), even by
        # kill -9: nothing would enforce its timeout once the agent is gone
        die_with_parent(signal.SIGKILL, agent)
        if spec.cpu_affinity and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, spec.cpu_affinity)

    caches = tempfile.mkdtemp(prefix="ttfb-caches-")
    try:
        return _run(spec, requested_ns, write_fd, marks, pin, caches)
    finally:
        shutil.rmtree(caches, ignore_errors=True)


def place_links(spec: RunSpec) -> str:
    """Each of ``spec.links`` the checkout lacks, as a symbolic link to its
    target; a path the commit has is left as it is, and a link to another
    absolute path (another scenario's, in a worktree both use) is replaced.
    "" or why a link could not be placed."""
    for rel, target in spec.links:
        path = Path(spec.root) / rel
        if path.is_symlink():
            current = os.readlink(path)
            if current != target and current.startswith("/"):
                path.unlink()
        if os.path.lexists(path):
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)
        except OSError as exc:
            return f"could not link {rel} in the checkout to {target}: {exc}"
    return ""


def _run(spec: RunSpec, requested_ns: int, write_fd: int, marks: _Marks,
         pin: Callable[[], None], caches: str) -> RunOutcome:
    unlinked = place_links(spec)
    if unlinked:
        os.close(write_fd)
        return RunOutcome("failed", reason=unlinked)
    spawned_ns = time.monotonic_ns()
    try:
        proc = subprocess.Popen(
            command_for(spec), cwd=(Path(spec.root) / spec.workdir).resolve(),
            env=child_env(spec, write_fd, caches),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(write_fd,), start_new_session=True, preexec_fn=pin,  # noqa: PLW1509
        )
    except OSError as exc:
        os.close(write_fd)
        return RunOutcome("failed", reason=f"could not start {spec.python}: {exc}")
    finally:
        with contextlib.suppress(OSError):
            os.close(write_fd)
    out, err = _Drain(proc.stdout), _Drain(proc.stderr)  # type: ignore[arg-type]
    out.start()
    err.start()
    reason = _wait(proc, spec.timeout_s, out, err)
    marks.join(2.0)
    out.join(2.0)
    err.join(2.0)
    wall_ms = (time.monotonic_ns() - spawned_ns) / 1e6
    tail = err.tail.decode(errors="replace")
    if reason:
        return RunOutcome("failed", reason=reason, exit_code=proc.returncode,
                          stderr_tail=tail, wall_ms=wall_ms)
    if proc.returncode != 0:
        return RunOutcome("failed", reason=f"workflow exited with code {proc.returncode}",
                          exit_code=proc.returncode, stderr_tail=tail, wall_ms=wall_ms)
    outcome = parse_marks(bytes(marks.buffer), requested_ns, spawned_ns)
    outcome.exit_code, outcome.stderr_tail, outcome.wall_ms = 0, tail, wall_ms
    return outcome


def _wait(proc: subprocess.Popen[bytes], timeout: float, *drains: _Drain) -> str:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if any(d.flooded.is_set() for d in drains):
            _kill(proc)
            return f"workflow flooded its output (> {MAX_OUTPUT_BYTES // 2**20} MiB)"
        if time.monotonic() > deadline:
            _kill(proc)
            return f"workflow hung: killed after the {timeout:.0f}s timeout"
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)
    return ""


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def parse_marks(raw: bytes, requested_ns: int, spawned_ns: int) -> RunOutcome:  # noqa: C901
    """Turn the SDK's lines into components; malformed reports fail the run."""
    durations: dict[str, float] = {}
    phases: list[str] = []
    facts: dict[str, Any] = {}
    ready_ns = end_ns = None
    try:
        for line in raw.decode().splitlines():
            kind, _, rest = line.partition("\t")
            if kind == "S":
                ready_ns = int(rest)
            elif kind == "E":
                end_ns = int(rest)
            elif kind == "M":
                name, start, stop = rest.split("\t")
                if int(stop) < int(start):
                    raise ValueError(f"phase {name} ends before it starts")
                durations[name] = durations.get(name, 0.0) + (int(stop) - int(start)) / 1e6
                if name not in phases:
                    phases.append(name)
            elif kind == "R":
                facts.update(json.loads(rest))
            elif kind == "F":
                int(rest)
            else:
                raise ValueError(f"unknown report line {line[:80]!r}")
    except (ValueError, UnicodeDecodeError) as exc:
        return RunOutcome("failed", reason=f"malformed report from workflow: {exc}")
    if ready_ns is None or end_ns is None:
        return RunOutcome("failed", reason="workflow exited without reporting completion")
    durations["queue"] = max(spawned_ns - requested_ns, 0) / 1e6
    durations["startup"] = (ready_ns - spawned_ns) / 1e6
    missing = [c for c in COMPONENTS if c not in durations]
    if missing:
        return RunOutcome("failed", reason=f"workflow reported no {', '.join(missing)} phase",
                          phases=phases, facts=facts)
    components = {c: round(durations[c], 6) for c in COMPONENTS}
    if any(v < 0 for v in components.values()):
        return RunOutcome("failed", reason=f"negative timing in {components}")
    modules = [str(m) for m in facts.pop("modules", [])]
    return RunOutcome("completed", components=components, phases=phases, modules=modules,
                      facts=facts)
