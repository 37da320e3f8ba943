"""The bisect coordinator as a pure fold: confirmed regression -> culprit commit.

1. ``RegressionConfirmed`` or ``ImprovementConfirmed`` -> ``CommitRangeRequested``
   (an agent lists good..bad); one bisect per confirmed component. A
   second component of the same change follows the first's bisect: it takes
   that bisect's runs (each carries every component) and starts its own
   search over the range when that one's ends.
2. ``CommitRangeListed`` -> endpoint runs, interleaved (good, bad, good, ...).
3. Probabilistic (Bayesian) bisection: a posterior over the culprit's
   position, from every run of every commit tested so far against the
   endpoints' distributions (normal on the log scale, sigma pooled and taken
   at its upper 90 % bound). Each batch of ``batch`` runs goes to the commit
   at the posterior median, so one batch classifies a commit as like-good or
   like-bad as far as the evidence goes, and a misleading batch is corrected
   by later ones instead of sending the search down the wrong half for good.
   A batch is a block: one run of each endpoint around it (good, mid, mid,
   bad, then bad, mid, mid, good), and the model gives each block a level of
   its own (a random intercept whose variance the endpoints' runs show), so
   a machine whose speed wanders between batches cannot make a commit look
   like the other endpoint (``BisectPolicy.paired``).
   The search stops as soon as one commit holds ``confidence`` of the
   posterior (or at a run budget, with the likeliest commit).
4. A commit whose workflow fails is skipped (like ``git bisect skip``).
5. When the culprit still differs from the bad endpoint (or its parent from
   the good one) by a significant part of the effect, within a block of its
   own, a second search over the rest of the range reports the second
   culprit.
6. Reproduction: before a culprit is named, the bisect's own runs of the
   two endpoints (blocks after the confirmation's; a short range's search
   has few, a commit and its parent none, so it tops them up, 4 of each at a
   time, to 12) must bear the confirmed change out (``verdict.reproduction``).
   When they do not, ``BisectCompleted`` says so (``reproduced`` false, no
   culprit) and the alert is retracted (status ``not_reproduced``), instead
   of a best guess blaming a commit for a change nobody can measure.
7. One profiled run of the culprit and of its parent explain the regression
   (functions whose cumulative time grew most); then ``BisectCompleted``.

Duplicated events and commands do no harm: results are counted per run id.

The modules: ``fold`` (routing), ``search`` (the batches and the steps that
end a search), ``model`` (the posterior and the steps between commits, from
``ttfb.stats.changepoint``), ``verdict`` (reproduction, a second culprit,
``BisectCompleted``), ``state`` and ``policy``.
"""

from streams.bisect.fold import decide
from streams.bisect.policy import BisectPolicy
from streams.bisect.state import Bisect, BisectBook, from_json, to_json
from streams.bisect.verdict import attributed_alert, grown

__all__ = ["Bisect", "BisectBook", "BisectPolicy", "attributed_alert", "decide",
           "from_json", "grown", "to_json"]
