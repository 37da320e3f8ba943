"""What the streams decide: candidates, verdicts, calibrations, bisects, alerts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from ttfb.events.base import Direction, Event, Model, new_id


class WholeEffect(Model):
    """TTFB as a whole on the runs a component's change was measured on: a
    change that moves time from one component to another leaves the job no
    slower to start. All 0 where it was not measured (events written
    before it was)."""

    ttfb_effect_ms: float = 0.0
    ttfb_effect_pct: float = 0.0
    ttfb_ci_low_pct: float = 0.0  # 95 % CI of ttfb_effect_pct
    ttfb_ci_high_pct: float = 0.0

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> WholeEffect:
        """Its fields out of an event's dump or a store row (0 where absent)."""
        return cls(**{k: float(row.get(k) or 0.0) for k in WholeEffect.model_fields})

    def whole(self) -> dict[str, float]:
        """Its fields alone, to pass on to another event."""
        return {k: getattr(self, k) for k in WholeEffect.model_fields}

    @property
    def measured(self) -> bool:
        return bool(self.ttfb_ci_low_pct or self.ttfb_ci_high_pct)

    def whole_text(self, kind: str) -> str:
        """One line for people ('' where it was not measured): where the CI
        holds 0, the job is not measurably slower (or faster) to start, the
        time moved between components or is lost in their noise."""
        lo, hi = self.ttfb_ci_low_pct, self.ttfb_ci_high_pct
        if not self.measured:
            return ""
        text = (f"TTFB as a whole {self.ttfb_effect_pct:+.1f}% ({self.ttfb_effect_ms:+,.0f} ms),"
                f" 95% CI [{lo:+.1f}%, {hi:+.1f}%]")
        if lo <= 0 <= hi:
            text += ": not measurably " + ("slower" if kind == "regression" else "faster") + \
                " to start"
        return text


class Finding(Event, WholeEffect):
    detection_id: str = Field(default_factory=new_id)
    scenario: str
    repo: str
    component: str
    hardware_id: str = ""
    hardware_class: str = ""
    branch: str = "main"
    commit: str
    good_commit: str = ""
    direction: Direction
    effect_ms: float = 0.0
    effect_pct: float = 0.0
    ci_low_pct: float = 0.0
    ci_high_pct: float = 0.0
    p_value: float = 1.0
    threshold: float = 0.0
    runs_spent: int = 0
    evidence_before: list[float] = Field(default_factory=list, description="fresh runs, ms")
    evidence_after: list[float] = Field(default_factory=list)
    # the component's monitoring runs of the commits its series held when the
    # change was found (commit -> runs, ms), each commit's taken at a time of
    # its own: a bisect of the range starts from them
    monitored: dict[str, list[float]] = Field(default_factory=dict)
    # a bisect this finding starts ends inconclusive once it has asked for this
    # many runs (0: the bisect policy's own budget)
    bisect_max_runs: int = Field(0, ge=0, le=100_000)


class CandidateDetected(Finding):
    type: Literal["CandidateDetected"] = "CandidateDetected"


class RegressionConfirmed(Finding):
    type: Literal["RegressionConfirmed"] = "RegressionConfirmed"


class ImprovementConfirmed(Finding):
    type: Literal["ImprovementConfirmed"] = "ImprovementConfirmed"


class DetectionDismissed(Finding):
    type: Literal["DetectionDismissed"] = "DetectionDismissed"
    known_at: str = Field("", description="the fresh runs show a change of this component "
                          "and direction already confirmed at this commit, inside this "
                          "range: not alerted or bisected again")


class CommitTested(Event):
    """A commit's monitoring runs were tested: for each series, the band it
    was tested against (``ttfb.stats.detector.band``: [low, level, high] in
    ms; a commit inside it cannot be a candidate), and the components that
    became candidates. What the dashboard draws as the baseline."""

    type: Literal["CommitTested"] = "CommitTested"
    scenario: str
    repo: str
    commit: str
    branch: str = "main"
    hardware_id: str = ""
    hardware_class: str = ""
    bands: dict[str, list[float]] = Field(default_factory=dict)
    # the series whose test found a change here (the total among them; only
    # components are raised as candidates)
    candidates: list[str] = Field(default_factory=list)
    # the event whose folding tested the commit (its last monitoring run, or
    # the verdict that released a held commit), and the series that kept the
    # commit in their window instead of accepting it (held for another look,
    # or waiting for more runs); None: not recorded. With ``candidates``
    # these are the test's outcome: a rebuild from the store takes it
    # instead of testing again (``streams.detection.recorded``)
    caused_by: str = ""
    kept: list[str] | None = None


class RocPoint(Model):
    threshold: float
    false_positive_rate: float
    power: dict[str, float] = Field(default_factory=dict)


class CalibrationRequested(Event):
    """The detection fold asks for a ROC calibration on a scenario's history.

    Calibrating takes seconds of CPU; the fold emits this instead of doing it
    inline, a calibration agent answers with ``ThresholdCalibrated``, and the
    fold takes the chosen operating point from that answer."""

    type: Literal["CalibrationRequested"] = "CalibrationRequested"
    scenario: str
    history: list[list[float]] = Field(max_length=1024)  # total TTFB runs per accepted commit
    accepted: int = Field(ge=0)  # commits accepted so far (the calibration's seed)
    # the false alarms a week to aim at: the catalog's for this scenario; 0, the lab's
    budget_per_week: float = Field(0.0, ge=0, le=1000)


class ThresholdCalibrated(Event):
    type: Literal["ThresholdCalibrated"] = "ThresholdCalibrated"
    scenario: str
    series: str
    tests_per_week: float
    budget_per_week: float
    points: list[RocPoint]
    chosen: RocPoint
    chosen_k: float = Field(1.0, ge=0)  # the chosen point's minimum shift in sigmas
    accepted: int = Field(0, ge=0)  # the history it was calibrated on, in accepted commits


class BisectStep(Model):
    commit: str
    runs: int
    decision: Literal["good", "bad", "skipped", "inconclusive"]
    mean_ms: float = 0.0


class BisectCompleted(Event, WholeEffect):
    """A bisect's result; ``WholeEffect``: TTFB as a whole, as the
    confirmation that started it measured it."""

    type: Literal["BisectCompleted"] = "BisectCompleted"
    bisect_id: str
    detection_id: str = ""
    scenario: str
    component: str
    direction: Direction = "regression"
    good: str
    bad: str
    culprit: str = ""
    culprits: list[str] = Field(default_factory=list)
    author: str = ""
    subject: str = ""
    effect_ms: float = 0.0
    effect_pct: float = 0.0
    ci_low_pct: float = 0.0  # 95 % CI of effect_pct, from the endpoints' runs
    ci_high_pct: float = 0.0
    confidence: float = 0.0
    steps: list[BisectStep] = Field(default_factory=list)
    runs_spent: int = 0
    error: str = ""
    explanation: list[dict[str, Any]] = Field(default_factory=list)
    # the files the culprit changed that its runs imported or read (a config
    # the workflow executes or a data file has no frame of its own in what grew)
    changed_files: list[str] = Field(default_factory=list)
    # false: the endpoints, run again by the bisect, no longer show the
    # confirmed change (no culprit is named, the alert is retracted)
    reproduced: bool = True
    # true: its run budget was spent before one commit held enough of the
    # posterior; no culprit is named, and the culprit is most likely (with
    # ``likely_mass``) among the commits after ``likely_after`` up to ``likely_last``
    inconclusive: bool = False
    likely_after: str = ""
    likely_last: str = ""
    likely_mass: float = 0.0


class BisectProgressed(Event):
    """Where a bisect stands as it asks for its next runs: where the culprit
    most likely is (the commits after ``likely_after`` up to ``likely_last``
    hold ``likely_mass`` of the posterior), the likeliest commit, and the
    runs asked for so far against the budget (0: the policy's)."""

    type: Literal["BisectProgressed"] = "BisectProgressed"
    bisect_id: str
    detection_id: str = ""
    scenario: str
    component: str
    runs_spent: int = 0
    max_runs: int = 0
    candidates: int = 0  # commits the culprit may still be
    likeliest: str = ""
    probability: float = 0.0
    likely_after: str = ""
    likely_last: str = ""
    likely_mass: float = 0.0


BISECT_STOP = 0.99  # a bisect ends when one commit holds this much of its posterior


class Alert(Event, WholeEffect):
    type: Literal["Alert"] = "Alert"
    alert_id: str
    kind: Direction
    scenario: str
    component: str
    commit: str
    effect_ms: float
    effect_pct: float
    ci_low_pct: float = 0.0
    ci_high_pct: float = 0.0
    culprit: str = ""
    # the bisect's posterior mass on the culprit: below the bisect's stop
    # (BISECT_STOP) the run budget ended the search and the culprit is a best guess
    culprit_confidence: float = 0.0
    author: str = ""
    subject: str = ""
    # the files the culprit changed that the scenario's runs imported or read
    changed_files: list[str] = Field(default_factory=list)
    link: str = ""
    # not_reproduced: the bisect's runs of the endpoints no longer show the
    # change; the alert is retracted and no culprit is named
    status: Literal["confirmed", "attributed", "not_reproduced"] = "confirmed"


class ScenarioBroken(Event):
    """Every monitoring run of a commit failed where the scenario's runs on
    this hardware class used to complete (``status`` broken, ``good_commit``
    the last commit whose runs completed, ``reason`` the workflow's error),
    or completed again after that (``status`` working, ``broken_at`` the
    commit they had failed from): a commit that stops a training job from
    reaching its first batch. Once per break."""

    type: Literal["ScenarioBroken"] = "ScenarioBroken"
    status: Literal["broken", "working"]
    scenario: str
    repo: str
    commit: str
    good_commit: str = ""
    broken_at: str = ""
    branch: str = "main"
    hardware_class: str = ""
    author: str = ""
    subject: str = ""
    reason: str = Field("", max_length=2000)


TRIAGE_STATUSES = ("acknowledged", "expected", "invalid", "fixed")
TriageStatus = Literal["acknowledged", "expected", "invalid", "fixed"]


class AlertTriaged(Event):
    """A person's word on an alert. ``expected``: the change was meant, and
    its level is the series' baseline from now on; ``invalid``: no real
    change (a false alarm, counted as one); ``acknowledged``: being looked
    at; ``fixed``: a later commit undid it. The alert's own fields are
    copied in, so the fold and the notifications need no lookup."""
    type: Literal["AlertTriaged"] = "AlertTriaged"
    alert_id: str = Field(min_length=1, max_length=200)
    status: TriageStatus
    by: str = Field("", max_length=200)
    note: str = Field("", max_length=2000)
    scenario: str
    component: str
    kind: Direction
    commit: str
    culprit: str = ""
    hardware_id: str = ""
    branch: str = ""
    effect_pct: float = 0.0
    effect_ms: float = 0.0
    link: str = ""


class Thresholds(Model):
    """A team's own thresholds for a scenario or one of its components;
    a field left None keeps the lab's (calibrated or default) value."""
    min_effect_pct: float | None = Field(None, ge=0, le=1000)
    min_effect_ms: float | None = Field(None, ge=0)
    false_alarms_per_week: float | None = Field(None, gt=0, le=1000)


class ThresholdsSet(Event):
    """The catalog's threshold overrides of one scenario, as the lab that
    loaded the catalog found them (empty: none, the lab's own apply)."""
    type: Literal["ThresholdsSet"] = "ThresholdsSet"
    scenario: str
    scenario_thresholds: Thresholds = Field(default_factory=Thresholds)
    components: dict[str, Thresholds] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=list, description="components never alerted")
    source: str = Field("", max_length=500, description="where the overrides were set")


class ComponentDelta(Model):
    component: str
    mean_a_ms: float
    mean_b_ms: float
    delta_ms: float
    delta_pct: float
    ci_low_pct: float
    ci_high_pct: float
    p_value: float
    verdict: Literal["improvement", "regression", "no change"]


class ExperimentCompleted(Event):
    type: Literal["ExperimentCompleted"] = "ExperimentCompleted"
    experiment_id: str
    scenario: str
    arm_a: str
    arm_b: str
    verdict: Literal["improvement", "regression", "no change"]
    components: list[ComponentDelta]
    runs_spent: int
