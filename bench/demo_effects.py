"""Each injected change of the demo repository, measured: 10 runs before, 10 after.

Runs are interleaved (before, after, before, ...) to cancel drift, each in a
fresh process after one discarded warm-up per commit. For every component
it prints the change and Welch's p-value; the named component must move in
the expected direction with p < 0.01; the others must not move by more than
the noise (not both p < 0.01 and at least 1 % of TTFB).

    .venv/bin/python bench/demo_effects.py [--runs 10] [--scenario S] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from agents.catalog import load_catalog
from agents.demo_history import write_demo_repo
from agents.runner import run_once
from agents.spec import spec_for
from agents.workspace import Workspaces
from ttfb.events import COMPONENTS
from ttfb.stats import compare


def measure(runs: int, only: str | None = None) -> list[dict]:
    catalog = load_catalog()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        manifest = write_demo_repo(repo)
        spaces = Workspaces(Path(tmp) / "ws")
        for change in manifest:
            if only and change["scenario"] != only:
                continue
            scenario = catalog.get(change["scenario"])
            assert scenario is not None
            specs = [spec_for(scenario, spaces.checkout("demo", repo, rev)[0])
                     for rev in (change["parent"], change["commit"])]
            for spec in specs:
                run_once(spec)  # warm-up
            samples: list[list[dict[str, float]]] = [[], []]
            for _ in range(runs):
                for side, spec in enumerate(specs):
                    outcome = run_once(spec)
                    assert outcome.status == "completed", outcome.reason
                    samples[side].append(outcome.components)
            rows = {}
            for name in (*COMPONENTS, "ttfb"):
                before = [sum(s.values()) if name == "ttfb" else s[name] for s in samples[0]]
                after = [sum(s.values()) if name == "ttfb" else s[name] for s in samples[1]]
                c = compare(before, after)
                rows[name] = {"before_ms": round(c.mean_a, 1), "after_ms": round(c.mean_b, 1),
                              "effect_pct": round(c.effect_pct, 1), "p_value": c.p_value}
            named = rows[change["component"]]
            expected_up = change["direction"] == "regression"
            ok_named = named["p_value"] < 0.01 and (named["effect_pct"] > 0) == expected_up
            # "moved by more than the noise": significant and at least 1 % of TTFB
            floor = 0.01 * rows["ttfb"]["before_ms"]
            others = [n for n in COMPONENTS if n != change["component"]
                      and rows[n]["p_value"] < 0.01
                      and abs(rows[n]["after_ms"] - rows[n]["before_ms"]) >= floor]
            out.append({**change, "components": rows, "named_moved": ok_named,
                        "others_moved": others})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--scenario", help="only the changes of this scenario")
    args = parser.parse_args()
    results = measure(args.runs, args.scenario)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"\n{r['scenario']} {r['component']} {r['direction']}: {r['description']}")
        print(f"  commit {r['commit'][:10]}  named component moved: {r['named_moved']};"
              f" other components that moved: {r['others_moved'] or 'none'}")
        for name, row in r["components"].items():
            print(f"  {name:<11} {row['before_ms']:>9.1f} -> {row['after_ms']:>9.1f} ms"
                  f"  {row['effect_pct']:+6.1f}%  p={row['p_value']:.2g}")


if __name__ == "__main__":
    main()
