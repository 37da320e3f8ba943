"""The demo repository end to end through the CLI: ``ttfb bisect`` and ``ttfb ab``.

* ``ttfb bisect --component C --direction D`` for each injected change,
  over 14 commits around it (from 6 before its parent to 6 after it, fewer
  near the end; ``--whole`` for the whole history): does it name the
  injected commit, at what cost, and is the first entry of its explanation
  what the commit changed;
* ``ttfb ab`` around the lazy-import improvement (expected: ``improvement``
  in ``imports``) and around an ordinary commit (expected: ``no change``).

Each command starts its own embedded lab, as a user's would.

    .venv/bin/python bench/demo_attribution.py [--runs 10] [--skip-bisect] [--skip-ab] [--whole]
        [--logs DIR] [--only vision/imports ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agents.demo_history import write_demo_repo

TTFB = [sys.executable, "-m", "ttfb.cli"]
ORDINARY = "Document device selection"  # touches every scenario, changes nothing


LOGS: Path | None = None  # --logs: each command's progress (its stderr) is kept here


def ttfb(data: Path, *args: str) -> tuple[dict[str, Any], float]:
    start = time.monotonic()
    done = subprocess.run([*TTFB, *args, "--json"], capture_output=True, text=True,
                          env={**_env(), "TTFB_DATA_DIR": str(data)}, check=False)
    if LOGS is not None:
        LOGS.mkdir(parents=True, exist_ok=True)
        (LOGS / f"{data.name}.log").write_text(done.stderr)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"ttfb {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout), time.monotonic() - start


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10, help="A/B runs per arm")
    parser.add_argument("--skip-bisect", action="store_true")
    parser.add_argument("--skip-ab", action="store_true")
    parser.add_argument("--whole", action="store_true", help="bisect the whole history")
    parser.add_argument("--logs", type=Path, help="keep each command's progress here")
    parser.add_argument("--only", action="append", default=[], metavar="SCENARIO/COMPONENT",
                        help="bisect only these injected changes (vision/imports, say)")
    args = parser.parse_args()
    global LOGS
    LOGS = args.logs
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        manifest = write_demo_repo(repo)
        first = git(repo, "rev-list", "--max-parents=0", "HEAD")
        if not args.skip_bisect:
            order = git(repo, "rev-list", "--reverse", "--first-parent", "HEAD").split()
            print(f"{'scenario':<8} {'component':<9} {'commits':>7} {'named':<6} {'runs':>5}"
                  f" {'wall':>7}  explanation's first entry", flush=True)
            for m in manifest:
                if args.only and f"{m['scenario']}/{m['component']}" not in args.only:
                    continue
                at = order.index(m["commit"])
                good, bad = (first, "HEAD") if args.whole else \
                    (order[max(0, at - 7)], order[min(len(order) - 1, at + 6)])
                commits = len(order) if args.whole else order.index(bad) - order.index(good) + 1
                out, wall = ttfb(Path(tmp) / f"bisect-{m['scenario']}-{m['component']}",
                                 "bisect", "--repo", str(repo), "--scenario", m["scenario"],
                                 "--good", good, "--bad", bad, "--component", m["component"],
                                 "--direction", m["direction"])
                top = out["explanation"][0] if out.get("explanation") else {}
                print(f"{m['scenario']:<8} {m['component']:<9} {commits:>7}"
                      f" {'yes' if out['culprit'] == m['commit'] else 'NO':<6}"
                      f" {out['runs_spent']:>5} {wall:>6.0f}s  {top.get('name', '-')}"
                      f" ({top.get('where') or 'elsewhere'}, {top.get('delta_ms', 0):+.0f} ms)"
                      f"   {out['subject']}", flush=True)
        if not args.skip_ab:
            improvement = next(m for m in manifest if m["direction"] == "improvement")
            ordinary = git(repo, "log", "--format=%H", f"--grep={ORDINARY}")
            for label, scenario, commit in (("improvement", improvement["scenario"],
                                             improvement["commit"]),
                                            ("ordinary", "lm", ordinary)):
                out, wall = ttfb(Path(tmp) / f"ab-{label}", "ab", "--scenario", scenario,
                                 "--repo", str(repo), "--a", f"{commit}~1", "--b", commit,
                                 "--runs", str(args.runs))
                print(f"\nab {label} ({scenario}, {commit[:10]}): verdict {out['verdict']},"
                      f" {out['runs_spent']} runs, {wall:.0f}s")
                for c in out["components"]:
                    print(f"  {c['component']:<10} {c['delta_pct']:+6.1f}%"
                          f" [{c['ci_low_pct']:+.1f}, {c['ci_high_pct']:+.1f}]"
                          f" p={c['p_value']:.2g} {c['verdict']}")


if __name__ == "__main__":
    main()
