"""Child-process plumbing shared by the lab's launchers (standard library only)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


def _libc_prctl() -> Callable[..., Any] | None:
    if sys.platform != "linux":
        return None
    import ctypes

    return ctypes.CDLL("libc.so.6", use_errno=True).prctl


# resolved as this module loads, in the process that forks: ``die_with_parent``
# runs as a ``preexec_fn`` in a forked child of a process with threads, where an
# import or a ``dlopen`` may wait for a lock no thread is left to free (and
# hold the parent's ``Popen`` with it), and its time counts in the run's
# ``startup``; so the child only calls libc
_PRCTL = _libc_prctl()


def die_with_parent(sig: int, parent: int | None = None) -> None:
    """Linux: deliver ``sig`` to the calling process when its parent dies, even
    by SIGKILL (``prctl(PR_SET_PDEATHSIG)``); elsewhere nothing. For a child's
    ``preexec_fn`` (give ``parent``, the spawner's pid) or a process pool's
    initializer. A parent that died before the call leaves no one to signal
    the child: then the child takes ``sig`` at once."""
    if _PRCTL is not None:
        _PRCTL(1, sig)  # PR_SET_PDEATHSIG
        if parent is not None and os.getppid() != parent:
            os.kill(os.getpid(), sig)


# set by ``Lab.spawn`` in each child's environment: the lab process's pid
LAB_PID_ENV = "TTFB_LAB_PID"


def exit_with_lab(grace_s: float = 8.0) -> None:
    """In a child the lab spawned (``TTFB_LAB_PID`` set, and still its parent):
    once the lab process is gone, however it ended, this process is gone within
    ``grace_s``. The SIGTERM that ``die_with_parent`` delivers starts a clean
    shutdown; one stuck on the broker that died with the lab (a producer
    flushing to it, a consumer committing) ends here instead. Elsewhere (a
    worker or agent run on its own, in a cluster) nothing."""
    import threading
    import time

    lab = os.environ.get(LAB_PID_ENV, "")
    if not lab.isdigit() or os.getppid() != int(lab):
        return

    def watch() -> None:
        while os.getppid() == int(lab):
            time.sleep(0.25)
        time.sleep(grace_s)
        os._exit(143)

    threading.Thread(target=watch, name="exit-with-lab", daemon=True).start()


# signals received by this process, in order (names): set by ``stop_on_signals``
RECEIVED: list[str] = []


def interrupt_on_signals() -> None:
    """SIGTERM and SIGINT raise ``KeyboardInterrupt`` in the main thread and are
    recorded; a later one is only recorded (a raise in the middle of the clean
    up would cut it short; ``Lab.stop`` hurries on one). A raise can be lost
    (one that lands in an at-fork handler, say, is ignored by Python), so long
    waits also call ``raise_if_interrupted``."""
    import signal

    def interrupt(signum: int, _: object) -> None:
        RECEIVED.append(signal.Signals(signum).name)
        if len(RECEIVED) == 1:
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def ignore_further_signals() -> None:
    """Once an interrupted command has cleaned up: SIGTERM and SIGINT ignored
    from here to the exit. Python puts back the default handlers while it
    finalises, and one of those would end the process by the signal, not by
    the exit code the command chose."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a signal came whose raise was lost."""
    if RECEIVED:
        raise KeyboardInterrupt


def interrupted_by() -> str:
    return RECEIVED[0] if RECEIVED else "SIGINT"
