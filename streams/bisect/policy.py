"""What a bisect decides by."""

from __future__ import annotations

from dataclasses import dataclass

from ttfb import events as ev
from ttfb.stats.remade import Remade


@dataclass(frozen=True)
class BisectPolicy(Remade):
    endpoint_runs: int = 4  # each endpoint's first runs; every batch adds one of each
    batch: int = 2
    confidence: float = ev.BISECT_STOP  # posterior mass on one commit that ends a search
    runs_per_bit: int = 12  # run budget of a search: this many per halving of the range
    alpha: float = 0.005  # level of the test for a second, separable culprit
    # runs of the culprit, its parent and each endpoint for that test, on top
    # of the search's own: 0 reads the blocks the search ran them in beside
    # the endpoints (as right on simulated ranges, four runs fewer)
    residual_runs: int = 0
    second_culprit_share: float = 0.25  # the rest must be >= this share of the effect
    # and at least this large: a rest the detector would not call a change
    # (its min_effect_pct) is not worth a second search
    second_culprit_min_pct: float = 3.0
    # prior weight of a commit that changes no file the scenario imports or reads (the
    # agent's hint, as the scheduler's test selection): the search looks at the
    # others first, but a clear batch overturns it (one batch of a 5 % shift at
    # CV 3 % has a likelihood ratio in the thousands), so a culprit outside the
    # scenario's files (one a native tokenizer reads, say) is still found
    unaffected_prior: float = 0.1
    # each batch runs beside one run of each endpoint, and each batch has a
    # level of its own in the model: a machine's level moves 15 % in minutes,
    # and a batch compared with endpoint runs taken at another time can take
    # an ordinary commit for the culprit
    paired: bool = True
    # a run beyond this many robust deviations of the likeliest fit's
    # residuals weighs less (Huber): a machine's hiccup of 30-40 % on one run
    # inflated sigma for all and kept the posterior from concentrating
    huber: float = 2.0
    # a confirmation is a test at 1 %, and a machine is noisier than the model:
    # a small change confirmed near the level may not show on more runs of the
    # same endpoints, and a best guess would blame an ordinary commit for it.
    # The change must still show on the
    # bisect's own runs of the endpoints (see ``reproduction``), which it
    # tops up, ``reproduce_min_runs`` each at a time, to ``reproduce_max_runs``
    reproduce_alpha: float = 0.05
    reproduce_odds: float = 10.0
    reproduce_min_effect_pct: float = 3.0  # the detector's min_effect_pct
    reproduce_min_runs: int = 4
    reproduce_max_runs: int = 12
    # a change its fresh runs show clearly stands sooner: from this many a
    # side, at this level (one-sided); a marginal one waits for
    # ``reproduce_min_runs``, as before (0 turns it off)
    reproduce_early_runs: int = 2
    reproduce_early_alpha: float = 0.005
    # between a search's batches, on the endpoint runs each batch is run
    # beside: where they favour no step over the smallest one by these odds,
    # the change is not there and the bisect ends, retracted, rather than
    # after a search that spends its budget looking for it. Real changes pay
    # no run for it; the odds are above ``reproduce_odds`` as the search
    # looks after every batch (0 turns it off)
    retract_in_search_odds: float = 30.0
    # a search names a step only once the bisect has run both its sides (the
    # culprit and its parent) itself, beside the endpoints: a step that stands
    # on monitoring runs alone, taken at moments of their own on a machine
    # whose level wanders, can sit between two ordinary commits
    measured_boundary: bool = True
    explain: bool = True
    # profiled runs of the culprit and of its parent: an entry counts at its
    # least over a side's runs, so a module one run happened to load lazily,
    # or a slow moment of one run, is not what grew
    explain_runs: int = 2
