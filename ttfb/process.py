"""Child-process plumbing shared by the lab's launchers (standard library only)."""

from __future__ import annotations

import sys


def die_with_parent(sig: int) -> None:
    """Linux: deliver ``sig`` to the calling process when its parent dies, even
    by SIGKILL (``prctl(PR_SET_PDEATHSIG)``); elsewhere nothing. For a child's
    ``preexec_fn`` or a process pool's initializer."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
