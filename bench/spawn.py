"""What the agent's own spawning adds to a run's ``startup``.

``startup`` runs from just before the agent spawns the workflow to the
harness's first stamp, so whatever the agent's ``preexec_fn`` does between
fork and exec is in it. Side by side in one run, alternating, on a trivial
workflow (four phases of 1 ms): the agent's ``preexec_fn`` as it is (libc's
``prctl`` resolved once in the agent), and one that imports ``ctypes`` and
loads libc in the forked child, as it used to. Two idle threads stand in
for the agent's.

    .venv/bin/python bench/spawn.py [--runs 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from agents import runner
from agents.runner import RunSpec, run_once
from ttfb.process import die_with_parent

FLOW = """import time
from ttfb.sdk import phase, first_batch


def main(config):
    for name in ("config", "data"):
        with phase(name):
            time.sleep(0.001)
    first_batch()
    for name in ("model", "first_step"):
        with phase(name):
            time.sleep(0.001)
"""


def importing(sig: int, parent: int | None = None) -> None:
    """The child's work before this build, where the agent had not imported
    ``ctypes``: its import and a dlopen after fork."""
    for name in [m for m in sys.modules if m == "ctypes" or m.startswith("ctypes.")]:
        del sys.modules[name]
    import ctypes
    import os

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def startups(root: Path, runs: int, preexec: Callable[..., None]) -> list[float]:
    runner.die_with_parent = preexec  # type: ignore[attr-defined]
    out = []
    for _ in range(runs):
        outcome = run_once(RunSpec(root=root, entry="flow:main", timeout_s=60))
        if outcome.status != "completed":
            sys.exit(f"the workflow failed: {outcome.reason}")
        out.append(outcome.components["startup"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if sys.platform != "linux":
        sys.exit("prctl is Linux's: nothing to compare here")
    root = Path(tempfile.mkdtemp(prefix="ttfb-spawn-"))
    (root / "flow.py").write_text(FLOW)
    for _ in range(2):
        threading.Thread(target=threading.Event().wait, daemon=True).start()
    print(f"{'round':>5}  {'preexec_fn':<28} {'startup median':>15} {'p90':>8}")
    for r in range(1, args.rounds + 1):
        for name, fn in (("prctl resolved in the agent", die_with_parent),
                         ("ctypes imported in the child", importing)):
            values = sorted(startups(root, args.runs, fn))
            print(f"{r:>5}  {name:<28} {statistics.median(values):>12.2f} ms"
                  f" {values[int(len(values) * 0.9)]:>5.2f} ms")


if __name__ == "__main__":
    main()
