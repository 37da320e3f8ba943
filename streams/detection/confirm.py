"""The confirmation: fresh interleaved runs of the suspect and the good
commit, two looks (the first may confirm, dismiss or ask for the second),
the replication look, then the verdicts, follow-ups and the held commits."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from streams.detection.compare import (
    also_moved,
    big_enough,
    compare_sides,
    directed,
    one_sided,
    significant,
    unnamed_components,
)
from streams.detection.overrides import ignored
from streams.detection.policy import TOTAL, WARMUP, Policy
from streams.detection.runs import confirm_runs
from streams.detection.screen import accept_commit, rebase, release
from streams.detection.state import (
    Confirmation,
    ScenarioState,
    being_confirmed,
    position,
    since_change,
)
from streams.detection.verdicts import verdicts
from ttfb import events as ev
from ttfb.stats import Comparison, compare_paired


def confirmation_result(state: ScenarioState, event: ev.RunCompleted | ev.RunFailed,
                         policy: Policy) -> tuple[ScenarioState, list[ev.Event]]:
    pending = state.confirming[event.correlation_id]
    _record(pending, event)
    if event.arm == WARMUP or not pending.complete:
        return state, []
    if pending.replicating:
        return _replicated(state, pending, event.scenario, policy)
    components, decided = dict(pending.components), dict(pending.decided)
    look = _look(state, pending, event.scenario, policy)
    if isinstance(look, SecondBatch):
        told = _announce(state, pending, event.scenario, policy, look.clear)
        return state, told + confirm_runs(pending, event.scenario, look.more, first="after",
                                          warmup=policy.confirm_warmup)
    again = _to_replicate(state, pending, look[0], policy)
    if again:
        pending.replicating = again
        pending.replicate_from = [len(pending.before), len(pending.after), pending.runs_per_side]
        pending.components_then, pending.decided_then = components, decided
        pending.runs_per_side += policy.replicate_runs
        return state, confirm_runs(pending, event.scenario, policy.replicate_runs,
                                    warmup=policy.confirm_warmup)
    return _conclude(state, pending, event.scenario, policy, *look)


Look = tuple[dict[str, Comparison], dict[str, Comparison], dict[str, Comparison], bool]


class SecondBatch(NamedTuple):
    more: int  # runs a side
    # the named components the first look confirmed clearly enough to be
    # announced now (``announce_at_first_p``), with their comparisons
    clear: dict[str, Comparison]


def _look(state: ScenarioState, pending: Confirmation, scenario: str,
          policy: Policy) -> Look | SecondBatch:
    """Decide what the runs so far show: the verdict's comparisons (the named
    components' and the unnamed ones that moved), every unnamed component's
    comparison, those that moved, and whether this was the final look; or
    the second batch (its runs a side, and the components clear at once),
    when the first look leaves a component open.
    A named component is confirmed only where its shift is also big enough
    to matter (``big_enough``), as an unnamed one is: a significant shift
    below the screen's floor (its runs read it larger) is left open at the
    first look and dismissed at the final one."""
    final = pending.runs_per_side >= policy.confirm_runs
    paired = final and policy.paired_final
    comparisons = directed(pending, compare_sides(pending, list(pending.components),
                                                    paired=paired))
    big = set(big_enough(pending, comparisons, policy, state))
    alpha = policy.confirm_first_alpha
    if final:
        alpha = policy.confirm_alpha - (policy.confirm_first_alpha
                                        if policy.confirm_first_runs < policy.confirm_runs else 0)
        confirmed = significant(pending, comparisons, alpha) & big
        for n in pending.components:
            pending.decided.setdefault(n, n in confirmed)
    else:  # first look: confirm the clear, drop the hopeless, look again at the rest
        for n in significant(pending, comparisons, policy.confirm_first_alpha) & big:
            pending.decided[n] = True
        for n, cmp in comparisons.items():
            if n not in pending.decided and cmp.p_value > policy.futility_p:
                pending.decided[n] = False
        for n in pending.components:
            if n not in comparisons:
                pending.decided.setdefault(n, False)
        # another component that looks moved on these runs earns the second
        # batch too: it is tested, like everything still open, at the final look
        still_open = len(pending.decided) < len(pending.components)
        if still_open or also_moved(pending, compare_sides(pending, unnamed_components(pending)),
                                    policy.promising_p, policy, state, mark=False):
            more = policy.confirm_runs - pending.runs_per_side
            pending.runs_per_side = policy.confirm_runs
            pending.looked = [len(pending.before), len(pending.after)]
            clear = {n: cmp for n, cmp in comparisons.items() if policy.announce_at_first_p
                     and pending.decided.get(n) and cmp.p_value <= policy.announce_at_first_p}
            return SecondBatch(more, clear)
    unnamed = compare_sides(pending, unnamed_components(pending), paired=paired)
    moved = also_moved(pending, unnamed, alpha, policy, state)
    comparisons.update(moved)
    return comparisons, unnamed, moved, final


def _to_replicate(state: ScenarioState, pending: Confirmation,
                  comparisons: dict[str, Comparison], policy: Policy) -> dict[str, str]:
    """The verdicts near the level, taken again on fresh runs before they
    stand (``replicate_runs`` > 0), each with the direction the fresh runs
    test: the confirmed components whose deciding p-value is above
    ``replicate_above``, the named components dismissed below
    ``retake_below`` whose shift is big enough to matter, and those dismissed
    because they moved the other way (one-sided p < ``reverse_below`` that
    way), in that direction."""
    if policy.replicate_runs <= 0:
        return {}
    big = set(big_enough(pending, comparisons, policy, state))
    again = {}
    for n, yes in pending.decided.items():
        if n not in comparisons or n in pending.announced:
            continue
        p = comparisons[n].p_value
        if yes and p > policy.replicate_above or \
                not yes and p < policy.retake_below and n in big:
            again[n] = pending.components[n]
        elif not yes and 1 - p < policy.reverse_below and n in big:
            again[n] = _other_way(pending.components[n])
    return again


def _other_way(direction: str) -> str:
    return "improvement" if direction == "regression" else "regression"


def _replicated(state: ScenarioState, pending: Confirmation, scenario: str,
                policy: Policy) -> tuple[ScenarioState, list[ev.Event]]:
    """The replication look is in: the deciding look is taken again on the
    runs it had (the fold is pure, so it decides as it did), and a component
    taken again is confirmed only if the fresh runs alone show it moved its
    way (paired, one-sided p < ``replicate_alpha``), whichever way the
    deciding look went."""
    before, after, per_side = pending.replicate_from
    then = dataclasses.replace(pending, before=pending.before[:before],
                               after=pending.after[:after], runs_per_side=per_side,
                               components=dict(pending.components_then),
                               decided=dict(pending.decided_then), replicating={},
                               replicate_from=[], components_then={}, decided_then={})
    look = _look(state, then, scenario, policy)
    assert not isinstance(look, SecondBatch), "the deciding look was a final one"
    pending.components, pending.decided = then.components, then.decided
    for n, direction in pending.replicating.items():
        try:
            fresh = compare_paired([[r[n] for r in pending.before[before:] if n in r]],
                                   [[r[n] for r in pending.after[after:] if n in r]])
        except ValueError:
            continue  # its runs failed: the verdict stands on the runs it had
        fresh = one_sided(fresh, direction)
        if (fresh.p_value < policy.replicate_alpha) != pending.decided[n]:
            pending.decided[n] = not pending.decided[n]
            pending.components[n] = direction  # taken the other way: confirmed that way
            look[0][n] = fresh
    return _conclude(state, pending, scenario, policy, *look)


def _conclude(state: ScenarioState, pending: Confirmation, scenario: str, policy: Policy,
              comparisons: dict[str, Comparison], unnamed: dict[str, Comparison],
              moved: dict[str, Comparison], final: bool) -> tuple[ScenarioState, list[ev.Event]]:
    """The verdicts; then each tested series goes on, follow-ups are raised
    and the commits held meanwhile are tested."""
    del state.confirming[pending.detection_id]
    live = being_confirmed(state, holding=False)
    state.unheld = [k for k in state.unheld if k in live]
    # follow-ups start where this confirmation would start now: not from before
    # a change confirmed since it began, which would come back as a follow-up
    since = since_change(state, pending.good_commit, pending.commit)
    known = {n: at for n, at in _known(state, pending).items() if n not in pending.announced}
    for n in known:
        pending.decided[n] = False
    _remember(state, pending)
    changed = {n for n, yes in pending.decided.items() if yes} | set(known)
    rebase(state, pending, policy, changed)
    # a commit whose candidate is dismissed outright is an unchanged commit:
    # its fresh runs join the history its thresholds are calibrated on
    totals = [r[TOTAL] for r in pending.after if TOTAL in r]
    accepted = accept_commit(state, scenario, totals, policy) \
        if not changed and not pending.follow_up and totals else []
    follow_ups = _follow_ups(state, dataclasses.replace(pending, good_commit=since),
                             {n: cmp for n, cmp in unnamed.items() if n not in moved},
                             scenario, policy) if final else []
    state, released = release(state, scenario, policy)
    rest = dataclasses.replace(pending, components={
        n: d for n, d in pending.components.items() if n not in pending.announced})
    decided = _unignored(state, verdicts(rest, scenario, comparisons, policy, known))
    return state, decided + follow_ups + released + accepted


def _unignored(state: ScenarioState, decided: list[ev.Event]) -> list[ev.Event]:
    """A confirmation's verdicts less the alerts of components the team
    ignores: such a component may be confirmed beside a named one, and its
    finding is kept, but its alert is not sent."""
    return [e for e in decided if not (isinstance(e, ev.Alert) and e.component in ignored(state))]


def _announce(state: ScenarioState, pending: Confirmation, scenario: str, policy: Policy,
              clear: dict[str, Comparison]) -> list[ev.Event]:
    """The verdicts of the named components the first look confirmed clearly
    (``clear``), while the second batch runs for the others: a finding and an
    alert each (its bisect starts on the finding), and the change remembered
    at once, so no other confirmation alerts it again. One already confirmed
    in the range (``_known``) waits for the end, which dismisses it as known.
    The series stay held until the end, as every tested series does."""
    now = {n: cmp for n, cmp in clear.items() if n not in _known(state, pending)}
    if not now:
        return []
    pending.announced, pending.background = sorted(now), True
    first = dataclasses.replace(pending, components={n: pending.components[n] for n in now},
                                decided={n: True for n in now})
    _remember(state, first)
    return _unignored(state, verdicts(first, scenario, now, policy, {}))


def _known(state: ScenarioState, c: Confirmation) -> dict[str, str]:
    """The components ``c`` confirmed whose change, same direction, was already
    confirmed in its range (after its good commit, up to its commit): the same
    change seen again by a confirmation that began before that verdict, which
    would alert and bisect it a second time. Component -> the commit it was
    confirmed at."""
    out = {}
    for n, yes in c.decided.items():
        at, direction = state.changes.get(n, ["", ""])
        if yes and at and direction == c.components[n] and \
                position(state, c.good_commit) < position(state, at) \
                <= position(state, c.commit):
            out[n] = at
    return out


def _remember(state: ScenarioState, c: Confirmation) -> None:
    """The scenario's latest confirmed change, and each component's."""
    later = position(state, c.commit)
    for n, yes in c.decided.items():
        if yes and later >= position(state, state.changes.get(n, [""])[0]):
            state.changes[n] = [c.commit, c.components[n]]
    if any(c.decided.values()) and later > position(state, state.last_change):
        state.last_change = c.commit


def _follow_ups(state: ScenarioState, c: Confirmation, comparisons: dict[str, Comparison],
                scenario: str, policy: Policy) -> list[ev.Event]:
    """Components the candidate did not name (``comparisons``: the final
    look's, of those it did not confirm) that the final look shows moved
    (p < ``follow_up_p``, big enough), each a candidate
    of its own, confirmed on fresh runs as a named one: one-sided, and not
    sharing a level with the others. These runs chose it, so they cannot
    confirm it; the fresh ones decide alone, at the confirmation's level,
    instead of a bar shared by every component the candidate did not name."""
    out: list[ev.Event] = []
    for n in big_enough(c, comparisons, policy, state):
        if n in ignored(state):
            continue
        cmp = comparisons[n]
        detection_id = ev.derived_id("detection", c.detection_id, n)
        if cmp.p_value >= policy.follow_up_p or detection_id in state.confirming:
            continue
        direction = "regression" if cmp.delta_log > 0 else "improvement"
        state.confirming[detection_id] = follow_up = dataclasses.replace(
            c, detection_id=detection_id, components={n: direction},
            runs_per_side=policy.first_look_runs, before=[],
            after=[], failed=0, warmups=0, decided={}, looked=[], follow_up=True,
            background=any(c.decided.values()))
        out.append(ev.CandidateDetected(
            detection_id=detection_id, scenario=scenario, repo=c.repo, component=n,
            commit=c.commit, good_commit=c.good_commit, direction=direction,  # type: ignore[arg-type]
            hardware_id=c.hardware_id, hardware_class=c.hardware_class, branch=c.branch,
            effect_ms=cmp.effect_ms,
            effect_pct=cmp.effect_pct, ci_low_pct=cmp.ci_low_pct, ci_high_pct=cmp.ci_high_pct,
            p_value=cmp.p_value, threshold=policy.follow_up_p, producer="ttfb-detector"))
        out += confirm_runs(follow_up, scenario, follow_up.runs_per_side,
                             warmup=policy.confirm_warmup)
    return out


def _record(c: Confirmation, event: ev.RunCompleted | ev.RunFailed) -> None:
    if event.arm == WARMUP:
        c.warmups += 1
    elif isinstance(event, ev.RunFailed):
        c.failed += 1
    else:
        row: dict[str, float] = {str(k): v for k, v in event.components.items()}
        row[TOTAL] = event.ttfb_ms
        (c.before if event.arm == "before" else c.after).append(row)

