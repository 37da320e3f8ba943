"""Child-process plumbing shared by the lab's launchers (standard library only)."""

from __future__ import annotations

import sys


def die_with_parent(sig: int, parent: int | None = None) -> None:
    """Linux: deliver ``sig`` to the calling process when its parent dies, even
    by SIGKILL (``prctl(PR_SET_PDEATHSIG)``); elsewhere nothing. For a child's
    ``preexec_fn`` (give ``parent``, the spawner's pid) or a process pool's
    initializer. A parent that died before the call leaves no one to signal
    the child: then the child takes ``sig`` at once."""
    if sys.platform == "linux":
        import ctypes
        import os

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
        if parent is not None and os.getppid() != parent:
            os.kill(os.getpid(), sig)


# signals received by this process, in order (names): set by ``stop_on_signals``
RECEIVED: list[str] = []


def interrupt_on_signals() -> None:
    """SIGTERM and SIGINT raise ``KeyboardInterrupt`` in the main thread and are
    recorded. A raise can be lost (one that lands in an at-fork handler, say, is
    ignored by Python), so long waits also call ``raise_if_interrupted``."""
    import signal

    def interrupt(signum: int, _: object) -> None:
        RECEIVED.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a signal came whose raise was lost."""
    if RECEIVED:
        raise KeyboardInterrupt


def interrupted_by() -> str:
    return RECEIVED[0] if RECEIVED else "SIGINT"
