"""The screen: a commit's monitoring runs, tested in each of its series;
a candidate starts a confirmation. Runs of a series being confirmed are
held and tested after its verdict."""

from __future__ import annotations

import dataclasses
from typing import Any

from streams.detection.overrides import budget, config_for, ignored
from streams.detection.policy import MAX_PENDING, TOTAL, Policy
from streams.detection.recorded import recorded_test
from streams.detection.runs import confirm_runs
from streams.detection.state import (
    Confirmation,
    ScenarioState,
    arrive,
    being_confirmed,
    series_key,
    since_change,
)
from ttfb import events as ev
from ttfb.stats import (
    ChangePoint,
    DetectorConfig,
    Point,
    SeriesState,
    accept,
    apply,
    benjamini_hochberg,
    kept_in_window,
)
from ttfb.stats.detector import band

EMPTY_SERIES = SeriesState()  # a series' state before its first commit (never changed)


def monitor_result(state: ScenarioState, event: ev.RunCompleted | ev.RunFailed,
                    policy: Policy) -> tuple[ScenarioState, list[ev.Event]]:
    # the state's own entry (``copy_state`` copies entries)
    entry: dict[str, Any] | None = state.pending.get(event.commit)
    if entry is None:
        if len(state.pending) >= MAX_PENDING:
            for stale in list(state.pending)[:len(state.pending) - MAX_PENDING + 1]:
                del state.pending[stale]
        entry = state.pending[event.commit] = {
            "values": {}, "done": [], "total": event.runs_total, "repo": event.repo,
            "hardware_id": event.fingerprint.hardware_id,
            "hardware_class": event.fingerprint.hardware_class, "branch": event.branch,
            "author": "", "subject": ""}
    if event.repetition in entry["done"]:
        return state, []
    entry["done"].append(event.repetition)
    if isinstance(event, ev.RunCompleted):
        entry["author"], entry["subject"] = event.author, event.subject
        values = entry["values"]
        if values:  # a later run: its commit's series are there (no list made to be dropped)
            for name, ms in event.components.items():
                if name in values:
                    values[name].append(ms)
                else:
                    values[name] = [ms]
        else:
            values.update((name, [ms]) for name, ms in event.components.items())
        if TOTAL in values:
            values[TOTAL].append(event.ttfb_ms)
        else:
            values[TOTAL] = [event.ttfb_ms]
    else:
        entry["failure"] = ev.failure_summary(event.reason, event.stderr_tail)
    if len(entry["done"]) < entry["total"]:
        return state, []
    del state.pending[event.commit]
    arrive(state, event.commit)
    told = _broken_or_working(state, event.scenario, event.commit, entry)
    if not entry["values"]:
        return state, told  # every run failed: nothing to learn about its timings
    state, out = _test_commit(state, event.scenario, event.commit, entry, policy)
    return state, out + told


def _broken_or_working(state: ScenarioState, scenario: str, commit: str,
                       entry: dict[str, Any]) -> list[ev.Event]:
    """A commit whose monitoring runs all failed where the last commit's
    completed (on this hardware class) broke the scenario: said once, and
    once more when a later commit's runs complete again. A scenario that has
    never completed a run is not broken by a commit: nothing is said."""
    hardware = str(entry["hardware_class"])
    last, broken = state.runs_ok.get(hardware, ["", ""])
    about = dict(scenario=scenario, repo=entry["repo"], commit=commit, branch=entry["branch"],
                 hardware_class=hardware)
    if not entry["values"]:
        if not last or broken:
            return []
        state.runs_ok[hardware] = [last, commit]
        return [ev.ScenarioBroken(status="broken", good_commit=last,
                                  reason=str(entry.get("failure", ""))[:2000], **about)]
    state.runs_ok[hardware] = [commit, ""]
    if not broken:
        return []  # most commits: nothing to say
    return [ev.ScenarioBroken(status="working", broken_at=broken, author=entry["author"],
                              subject=entry["subject"], **about)]


def _test_commit(state: ScenarioState, scenario: str, commit: str, entry: dict[str, Any],
                 policy: Policy, released: bool = False) -> tuple[ScenarioState, list[ev.Event]]:
    """Test one commit's runs in each of its series. A series being confirmed
    does not take them: its baseline restarted at the candidate, so they
    would join it untested, and a dismissal would take even a large change
    into the baseline. They are held, and tested after the verdict (``release``,
    which passes ``released``: the commit was counted when it arrived, or is
    owed, ``_owe``)."""
    record = recorded_test(commit)  # a rebuild's: the outcome, not tested again
    # a record taken says which series kept the commit (``Records`` takes no other)
    recorded_kept = None if record is None else set(record.kept or ())
    cfg, configs = _configs(state, entry, policy, tested=record is None)
    found: dict[str, ChangePoint] = {}
    before: dict[str, SeriesState] = {}
    confirming = being_confirmed(state)
    held = {}
    window_kept: list[str] = []
    of_series = series_key("", entry["hardware_id"], entry["branch"])  # each key's tail
    for name, values in entry["values"].items():
        key = name + of_series
        if key in confirming:
            held[name] = values
            continue
        series = before[name] = state.series.get(key) or EMPTY_SERIES
        point = Point(float(series.seen), commit, tuple(values))
        # a change may start at a held commit before this one (``hold_p``): the
        # fresh runs then confirm this commit, and the bisect finds where it began
        state.series[key], change = apply(
            series, point, configs[name],
            None if recorded_kept is None else name in recorded_kept)
        if change is not None:
            found[name] = change
        elif record is None and kept_in_window(series, state.series[key]):
            window_kept.append(name)  # (a record taken says it)
    freed: list[ev.Event] = [] if not before else [record] if record is not None else \
        [_tested(scenario, commit, entry, before, configs, found, window_kept)]
    if held:
        state.held.append({**{k: v for k, v in entry.items() if k not in ("done", "total")},
                           "commit": commit, "values": held})
    if held and not released and _stalled(state, policy):
        state, more = release(state, scenario, policy)
        freed += more
    # a released commit joins the history when it was owed: its series that
    # were free found nothing to raise when it arrived (``_owe``)
    totals = entry["values"].get(TOTAL, []) if not released else entry.get("owed", [])
    if totals and not found:
        return state, freed + accept_commit(state, scenario, totals, policy)
    if not found:
        return state, freed
    tested = len(entry["values"])
    names = sorted(found)
    rejected = [True] * len(names) if policy.fdr_q is None else benjamini_hochberg(
        [found[n].p_value for n in names] + [1.0] * (tested - len(names)), q=policy.fdr_q)
    moved = {n: found[n] for n, keep in zip(names, rejected, strict=False)
             if keep and n != TOTAL and n not in ignored(state)}
    for n in set(found) - set(moved):
        # not raised (filtered across the series): the commit joins the baseline,
        # which must not restart on a change nobody will confirm
        old = before[n]
        key = series_key(n, entry["hardware_id"], entry["branch"])
        point = Point(float(old.seen), commit, tuple(entry["values"][n]))
        state.series[key] = accept(dataclasses.replace(
            old, window=old.window + (point,), seen=old.seen + 1), configs[n])
    if not moved:
        # the changes found raise nothing (the total's, an ignored component's):
        # the commit joined the baseline, so it joins the history its thresholds
        # are calibrated on too; where a series held it for a verdict, once
        # that series has tested it
        if totals and held:
            _owe(state, commit, totals)
            return state, freed
        return state, freed + (accept_commit(state, scenario, totals, policy) if totals else [])
    detection_id = ev.derived_id("detection", scenario, commit, entry["hardware_id"],
                                 entry["branch"], *(sorted(moved) if released else []))
    # confirm against the oldest commit of the baseline, not the one just before:
    # with 3 runs a commit and drift between them, a change is often only clear
    # a commit or two later, and a fresh A/B against its neighbour would then
    # dismiss it; the bisect finds the culprit inside the longer range
    anchors = [before[n].baseline[0] for n in moved if before[n].baseline]
    good = min(anchors, key=lambda pt: pt.order).commit if anchors else \
        next(iter(moved.values())).good_commit
    good = since_change(state, good, commit)
    state.confirming[detection_id] = Confirmation(
        detection_id=detection_id, commit=commit, good_commit=good,
        components={n: c.direction for n, c in moved.items()},
        hardware_id=entry["hardware_id"], branch=entry["branch"],
        hardware_class=entry.get("hardware_class", ""),
        runs_per_side=policy.first_look_runs,
        author=entry["author"], subject=entry["subject"],
        repo=entry["repo"],
        # every series': a follow-up may confirm another component
        monitored={n: {**{p.commit: list(p.values) for p in (*s.baseline, *s.window)},
                       commit: list(entry["values"][n])} for n, s in before.items()})
    out: list[ev.Event] = [
        ev.CandidateDetected(
            detection_id=detection_id, scenario=scenario, repo=entry["repo"], component=n,
            commit=commit,
            good_commit=good, direction=c.direction, hardware_id=entry["hardware_id"],
            hardware_class=entry.get("hardware_class", ""),
            branch=entry["branch"], effect_ms=c.comparison.effect_ms,
            effect_pct=c.effect_pct, ci_low_pct=c.comparison.ci_low_pct,
            ci_high_pct=c.comparison.ci_high_pct, p_value=c.p_value,
            threshold=cfg.k, producer="ttfb-detector")
        for n, c in moved.items()]
    return state, freed + out + confirm_runs(state.confirming[detection_id], scenario,
                                      state.confirming[detection_id].runs_per_side,
                                      warmup=policy.confirm_warmup)


def _configs(state: ScenarioState, entry: dict[str, Any], policy: Policy,
             tested: bool) -> tuple[DetectorConfig, dict[str, DetectorConfig]]:
    """The detector's settings for the commit's tests (the ms floor from the
    baseline's TTFB, the calibrated operating point), and each series' (with
    the catalog's overrides). Not ``tested`` (a recorded outcome taken), only
    the window's shape is read (``fore``, ``hold``, ``back``), which neither
    the overrides nor the operating point change: the lab's own."""
    cfg = policy.detector
    if not tested:
        return cfg, dict.fromkeys(entry["values"], cfg)
    cfg = dataclasses.replace(
        cfg, min_effect_ms=policy.min_effect_ttfb_pct / 100 * state.baseline_ttfb)
    if state.operating:
        cfg = cfg.with_point(*state.operating)
    return cfg, {name: config_for(state, name, cfg) for name in entry["values"]}


def _tested(scenario: str, commit: str, entry: dict[str, Any], before: dict[str, SeriesState],
            configs: dict[str, DetectorConfig],
            found: dict[str, ChangePoint], window_kept: list[str]) -> ev.CommitTested:
    """What each series tested ``commit`` against, and what it found."""
    bands = {name: [round(x, 3) for x in limits] for name, series in before.items()
             if (limits := band(series, configs[name])) is not None}
    return ev.CommitTested(
        scenario=scenario, repo=entry["repo"], commit=commit, branch=entry["branch"],
        hardware_id=entry["hardware_id"], hardware_class=entry.get("hardware_class", ""),
        bands=bands, candidates=sorted(found), kept=window_kept, producer="ttfb-detector")


def _owe(state: ScenarioState, commit: str, totals: list[float]) -> None:
    """``commit``, held by a series, joins the history once it is released
    and nothing is raised then (``release``)."""
    for entry in state.held[::-1]:  # (mypyc compiles no ``reversed`` of this list)
        if entry["commit"] == commit:
            entry["owed"] = list(totals)
            return


def _stalled(state: ScenarioState, policy: Policy) -> bool:
    """Marks the series that hold more than ``hold_commits`` commits as no
    longer holding (their confirmation is taken for stalled); whether any was."""
    counts: dict[str, int] = {}
    for entry in state.held:
        for n in entry["values"]:
            key = series_key(n, entry["hardware_id"], entry["branch"])
            counts[key] = counts.get(key, 0) + 1
    over = [k for k, count in counts.items() if count > policy.hold_commits]
    state.unheld += [k for k in over if k not in state.unheld]
    return bool(over)


def release(state: ScenarioState, scenario: str,
             policy: Policy) -> tuple[ScenarioState, list[ev.Event]]:
    """Test the held commits, in the order they arrived, in each series no
    longer being confirmed (a candidate raised here holds its series'
    later commits again)."""
    out: list[ev.Event] = []
    waiting, state.held = state.held, []
    for entry in waiting:
        confirming = being_confirmed(state)
        free = {n: v for n, v in entry["values"].items()
                if series_key(n, entry["hardware_id"], entry["branch"]) not in confirming}
        kept = {n: v for n, v in entry["values"].items() if n not in free}
        if kept:  # (owed, if it was, once these are tested too)
            state.held.append({**entry, "values": kept})
        if free:
            state, emitted = _test_commit(
                state, scenario, entry["commit"],
                {**entry, "values": free, "owed": [] if kept else entry.get("owed", [])},
                policy, released=True)
            out += emitted
    return state, out


def accept_commit(state: ScenarioState, scenario: str, totals: list[float],
                  policy: Policy) -> list[ev.Event]:
    """A commit found unchanged (by the screen, or by a confirmation that
    dismissed its candidate) joins the history: the running mean of TTFB
    over (up to) the last 12 such commits, and the history its thresholds
    are calibrated on, which asks for a calibration at ``calibrate_at``."""
    state.baseline_commits = min(state.baseline_commits + 1, 12)
    state.baseline_ttfb += (sum(totals) / len(totals) - state.baseline_ttfb) \
        / state.baseline_commits
    state.accepted += 1
    state.history.append(list(totals))  # in place: the fold owns its state
    del state.history[:-64]
    if state.accepted not in policy.calibrate_at:
        return []
    return [ev.CalibrationRequested(
        scenario=scenario, history=list(state.history), accepted=state.accepted,
        budget_per_week=budget(state, policy), producer="ttfb-detector")]


def rebase(state: ScenarioState, c: Confirmation, policy: Policy,
            changed: set[str]) -> None:
    """After a verdict each tested series restarts from the fresh runs of the
    suspect commit: interleaved with the good commit's, they are the best
    sample of the current level, and they are enough values to test the
    next commit at once. Where no change was confirmed (``changed``: the
    components confirmed, now or before), the good commit's fresh runs are
    of that level too, and the suspect's own monitoring runs, the ones that
    looked moved, are left out: kept, a fluke's slow runs widened the
    baseline so much that the next commit's doubled data went unseen."""
    for n in c.components:
        key = series_key(n, c.hardware_id, c.branch)
        series = state.series.get(key)
        fresh = tuple(r[n] for r in c.after if n in r)
        if series is None or not fresh:
            continue
        window = series.window
        if n not in changed:
            fresh += tuple(r[n] for r in c.before if n in r)
            window = tuple(p for p in window if p.commit != c.commit)
        point = Point(float(series.seen), c.commit, fresh)
        state.series[key] = dataclasses.replace(
            series, baseline=(series.baseline + window + (point,))[-policy.detector.back:],
            window=())

