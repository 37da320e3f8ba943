"""The search: each batch at the posterior median until one commit holds
enough of the posterior, then the steps that end a bisect."""

from __future__ import annotations

import math

import numpy as np

from streams.bisect.model import fresh_runs, posterior
from streams.bisect.policy import BisectPolicy
from streams.bisect.state import Bisect, batch_runs, received, request_runs, spent
from streams.bisect.verdict import (
    completed,
    odds_against,
    reproduction,
    reproduction_runs,
    second_search,
)
from ttfb import events as ev


def search_budget(b: Bisect, policy: BisectPolicy) -> int:
    width = max(2, b.search_bad - b.search_good)
    return policy.runs_per_bit * math.ceil(math.log2(width)) + policy.batch


def search_runs(b: Bisect) -> int:
    return sum(b.requested.get(b.commits[i], 0) for i in range(b.search_good + 1, b.search_bad))


def next_step(b: Bisect, policy: BisectPolicy) -> list[ev.Event]:
    """Probabilistic bisection: the next batch goes to the posterior median; the
    search ends when one position holds ``confidence`` of the posterior and
    the bisect has run it and its parent itself (``measured_boundary``), or,
    at the run budget, with the likeliest position and its probability."""
    while True:
        candidates, post, best = boundary_posterior(b, policy)
        sure = post[best] >= policy.confidence
        out_of_runs = search_runs(b) >= search_budget(b, policy)
        unmeasured = unmeasured_boundary(b, candidates[best]) \
            if sure and policy.measured_boundary and not out_of_runs else []
        if unmeasured:
            # the likeliest step stands on runs handed over (monitoring runs,
            # each commit's taken at a moment of its own): measure its two
            # sides beside the endpoints before naming it, as ``git bisect``
            # names a first bad commit whose parent it tested good
            chosen = unmeasured[0]
        elif sure or out_of_runs:
            if b.current >= 0:
                close_step(b, candidates, post)
            if b.culprits and not sure:
                # a second search at its budget names nothing: a commit it is
                # not sure of would stand beside the culprit (and cut the
                # bisect's confidence), where it may be the noise of a moment
                return explain_or_end(b, policy)
            b.confidence *= float(post[best])
            b.hi = candidates[best]
            b.lo = parent_of(b, b.hi)
            return culprit_found(b, policy)
        else:
            cdf = np.cumsum(post)
            open_ = [i for i in range(b.search_good + 1, b.search_bad)
                     if b.commits[i] not in b.skipped]
            # testing commit i tells P(culprit <= i): aim where that is closest to 1/2
            middle = (b.search_good + b.search_bad) / 2
            chosen = min(open_, key=lambda i: (round(abs(cdf_at(candidates, cdf, i) - 0.5), 9),
                                               abs(i - middle), i))
        if chosen != b.current and b.current >= 0:
            close_step(b, candidates, post)
        b.current = chosen
        commit = b.commits[chosen]
        if b.failed.get(commit, 0) >= policy.batch and not b.samples.get(commit):
            b.skipped.append(commit)  # its workflow fails: like ``git bisect skip``
            b.steps.append({"commit": commit, "runs": received(b, commit),
                            "decision": "skipped", "mean_ms": 0.0})
            b.current = -1
            continue
        after, last, mass = likely_range(b, candidates, post)
        if b.max_runs and spent(b) + policy.batch + 2 * policy.paired > b.max_runs:
            # the next batch would pass the budget: say where the culprit most
            # likely is instead of asking for more
            close_step(b, candidates, post)
            b.phase = "done"
            if b.culprits:  # a second search: the first culprit stands
                return [completed(b)]
            return [completed(b, inconclusive=(after, last, mass))]
        batch = batch_runs(b, commit, policy)
        return batch + [ev.BisectProgressed(
            bisect_id=b.bisect_id, detection_id=b.detection_id, scenario=b.scenario,
            component=b.component, runs_spent=spent(b),
            max_runs=b.max_runs, candidates=len(candidates),
            likeliest=b.commits[candidates[best]], probability=round(float(post[best]), 4),
            likely_after=after, likely_last=last, likely_mass=round(mass, 4),
            producer="ttfb-bisect")]


def boundary_posterior(b: Bisect, policy: BisectPolicy) -> tuple[list[int], np.ndarray, int]:
    """The posterior over the culprit's position and its likeliest one. With
    ``measured_boundary``, once the bisect has run both sides of the
    likeliest step itself, those two commits are read by its own runs alone
    too: where that moves the step (their monitoring runs, taken at moments
    of their own, had put it there), the search goes on from that reading,
    and the same holds for the new step's sides."""
    measured: frozenset[int] = frozenset()
    candidates, post = posterior(b, policy.unaffected_prior, policy.paired, policy.huber)
    best = int(np.argmax(post))
    while policy.measured_boundary and not unmeasured_boundary(b, candidates[best]):
        sides = {parent_of(b, candidates[best]), candidates[best]}
        if sides <= measured:
            break
        measured |= sides
        _, own = posterior(b, policy.unaffected_prior, policy.paired, policy.huber, measured)
        if int(np.argmax(own)) == best:
            break
        post, best = own, int(np.argmax(own))
    return candidates, post, best


def parent_of(b: Bisect, hi: int) -> int:
    """The commit before ``hi`` the search compares it with: the nearest one
    not skipped, or the search's good endpoint."""
    return max(i for i in range(b.search_good, hi)
               if i == b.search_good or b.commits[i] not in b.skipped)


def unmeasured_boundary(b: Bisect, hi: int) -> list[int]:
    """Of the step before ``hi`` (its parent, then ``hi``), the commits the
    bisect has no run of its own of (only runs handed over), the search's
    endpoints aside."""
    return [i for i in (parent_of(b, hi), hi)
            if b.search_good < i < b.search_bad
            and b.requested.get(b.commits[i], 0) + b.adopted.get(b.commits[i], 0)
            <= b.failed.get(b.commits[i], 0)]


def likely_range(b: Bisect, candidates: list[int], post: np.ndarray,
                 mass: float = 0.9) -> tuple[str, str, float]:
    """The fewest consecutive candidates holding ``mass`` of the posterior:
    (the commit before the first, the last, the mass they hold)."""
    cdf = np.concatenate([[0.0], np.cumsum(post)])
    best = (0, len(candidates) - 1)
    j = 0
    for i in range(len(candidates)):
        j = max(j, i)
        while j < len(candidates) - 1 and cdf[j + 1] - cdf[i] < mass:
            j += 1
        if cdf[j + 1] - cdf[i] >= mass - 1e-12 and j - i < best[1] - best[0]:
            best = (i, j)
    first, last = best
    return (b.commits[candidates[first] - 1], b.commits[candidates[last]],
            float(cdf[last + 1] - cdf[first]))


def cdf_at(candidates: list[int], cdf: np.ndarray, i: int) -> float:
    k = int(np.searchsorted(candidates, i, side="right")) - 1
    return float(cdf[k]) if k >= 0 else 0.0


def close_step(b: Bisect, candidates: list[int], post: np.ndarray) -> None:
    """Record the step that just ended at ``b.current``: its runs and its side."""
    commit = b.commits[b.current]
    values = b.samples.get(commit, [])
    runs = received(b, commit) - sum(s["runs"] for s in b.steps if s["commit"] == commit)
    if runs <= 0 or not values:
        return
    p_bad = cdf_at(candidates, np.cumsum(post), b.current)
    b.steps.append({"commit": commit, "runs": runs,
                    "decision": "bad" if p_bad >= 0.5 else "good",
                    "mean_ms": sum(values) / len(values)})


def judge(b: Bisect, policy: BisectPolicy) -> list[ev.Event]:
    try:
        if retracted_early(b, policy):
            return [completed(b)]
        return next_step(b, policy)
    except ValueError:  # endpoints failed: no baseline to compare against
        b.phase = "done"
        return [completed(b, error="endpoint runs failed; cannot bisect")]


def retracted_early(b: Bisect, policy: BisectPolicy) -> bool:
    """Whether the first search ends here, its change retracted: the
    endpoint runs its batches were run beside are as many as the closing
    check needs, and they favour no step over the smallest one by
    ``retract_in_search_odds`` (``odds_against``). Only a search started
    from a confirmation's runs (which were chosen by their significance) is
    cut short so: one asked for by hand goes on, its change checked at the
    end; so does a second search, with a culprit standing."""
    if not policy.retract_in_search_odds or b.culprits or not any(b.preloaded.values()) or \
            min(fresh_runs(b)) < policy.reproduce_min_runs or \
            odds_against(b, policy) < policy.retract_in_search_odds:
        return False
    if b.current >= 0:
        candidates, post, _ = boundary_posterior(b, policy)
        close_step(b, candidates, post)
    b.reproduced, b.phase = False, "done"
    return True


def culprit_found(b: Bisect, policy: BisectPolicy) -> list[ev.Event]:
    b.culprits.append(b.hi)
    if len(b.culprits) == 1 and (b.lo > 0 or b.hi < len(b.commits) - 1):
        # a block for the test for a second, separable culprit: the culprit's
        # parent beside the good endpoint, the culprit beside the bad one
        # (good, parent, culprit, bad, then the other way round)
        order = list(dict.fromkeys(
            c for c in (b.commits[0], b.commits[b.lo], b.commits[b.hi], b.commits[-1])
            if b.failed.get(c, 0) < policy.batch))
        b.block += 1
        out: list[ev.Event] = []
        for r in range(policy.residual_runs):
            for c in order if r % 2 == 0 else order[::-1]:
                out += request_runs(b, c, 1)
                if c not in (b.commits[0], b.commits[-1]):  # the parent or the culprit
                    b.topped[c] = b.topped.get(c, 0) + 1
        if out:
            b.phase = "residual"
            return out
    return conclude(b, policy)


def conclude(b: Bisect, policy: BisectPolicy) -> list[ev.Event]:
    for c, runs in b.topped.items():  # the top-up runs are steps too
        values = b.samples.get(c, [])
        b.steps.append({"commit": c, "runs": runs,
                        "decision": "bad" if c == b.commits[b.hi] else "good",
                        "mean_ms": sum(values) / len(values) if values else 0.0})
    b.topped = {}
    if len(b.culprits) == 1:
        verdict = reproduction(b, policy)
        if verdict == "retract":
            b.reproduced, b.phase = False, "done"
            return [completed(b)]
        if verdict == "more":
            b.phase = "reproduce"
            return reproduction_runs(b, policy)
    if len(b.culprits) == 1:
        second = second_search(b, policy)
        if second is not None:  # a second commit adds a separable part of the regression
            b.phase = "search"
            b.search_good, b.search_bad = second
            b.lo, b.hi = second
            b.current = -1
            return judge(b, policy)
    return explain_or_end(b, policy)


def explain_or_end(b: Bisect, policy: BisectPolicy) -> list[ev.Event]:
    """Profiled runs of the first culprit and its parent (those the bisect
    lacks: one that follows another may have them, or wait for them), or
    the result."""
    if policy.explain and b.culprits[0] > 0:
        b.phase = "explain"
        parent, culprit = b.commits[b.culprits[0] - 1], b.commits[b.culprits[0]]
        if b.changed_at and b.changed_at != culprit:
            b.changed.clear()  # what another culprit changed
            b.changed_files.clear()
        out = [r for c in (parent, culprit) for r in request_runs(
            b, c, max(0, policy.explain_runs - b.explained.get(c, 0) - b.promised.get(c, 0)),
            "explain", True)]
        if out or any(b.promised.get(c) for c in (parent, culprit)):
            return out
    b.phase = "done"
    return [completed(b)]
