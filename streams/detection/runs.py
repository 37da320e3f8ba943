"""The runs a confirmation asks for."""

from __future__ import annotations

from streams.detection.policy import WARMUP
from streams.detection.state import Confirmation
from ttfb import events as ev
from ttfb.stats import counterbalanced


def confirm_runs(c: Confirmation, scenario: str, per_side: int,
                  first: str = "before", warmup: int = 0) -> list[ev.Event]:
    """Interleaved and counterbalanced (before, after, after, before, ...).

    The second look starts with the other side (after, before, before, ...):
    the first runs of a look are slower (other scenarios ran just before:
    imports +3-6 % on runs 1-3 on a 2-core machine), and a look is a block of
    the test, so the two looks' slow starts cancel in the pooled shift.

    ``warmup`` runs of the first side go ahead, labelled ``WARMUP`` and not
    counted. Whatever a run leaves for the next (a carry-over, which may
    differ by side) then reaches each pair of neighbours, (B, A) or (A, B),
    from the same side, and cancels within the pair; without them the look's
    first run follows whatever ran before the look (often the suspect's own
    monitoring runs), and its pair is biased by the difference.

    A confirmation whose change is already told (``Confirmation.background``)
    asks for its runs behind the agents' monitoring."""
    pair = (("before", c.good_commit), ("after", c.commit))
    order = counterbalanced(per_side, first=0 if first == "before" else 1)
    return [ev.RunRequested(
        scenario=scenario, repo=c.repo, commit=pair[side][1], branch=c.branch, runs=1,
        purpose="confirm", arm=ev.Arm(label=label), correlation_id=c.detection_id,
        hardware_class=c.hardware_class, background=c.background, producer="ttfb-detector")
        for side, label in [(order[0], WARMUP)] * warmup + [(s, pair[s][0]) for s in order]]
