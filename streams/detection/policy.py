"""What the detector decides by: its constants and ``Policy``."""

from __future__ import annotations

from dataclasses import dataclass

from ttfb.stats import DetectorConfig
from ttfb.stats.remade import Remade

MONITOR_PURPOSES = ("monitor", "demo")

TOTAL = "ttfb"

WARMUP = "warmup"  # the arm label of a confirmation's discarded runs

REMEMBER_IDS = 512  # with the commits in ``arrivals``, what makes replays harmless

# commits whose runs have not all arrived; the oldest beyond this are dropped
# (their runs were lost): measurements for commits that never complete bound nothing
MAX_PENDING = 512


@dataclass(frozen=True)
class Policy(Remade):
    detector: DetectorConfig = DetectorConfig(
        back=12, fore=1, min_back=1, min_back_values=4, alpha=0.05, k=1.0, min_effect_pct=3.0,
        conservative_df=False,  # every candidate is confirmed by fresh runs
        # a commit whose 3 runs differ at p < 0.2 is held out of the baseline and
        # tested again with the next ones: with 3 runs a +15 % shift can miss
        # p < 0.05 at its own commit, and once in the baseline it never shows
        hold_p=0.2)
    min_effect_ttfb_pct: float = 1.5  # a component must move >= this share of TTFB
    # None: no false-discovery control across the series at the candidate stage.
    # Every candidate is confirmed on fresh interleaved runs (BH at 0.01 there),
    # and a futile one costs 4 + 4 runs, while BH over the 8 series tested per
    # commit loses a large shift of one component seen on 3 runs.
    fdr_q: float | None = None
    confirm_runs: int = 8  # per side, at most
    confirm_alpha: float = 0.01  # overall: spent over the looks below
    confirm_first_runs: int = 4  # per side, at the first look
    confirm_first_alpha: float = 0.001
    # at the first look, a named component's p above this dismisses it (one-sided:
    # the wrong sign is above 0.5)
    futility_p: float = 0.25
    # at the first look, another component this clear (its own p, no correction:
    # it buys runs, the final look decides) earns the second batch
    promising_p: float = 0.2
    # a named component the first look confirms at a one-sided p at or below
    # this is announced at once (its finding, alert and bisect), while the
    # second batch runs for the components still open: a clear change's alert
    # does not wait on another component's runs. Its verdict is final, as one
    # this clear is not taken again (``replicate_above``); 0 turns it off
    announce_at_first_p: float = 1e-4
    # at the final look, another component this clear (its own p, two-sided)
    # that the final look's level did not confirm becomes a candidate of its
    # own: named, so tested one-sided and alone, on runs of its own
    follow_up_p: float = 0.05
    # the final look tests the differences of neighbouring runs (False: the
    # two sides' samples, each look a block), see ``compare_paired``
    paired_final: bool = True
    # a series being confirmed holds the runs of later commits until the
    # verdict, up to this many commits; past that its confirmation is taken
    # for stalled (its runs lost, an agent down) and the series goes on
    # without it, testing the held commits in order
    hold_commits: int = 4
    # a verdict whose deciding p-value is above ``replicate_above`` is taken
    # again on ``replicate_runs`` more runs a side, which decide alone (paired,
    # one-sided in the verdict's direction, p < ``replicate_alpha``): on a
    # machine noisier than the model, verdicts near the level include changes
    # that fresh runs do not bear out, while real ones are decided far below
    # it or are clear again. A null verdict passes it 5 % of the time
    replicate_above: float = 1e-4
    replicate_runs: int = 8
    replicate_alpha: float = 0.05
    # the other way too: a named component the deciding look dismissed at a
    # one-sided p below ``retake_below``, its shift big enough to matter, is
    # taken again on ``replicate_runs`` more runs a side, which decide alone
    # (confirmed at p < ``replicate_alpha``). A dismissal just above the level
    # was otherwise final, and folded the new level into the baseline, so the
    # change was lost for good on a machine noisier than the model. A null
    # candidate lands there ~4 % of the time and passes the fresh runs 5 % of
    # that; 0 turns it off
    retake_below: float = 0.05
    # and the opposite way: a named component whose fresh runs moved against
    # the candidate, one-sided p < ``reverse_below`` that way (the screen read
    # a slow moment of the suspect's monitoring runs as a regression where
    # the commit made it faster), its shift big enough to matter, is taken
    # again on ``replicate_runs`` more runs a side in that direction and
    # confirmed that way at p < ``replicate_alpha`` on those alone. A
    # dismissal was final, and folded the change into the baseline unseen.
    # A null candidate lands there 1 % of the time and passes 5 % of that; 0
    # turns it off
    reverse_below: float = 0.01
    # each look starts with this many runs of its first side, not counted: the
    # look's first counted run then follows a run of its own side, as every
    # other run's predecessor is balanced across the sides (see confirm_runs)
    confirm_warmup: int = 1
    dashboard_url: str = "http://127.0.0.1:8501"
    # calibration: budget of confirmed false alarms a week, at this many tests a week
    budget_per_week: float = 1.0
    tests_per_week: float = 24.0 * 7 * 8  # a commit an hour, 7 components + the total
    calibrate_at: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
    calibration_trials: int = 12
    max_candidate_rate: float = 0.01  # each candidate costs 2 x confirm_runs runs

    @property
    def first_look_runs(self) -> int:
        """Runs per side of a confirmation's first look."""
        return min(self.confirm_first_runs, self.confirm_runs)
