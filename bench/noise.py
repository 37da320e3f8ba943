"""Run-to-run noise of TTFB per shrunk scenario, before and after noise control.

Each scenario runs N times (fresh process each) under two methods, in one run:

* naive: no warm-up (the first run after checkout is cold: no bytecode cache
  for the workflow, cold page cache), torch free to use every core
  (OMP_NUM_THREADS unset), hash randomisation on;
* controlled (what the agent does): one discarded warm-up run, the workflow
  pinned to one core (sched_setaffinity), OMP_NUM_THREADS=1, PYTHONHASHSEED=0.

Prints the coefficient of variation (std/mean) of TTFB per scenario.

    .venv/bin/python bench/noise.py [--runs 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from agents.catalog import load_catalog
from agents.demo_history import write_demo_repo
from agents.local import spec_for
from agents.runner import RunSpec, run_once
from agents.workspace import Workspaces


def cv(values: list[float]) -> float:
    arr = np.asarray(values)
    return float(arr.std(ddof=1) / arr.mean())


def measure(runs: int) -> dict[str, dict[str, float]]:
    catalog = load_catalog()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        write_demo_repo(repo)
        for name in catalog.names():
            scenario = catalog.scenarios[name]
            result = {}
            for method in ("naive", "controlled"):
                root, _ = Workspaces(Path(tmp) / f"ws-{method}").checkout("demo", repo, "HEAD")
                base = spec_for(scenario, root)
                if method == "naive":
                    spec = RunSpec(**{**base.__dict__, "env": {
                        "OMP_NUM_THREADS": str(len(cores) or os.cpu_count() or 1),
                        "PYTHONHASHSEED": "random"}})
                else:
                    spec = RunSpec(**{**base.__dict__, "cpu_affinity": tuple(cores[-1:])})
                    run_once(spec)  # discarded warm-up
                values = [run_once(spec).ttfb_ms for _ in range(runs)]
                result[f"{method}_cv_pct"] = round(cv(values) * 100, 2)
                result[f"{method}_mean_ms"] = round(float(np.mean(values)), 1)
                shutil.rmtree(root, ignore_errors=True)
            out[name] = result
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure(args.runs)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'scenario':<8} {'naive CV':>9} {'controlled CV':>14} {'ratio':>6}"
          f" {'naive mean':>11} {'controlled mean':>16}")
    for name, r in results.items():
        print(f"{name:<8} {r['naive_cv_pct']:>8.2f}% {r['controlled_cv_pct']:>13.2f}%"
              f" {r['naive_cv_pct'] / max(r['controlled_cv_pct'], 1e-9):>5.1f}x"
              f" {r['naive_mean_ms']:>9.0f}ms {r['controlled_mean_ms']:>14.0f}ms")


if __name__ == "__main__":
    main()
