"""SDK overhead per mark: a phase() block reported over a real pipe.

Prints the cost per mark with an agent listening (pipe drained by a thread)
and with no agent (no-op), side by side in one run. Target: < 5 µs per mark.

    .venv/bin/python bench/sdk.py
"""

from __future__ import annotations

import importlib
import os
import threading
import time


def drain(fd: int) -> None:
    while os.read(fd, 1 << 16):
        pass


def per_mark_us(n: int) -> float:
    from ttfb import sdk

    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            with sdk.phase("config"):
                pass
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def main(n: int = 200_000) -> None:
    read_fd, write_fd = os.pipe()
    threading.Thread(target=drain, args=(read_fd,), daemon=True).start()
    os.environ["TTFB_SDK_FD"] = str(write_fd)
    import ttfb.sdk

    importlib.reload(ttfb.sdk)
    listening = per_mark_us(n)
    del os.environ["TTFB_SDK_FD"]
    importlib.reload(ttfb.sdk)
    idle = per_mark_us(n)
    print(f"phase() mark, agent listening : {listening:6.2f} µs/mark  (target < 5 µs)")
    print(f"phase() mark, no agent (no-op): {idle:6.2f} µs/mark")
    print(f"ratio listening / no-op        : {listening / idle:6.1f}x")
    print("PASS" if listening < 5.0 else "FAIL")


if __name__ == "__main__":
    main()
