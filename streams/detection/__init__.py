"""Detection and confirmation as a pure fold over measurement events.

``decide(state, event, policy)`` takes one scenario's state and one event
from the measurements topic and returns the new state and the events to
emit. No Kafka here: the Faust agent in ``streams.decisions`` decodes, calls
this, signs the commands and sends; the state lives in a Faust table (and its
changelog) keyed by scenario.

The modules, in the order an event meets them: ``fold`` (routing),
``screen`` (monitoring runs, candidates, held commits), ``confirm`` (the
looks and the verdict), ``compare`` (a look's comparisons), ``verdicts``
(the events a verdict emits), ``runs`` (the runs a confirmation asks for),
``state`` and ``policy``; ``calibration`` answers off the fold's path.

* Monitoring runs (purpose monitor/demo) accumulate per commit; when a
  commit's runs are all in, every component series and the total are tested
  (``ttfb.stats.detector``); Benjamini–Hochberg across them only when
  ``Policy.fdr_q`` is set (by default not: every candidate is re-tested on
  fresh runs). Candidates become ``CandidateDetected`` plus interleaved
  confirmation commands (before, after, after, before, ...).
* Confirmation runs (purpose confirm, correlated by detection id) are decided
  on the fresh data only: ``RegressionConfirmed`` / ``ImprovementConfirmed``
  per confirmed component, with an ``Alert``, or ``DetectionDismissed``. The
  confirmation is group-sequential with two looks: after the first batch a
  component is confirmed at a strict level or dismissed for futility (wrong
  direction or no hint of an effect), and only an undecided one pays for the
  second batch, tested at the rest of the level (0.001 + 0.009 = 0.01,
  Bonferroni over the looks, so the overall false-alarm rate stays <= 0.01).
  The first look's runs are one block of a two-sample test
  (``compare_blocked``). The final look pairs each run with its neighbour of
  the other side, within each look (``compare_paired``): the machine's level
  wanders from run to run, by more than most shifts, and neighbours share it.
* Calibration: at set history lengths the fold emits ``CalibrationRequested``;
  ``calibration_answer`` (run by the calibration agent, off this path) turns
  it into ``ThresholdCalibrated``, which the fold applies as its operating
  point.
* Duplicates change nothing: recent event ids are remembered, and runs of a
  commit already tested are ignored.
"""

from streams.detection.calibration import calibration_answer
from streams.detection.fold import decide
from streams.detection.policy import (
    MAX_PENDING,
    MONITOR_PURPOSES,
    REMEMBER_IDS,
    TOTAL,
    WARMUP,
    Policy,
)
from streams.detection.state import Confirmation, ScenarioState, from_json, to_json

__all__ = ["MAX_PENDING", "MONITOR_PURPOSES", "REMEMBER_IDS", "TOTAL", "WARMUP", "Confirmation",
           "Policy", "ScenarioState", "calibration_answer", "decide", "from_json", "to_json"]
