"""A scenario's decision state packed for the table and its changelog: zstd
(what the worker writes) against zlib (what earlier builds wrote), side by
side in one run.

The states are those of a lab that has run a while: each scenario folded
through ``commits`` commits of 3 monitoring runs (the throughput bench's
runs), so that the ids it remembers (``REMEMBER_IDS``) and its series are
full; half of them end on a regression whose confirmation is open. The
worker packs every changed scenario's state once per batch.

    .venv/bin/python bench/state_pack.py [--scenarios 20] [--commits 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the throughput bench's runs
from throughput import run_event, sha  # noqa: E402

from streams.bisect import BisectBook  # noqa: E402
from streams.checkpoint import state_bytes  # noqa: E402
from streams.detection import Policy, ScenarioState, decide, to_json  # noqa: E402
from streams.packing import pack, unpack  # noqa: E402
from ttfb import events as ev  # noqa: E402


def states(scenarios: int, commits: int, seed: int) -> list[tuple[ScenarioState, BisectBook]]:
    rng = np.random.default_rng(seed)
    policy = Policy()
    out = []
    for s in range(scenarios):
        state = ScenarioState()
        for c in range(commits):
            bump = 400.0 if s % 2 and c == commits - 1 else 0.0  # (``regressed``'s)
            for rep in range(3):
                event = ev.decode(run_event(rng, f"s{s}", sha(f"c{c}"), rep, bump))
                state, _ = decide(state, event, policy, inplace=True)
        out.append((state, BisectBook()))
    return out


def per_state_us(fn: Callable[[], object], n: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=20)
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    made = states(args.scenarios, args.commits, args.seed)
    raws = [state_bytes(d, b) for d, b in made]
    zstd_packed = [pack(d, b) for d, b in made]
    zlib_packed = [zlib.compress(raw, 1) for raw in raws]
    for packed in (zstd_packed, zlib_packed):  # both read back to the very state
        assert all(to_json(unpack(p)[0]) == to_json(d)
                   for p, (d, _) in zip(packed, made, strict=True))
    n = len(made)
    result = {
        "states": n,
        "open_confirmations": sum(bool(d.confirming) for d, _ in made),
        "json_bytes_median": statistics.median(len(r) for r in raws),
        "zstd_bytes_median": statistics.median(len(p) for p in zstd_packed),
        "zlib_bytes_median": statistics.median(len(p) for p in zlib_packed),
        "json_us": per_state_us(lambda: [state_bytes(d, b) for d, b in made], 20) / n,
    }
    # the two side by side: each round times one, then the other; best of five rounds
    timings: dict[str, list[float]] = {}
    work = {
        "zstd_pack_us": lambda: [pack(d, b) for d, b in made],
        "zlib_pack_us": lambda: [zlib.compress(state_bytes(d, b), 1) for d, b in made],
        "zstd_unpack_us": lambda: [unpack(p) for p in zstd_packed],
        "zlib_unpack_us": lambda: [unpack(p) for p in zlib_packed],
    }
    for _ in range(5):
        for key, fn in work.items():
            timings.setdefault(key, []).append(per_state_us(fn, 10, rounds=1) / n)
    result.update({key: min(values) for key, values in timings.items()})
    result["pack_ratio_zlib_over_zstd"] = round(result["zlib_pack_us"] / result["zstd_pack_us"], 2)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:28} {value:,.1f}" if isinstance(value, float) else f"{key:28} {value:,}")


if __name__ == "__main__":
    main()
