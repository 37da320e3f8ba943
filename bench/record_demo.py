"""Record real TTFB series on the demo repository for ``bench/detection.py``.

Every scenario of the catalog at every commit of the demo history (no test
selection: a series needs every point), ``--runs`` fresh-process runs each,
pinned to the machine's last core like the agent's, one discarded warm-up run
per scenario. Writes ``ttfb detect``'s CSV (``series`` = scenario/component,
``order`` = commit index, ``value`` ms, ``commit``) and the labels: the
injected changes of the demo's manifest, as (series, index, direction).

    .venv/bin/python bench/record_demo.py [--runs 3] [--out bench/data]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from agents.catalog import load_catalog
from agents.demo_history import write_demo_repo
from agents.runner import run_once
from agents.spec import spec_for
from agents.workspace import Workspaces


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    catalog = load_catalog()
    cores = (os.cpu_count() - 1,) if (os.cpu_count() or 1) >= 2 else ()  # type: ignore[operator]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "demo" / "repo"
        write_demo_repo(repo)
        manifest = json.loads((repo.parent / "manifest.json").read_text())
        commits = subprocess.run(["git", "-C", str(repo), "rev-list", "--reverse",
                                  "--first-parent", "HEAD"], capture_output=True, text=True,
                                 check=True).stdout.split()
        spaces = Workspaces(Path(tmp) / "ws")
        rows: list[dict[str, object]] = []
        warm: set[str] = set()
        started = time.monotonic()
        for index, commit in enumerate(commits):
            root, _ = spaces.checkout("demo", repo, commit)
            for name in catalog.names():
                spec = replace(spec_for(catalog.scenarios[name], root), cpu_affinity=cores)
                if name not in warm:
                    run_once(spec)
                    warm.add(name)
                for _ in range(args.runs):
                    outcome = run_once(spec)
                    if outcome.status != "completed":
                        raise SystemExit(f"{name} at {commit[:10]} failed: {outcome.reason}")
                    for component, ms in outcome.components.items():
                        rows.append({"series": f"{name}/{component}", "order": index,
                                     "value": round(ms, 3), "commit": commit})
            print(f"commit {index + 1}/{len(commits)} {commit[:10]}"
                  f" ({time.monotonic() - started:.0f} s)", flush=True)
    with open(args.out / "demo_series.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["series", "order", "value", "commit"])
        writer.writeheader()
        writer.writerows(rows)
    labels = [{"series": f"{m['scenario']}/{m['component']}", "index": commits.index(m["commit"]),
               "direction": m["direction"], "commit": m["commit"],
               "description": m["description"]} for m in manifest]
    (args.out / "demo_labels.json").write_text(json.dumps(labels, indent=2) + "\n")
    print(f"{len(rows)} values, {len(labels)} labelled changes -> {args.out}")


if __name__ == "__main__":
    main()
