"""Change detection on a labelled suite: ttfb-lab against the detectors people use.

Synthetic TTFB series with realistic noise (log-normal tails, cold/warm
bimodality, outliers, slow drift; CV 2-10 %; 1-3 runs per commit) with zero
or one shift of 2-20 % at a random commit. Every method sees the same series;
peers get one value per commit (the mean of its runs), ttfb-lab the runs.

* ttfb-lab: ``ttfb.stats.detect_history`` with the defaults of ``ttfb detect``
  (a rank scan of every split, calibrated by permuting commits, by binary
  segmentation).
* Perfherder-style t-test: back window 12, fore window 12, |t| > 7, >= 2 %.
* asv: ``asv.step_detect.detect_steps`` step boundaries with a change >= 2 %.
* Apache Otava: ``otava.analysis.compute_change_points`` at its defaults
  (window 50, p 0.001, as ``otava analyze``).
* MongoDB E-Divisive: ``signal_processing_algorithms`` ``e_divisive``.

A detection is a true positive when it lies within 2 commits of the change;
everything else is a false alarm. Prints precision, recall, F1, false alarms
per 1,000 points, and recall on the target slice (3-10 % shifts, CV 3-5 %),
for each seed's suite, then ttfb-lab against the peer with the best F1: the
target is 10 points more recall on the slice at no more false alarms.

Then the same for real series: every component of every scenario, measured
by the agent's runner at each commit of the demo repository
(``bench/record_demo.py`` wrote ``bench/data/demo_series.csv``), labelled with
the demo's injected changes.

    .venv/bin/python bench/detection.py [--series 1000] [--seeds 2026,7,11] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from producers.offline import OFFLINE_DEFAULT, read_history
from ttfb.stats import detect_history, group_points
from ttfb.stats.simulate import SHAPES, Series, series

TOLERANCE = 2
DATA = Path(__file__).parent / "data"


@dataclass
class Case:
    data: Series
    cv: float
    means: np.ndarray


def suite(count: int, seed: int = 2026, length: int = 60) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        cv = float(rng.choice([0.02, 0.03, 0.04, 0.05, 0.10]))
        shift = float(rng.choice([0.0, 0.0, 2.0, 3.0, 5.0, 10.0, 20.0]))
        shift *= float(rng.choice([1.0, -1.0]))
        at = int(rng.integers(15, length - 15)) if shift else None
        s = series(rng, length=length, cv=cv, shift_pct=shift, change_index=at,
                   runs=int(rng.integers(1, 4)), shape=SHAPES[i % len(SHAPES)])
        cases.append(Case(s, cv, np.array([np.mean(p.values) for p in s.points])))
    return cases


def demo_suite(data: Path = DATA) -> dict[str, Case]:
    """The recorded demo series by name, each with its labelled change (or none)."""
    history = read_history(data / "demo_series.csv")
    labels = {lab["series"]: lab for lab in json.loads((data / "demo_labels.json").read_text())}
    cases = {}
    for name in sorted(history):
        points = group_points(history[name])
        means = np.array([np.mean(p.values) for p in points])
        at = labels[name]["index"] if name in labels else None
        shift = 100 * (means[at:].mean() / means[:at].mean() - 1) if at is not None else 0.0
        spread = np.median([np.std(p.values, ddof=1) / np.mean(p.values) for p in points])
        cases[name] = Case(Series(points, at, float(shift)), float(spread), means)
    return cases


def ours(case: Case) -> list[int]:
    return [c.index for c in detect_history(case.data.points, OFFLINE_DEFAULT)]


def perfherder(case: Case, back: int = 12, fore: int = 12, t_min: float = 7.0,
               min_pct: float = 2.0) -> list[int]:
    y = case.means
    scores = {}
    for i in range(back, len(y) - fore + 1):
        a, b = y[i - back:i], y[i:i + fore]
        se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        t = abs(b.mean() - a.mean()) / se if se else 0.0
        if t > t_min and abs(b.mean() / a.mean() - 1) * 100 >= min_pct:
            scores[i] = t
    picked: list[int] = []
    for i, _ in sorted(scores.items(), key=lambda kv: -kv[1]):  # local maxima of t
        if all(abs(i - j) >= fore for j in picked):
            picked.append(i)
    return sorted(picked)


def asv_steps(case: Case, min_pct: float = 2.0) -> list[int]:
    from asv.step_detect import detect_steps

    steps = detect_steps(case.means.tolist())
    out = []
    for left, right in zip(steps, steps[1:], strict=False):
        if abs(right[2] / left[2] - 1) * 100 >= min_pct:
            out.append(right[0])
    return out


def otava(case: Case) -> list[int]:
    from otava.analysis import compute_change_points

    points, _ = compute_change_points(case.means.tolist())  # its defaults (as its CLI's)
    return [p.index for p in points]


def e_divisive(case: Case) -> list[int]:
    from signal_processing_algorithms.energy_statistics.energy_statistics import e_divisive as ed

    return list(ed(case.means.tolist(), pvalue=0.05, permutations=100))


PEERS = {"asv": "asv", "otava": "apache-otava",
         "signal_processing_algorithms": "signal-processing-algorithms"}


def require_peers(script: str) -> None:
    """Exit with the install line where a peer's package is missing (a
    sentence, not the traceback of the first series it would fail on)."""
    import importlib.util

    missing = [pip for module, pip in PEERS.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise SystemExit(
            f"{script}: the peers' packages are missing ({', '.join(missing)}): "
            ".venv/bin/pip install asv apache-otava && .venv/bin/pip install --no-deps "
            "signal-processing-algorithms more-itertools 'structlog<25' (BENCHMARKS.md, "
            "\"Change detection against the peers\")")


METHODS: dict[str, Callable[[Case], list[int]]] = {
    "ttfb-lab": ours, "perfherder": perfherder, "asv": asv_steps, "otava": otava,
    "e-divisive": e_divisive}


def score(cases: list[Case], found: list[list[int]]) -> dict[str, float]:
    tp = fp = positives = points = 0
    target_hits = target_total = 0
    for case, hits in zip(cases, found, strict=True):
        points += len(case.means)
        truth = case.data.change_index
        matched = [h for h in hits if truth is not None and abs(h - truth) <= TOLERANCE]
        fp += len(hits) - min(len(matched), 1)
        if truth is not None:
            positives += 1
            tp += bool(matched)
            if 3 <= abs(case.data.shift_pct) <= 10 and 0.03 <= case.cv <= 0.05:
                target_total += 1
                target_hits += bool(matched)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "false_alarms_per_1000": 1000 * fp / points,
            "recall_3_10pct_cv_3_5pct": target_hits / target_total if target_total else 0.0}


def evaluate(cases: list[Case]) -> dict[str, dict[str, float]]:
    results = {}
    for name, method in METHODS.items():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = [method(c) for c in cases]
        results[name] = {**score(cases, found), "seconds": time.perf_counter() - started}
    return results


def table(title: str, cases: list[Case], results: dict[str, dict[str, float]],
          target: bool = True) -> None:
    print(f"{title}: {len(cases)} series, {sum(len(c.means) for c in cases)} points,"
          f" {sum(c.data.change_index is not None for c in cases)} with a change")
    print(f"{'method':<11} {'precision':>9} {'recall':>7} {'F1':>6} {'FA/1000':>8} "
          + (f"{'recall 3-10% @CV3-5%':>21} " if target else "") + f"{'seconds':>8}")
    for name, r in results.items():
        print(f"{name:<11} {r['precision']:>9.3f} {r['recall']:>7.3f} {r['f1']:>6.3f} "
              f"{r['false_alarms_per_1000']:>8.2f} "
              + (f"{r['recall_3_10pct_cv_3_5pct']:>21.3f} " if target else "")
              + f"{r['seconds']:>8.1f}")


def against_best_peer(results: dict[str, dict[str, float]]) -> str:
    peer = max((n for n in results if n != "ttfb-lab"), key=lambda n: results[n]["f1"])
    ours_, theirs = results["ttfb-lab"], results[peer]
    gain = 100 * (ours_["recall_3_10pct_cv_3_5pct"] - theirs["recall_3_10pct_cv_3_5pct"])
    fewer = ours_["false_alarms_per_1000"] <= theirs["false_alarms_per_1000"]
    return (f"against {peer} (best F1 of the peers): {gain:+.1f} points of recall on the slice,"
            f" false alarms {ours_['false_alarms_per_1000']:.2f} vs"
            f" {theirs['false_alarms_per_1000']:.2f} / 1,000; target"
            f" {'met' if gain >= 10 and fewer else 'not met'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--seeds", default="2026,7,11", help="one suite per seed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    require_peers("bench/detection.py")
    suites = {int(seed): suite(args.series, seed=int(seed)) for seed in args.seeds.split(",")}
    named = demo_suite() if (DATA / "demo_series.csv").exists() else {}
    real = list(named.values())
    results = {f"synthetic seed {seed}": evaluate(cases) for seed, cases in suites.items()}
    if real:
        results["demo"] = evaluate(real)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for seed, cases in suites.items():
        table(f"synthetic, seed {seed}", cases, results[f"synthetic seed {seed}"])
        print(against_best_peer(results[f"synthetic seed {seed}"]))
        print()
    if real:
        table("demo repository (real runs)", real, results["demo"], target=False)
        for name, case in named.items():
            if case.data.change_index is not None:
                print(f"  {name}: change at index {case.data.change_index},"
                      f" {case.data.shift_pct:+.1f} %, within-commit CV {case.cv:.1%}")


if __name__ == "__main__":
    main()
