"""What recording the files a run reads costs it: ``import torch`` in fresh
processes, with and without the harness's hook (``ttfb.harness.watch_reads``,
the ``open`` audit event), alternating, in one run; and the hook's cost per
audit event, against none, in one process.

    .venv/bin/python bench/reads.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT = """
import sys, time
sys.path.insert(0, {root!r})
if {hook}:
    from pathlib import Path
    from ttfb.harness import watch_reads
    watch_reads(Path.cwd())
start = time.perf_counter()
import torch  # noqa: F401
print((time.perf_counter() - start) * 1000)
"""


def import_ms(hook: bool) -> float:
    code = IMPORT.format(root=str(ROOT), hook=hook)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return float(out.stdout.split()[-1])


def per_event_ns(n: int = 1_000_000) -> tuple[float, float]:
    """ns per audited call (``sys._getframe`` raises an audit event) without a
    hook, then with the harness's (a hook cannot be removed: this goes last)."""
    def loop() -> float:
        start = time.perf_counter()
        for _ in range(n):
            sys._getframe()
        return (time.perf_counter() - start) / n * 1e9

    before = min(loop() for _ in range(3))
    from ttfb.harness import watch_reads

    watch_reads(ROOT)
    return before, min(loop() for _ in range(3))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    without, with_hook = [], []
    for _ in range(args.rounds):
        without.append(import_ms(False))
        with_hook.append(import_ms(True))
    a, b = statistics.median(without), statistics.median(with_hook)
    print(f"import torch, no hook      : median {a:7.1f} ms of {args.rounds}")
    print(f"import torch, reads watched: median {b:7.1f} ms of {args.rounds}")
    print(f"difference of the medians  : {b - a:+7.1f} ms ({(b - a) / a * 100:+.1f} %)")
    before, after = per_event_ns()
    print(f"per audit event            : {before:5.0f} ns without, {after:5.0f} ns with the hook"
          f" ({after - before:+.0f} ns)")


if __name__ == "__main__":
    main()
