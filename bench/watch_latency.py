"""Time from a commit landing on a watched branch to its attributed alert.

For each trial: a fresh repository (``tests/integration/tinyrepo.py``: its
import does 0.5 s of work), ``ttfb watch --backfill 3 --headless --interval 5``
in the embedded lab, then a commit that makes the import 20 % slower. The
clock starts when the commit exists and stops when the store holds an alert
attributed to it. Prints one JSON line per trial and a summary.

    .venv/bin/python bench/watch_latency.py --trials 3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.tinyrepo import make_repo, set_import_cost, write_catalog  # noqa: E402
from ttfb.settings import Settings  # noqa: E402
from ttfb.store import open_store  # noqa: E402


def _count(store, sql: str) -> int:  # type: ignore[no-untyped-def]
    return int(store.query(sql)[0]["n"])


def trial(tmp: Path, interval: float, timeout: float) -> dict[str, object]:
    repo, data = tmp / "repo", tmp / "data"
    make_repo(repo, import_s=0.5, commits=3)
    catalog = write_catalog(tmp / "catalog.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env.update(TTFB_DATA_DIR=str(data), TTFB_CATALOG=str(catalog))
    log = open(tmp / "watch.log", "wb")  # noqa: SIM115
    watch = subprocess.Popen(
        [sys.executable, "-m", "ttfb.cli", "watch", "--repo", f"tiny={repo}", "--headless",
         "--interval", str(interval), "--backfill", "3"], env=env, stdout=log,
        stderr=subprocess.STDOUT, cwd=ROOT)
    store = open_store(Settings(data_dir=data, _env_file=None))
    try:
        deadline = time.monotonic() + timeout
        while _count(store, "SELECT count() AS n FROM ttfb.runs FINAL WHERE purpose = 'monitor'"
                     " AND status = 'completed'") < 9:
            if time.monotonic() > deadline or watch.poll() is not None:
                raise RuntimeError("the baseline did not form: " + (tmp / "watch.log").read_text())
            time.sleep(1)
        landed = time.monotonic()
        culprit = set_import_cost(repo, 0.6, "load the table eagerly")
        while True:
            rows = store.query("SELECT culprit FROM ttfb.alerts FINAL WHERE culprit != ''")
            if rows:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("no attributed alert in time")
            time.sleep(0.5)
        seconds = time.monotonic() - landed
        runs = _count(store, "SELECT count() AS n FROM ttfb.runs FINAL WHERE purpose != 'monitor'")
        return {"seconds_to_alert": round(seconds, 1), "culprit_right": rows[0]["culprit"] ==
                culprit, "confirm_and_bisect_runs": runs, "interval_s": interval}
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--interval", type=float, default=5.0, help="the watcher's fetch interval")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    results = []
    for _ in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(trial(Path(tmp), args.interval, args.timeout))
        print(json.dumps(results[-1]), flush=True)
    times = [float(r["seconds_to_alert"]) for r in results]  # type: ignore[arg-type]
    print(json.dumps({"trials": len(results), "median_s": statistics.median(times),
                      "min_s": min(times), "max_s": max(times),
                      "culprit_right": sum(bool(r["culprit_right"]) for r in results)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
