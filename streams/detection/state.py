"""A scenario's detection state, its JSON form, and the reads every phase
shares."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ttfb.stats import Point, SeriesState


@dataclass
class Confirmation:
    detection_id: str
    commit: str
    good_commit: str
    components: dict[str, str]  # component -> candidate direction
    hardware_id: str
    branch: str
    runs_per_side: int
    repo: str = ""
    hardware_class: str = ""  # the agents its runs go to: those that made the series
    before: list[dict[str, float]] = field(default_factory=list)
    after: list[dict[str, float]] = field(default_factory=list)
    failed: int = 0
    warmups: int = 0  # discarded runs that have arrived
    # raised by another confirmation's final look, for one component: tests that
    # one only (the parent tested the rest) and raises no follow-up itself
    follow_up: bool = False
    author: str = ""
    subject: str = ""
    decided: dict[str, bool] = field(default_factory=dict)  # component -> confirmed, at look 1
    looked: list[int] = field(default_factory=list)  # [before, after] runs at look 1, once past it
    # confirmed components taken again on fresh runs (component -> direction),
    # [before, after, runs_per_side] when that look began, and the components
    # and decisions the deciding look started from
    replicating: dict[str, str] = field(default_factory=dict)
    replicate_from: list[int] = field(default_factory=list)
    components_then: dict[str, str] = field(default_factory=dict)
    decided_then: dict[str, bool] = field(default_factory=dict)
    # per component tested, the monitoring runs (commit -> values) of the
    # commits its series held when the candidate was raised: handed to the
    # bisect of each component confirmed (a follow-up's too)
    monitored: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # named components confirmed at the first look and announced then
    # (``announce_at_first_p``): the verdict at the end leaves them out
    announced: list[str] = field(default_factory=list)
    # the commit's change is told already (a component announced, or the
    # parent of this follow-up confirmed one): what is left refines it, and
    # its runs go after monitoring, which may hold the next change
    background: bool = False

    def sides(self, name: str) -> tuple[list[list[float]], list[list[float]]]:
        """``name``'s values per look: the looks are the blocks of the test."""
        def blocks(rows: list[dict[str, float]], cut: int | None) -> list[list[float]]:
            values = [r[name] for r in rows]
            return [values] if cut is None else [values[:cut], values[cut:]]

        cut_before, cut_after = self.looked if self.looked else (None, None)
        return blocks(self.before, cut_before), blocks(self.after, cut_after)

    @property
    def complete(self) -> bool:
        return len(self.before) + len(self.after) + self.failed >= 2 * self.runs_per_side


ARRIVALS = 256  # monitored commits remembered, in order


@dataclass
class ScenarioState:
    series: dict[str, SeriesState] = field(default_factory=dict)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # commit -> runs so far
    confirming: dict[str, Confirmation] = field(default_factory=dict)
    processed: list[str] = field(default_factory=list)
    baseline_ttfb: float = 0.0  # running mean TTFB of accepted commits (the ms floor's base)
    baseline_commits: int = 0
    accepted: int = 0  # commits accepted into the baseline so far
    history: list[list[float]] = field(default_factory=list)  # total TTFB runs, last 64
    operating: list[float] = field(default_factory=list)  # calibrated [alpha, k]
    arrivals: list[str] = field(default_factory=list)  # monitored commits, in order (last 256)
    last_change: str = ""  # the latest commit with a confirmed change, any component
    calibrated_on: int = 0  # accepted commits behind the operating point in use
    # per component, the latest confirmed change: [commit, direction]
    changes: dict[str, list[str]] = field(default_factory=dict)
    # commits whose runs arrived while a series they moved was being confirmed,
    # in arrival order: each {"commit", "values" (of those series), and the
    # entry's hardware_id, branch, repo, author, subject}; tested after the verdict
    held: list[dict[str, Any]] = field(default_factory=list)
    # series whose confirmation held ``hold_commits`` commits: they hold no
    # more until that confirmation ends
    unheld: list[str] = field(default_factory=list)
    # the catalog's overrides in force (``ThresholdsSet`` as JSON, less its
    # envelope): {"scenario_thresholds", "components", "ignore", "source"}
    thresholds: dict[str, Any] = field(default_factory=dict)
    # per hardware class: [the last commit whose monitoring runs completed,
    # the commit whose runs all failed after it ("" while they complete)]
    runs_ok: dict[str, list[str]] = field(default_factory=dict)
    # ``processed`` as a set, for the lookup every event makes (not stored:
    # derived again from ``processed`` wherever the two differ in size)
    processed_index: set[str] = field(default_factory=set, compare=False, repr=False)
    # ``arrivals`` as a set, likewise (the first run of every commit looks it up)
    arrivals_index: set[str] = field(default_factory=set, compare=False, repr=False)


def series_to_json(s: SeriesState) -> dict[str, Any]:
    pts = lambda ps: [[p.order, p.commit, list(p.values)] for p in ps]  # noqa: E731
    return {"baseline": pts(s.baseline), "window": pts(s.window), "seen": s.seen}


def _series_from_json(d: dict[str, Any]) -> SeriesState:
    pts = lambda ps: tuple(Point(o, c, tuple(v)) for o, c, v in ps)  # noqa: E731
    return SeriesState(baseline=pts(d["baseline"]), window=pts(d["window"]), seen=d["seen"])


# fields derived from others, never stored
_DERIVED = ("processed_index", "arrivals_index")


def fields_of(instance: Any) -> dict[str, Any]:
    """A dataclass's fields by name, their values as they are (no deep copy,
    as ``dataclasses.asdict`` makes): for JSON written at once. Every field of
    a state is JSON-able itself (no nested dataclass)."""
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}


def to_json(state: ScenarioState) -> dict[str, Any]:
    """A JSON-able form for the Faust table, derived from the fields: every
    field as it is, but the two that hold objects and those derived (not stored)."""
    out = {k: v for k, v in fields_of(state).items() if k not in _DERIVED}
    out["series"] = {k: series_to_json(v) for k, v in state.series.items()}
    out["confirming"] = {k: fields_of(v) for k, v in state.confirming.items()}
    return out


def from_json(data: dict[str, Any] | None) -> ScenarioState:
    """``to_json``'s inverse; a field the data lacks (a state stored before the
    field existed) takes its default."""
    if not data:
        return ScenarioState()
    known = {f.name for f in dataclasses.fields(ScenarioState)} - set(_DERIVED)
    values = {k: _shallow(v) for k, v in data.items() if k in known}
    values["series"] = {k: _series_from_json(v) for k, v in data.get("series", {}).items()}
    values["confirming"] = {k: Confirmation(**v) for k, v in data.get("confirming", {}).items()}
    values["baseline_ttfb"] = float(values.get("baseline_ttfb", 0.0))
    return ScenarioState(**values)


# the fields the phases change in place; the others are replaced, or are
# containers of immutable values
_CHANGED_IN_PLACE = ("confirming", "held")


def copy_state(state: ScenarioState) -> ScenarioState:
    """A copy safe to change: ``monitor_result`` adds a run to its commit's
    entry in ``pending`` in place, so each entry is copied, down to its lists."""
    return ScenarioState(**{f.name: _copied(f.name, getattr(state, f.name))
                            for f in dataclasses.fields(state)})


def _copied(name: str, value: Any) -> Any:
    if name in _CHANGED_IN_PLACE:
        return copy.deepcopy(value)
    if name == "pending":
        return {commit: {**entry, "values": {k: list(v) for k, v in entry["values"].items()},
                         "done": list(entry["done"])} for commit, entry in value.items()}
    return _shallow(value)


def _shallow(value: Any) -> Any:
    return type(value)(value) if isinstance(value, (list, dict, set)) else value


def was_processed(state: ScenarioState, event_id: str) -> bool:
    """Whether ``event_id`` is among the ids ``state`` remembers processing."""
    if len(state.processed_index) != len(state.processed):  # loaded, or changed outside
        state.processed_index = set(state.processed)
    return event_id in state.processed_index


def arrived(state: ScenarioState, commit: str) -> bool:
    """Whether ``commit`` is among the monitored commits ``state`` remembers."""
    if len(state.arrivals_index) != len(state.arrivals):  # loaded, or changed outside
        state.arrivals_index = set(state.arrivals)
    return commit in state.arrivals_index


def arrive(state: ScenarioState, commit: str) -> None:
    """``commit`` the newest arrival (once, the last ``ARRIVALS`` kept), in place."""
    again = arrived(state, commit)  # (the index made whole first)
    arrivals, index = state.arrivals, state.arrivals_index
    if again:  # seldom: a commit monitored again
        arrivals.remove(commit)
    index.add(commit)
    arrivals.append(commit)
    if len(arrivals) > ARRIVALS:
        index.difference_update(arrivals[:-ARRIVALS])
        del arrivals[:-ARRIVALS]


def position(state: ScenarioState, commit: str) -> int:
    return state.arrivals.index(commit) if arrived(state, commit) else -1


def since_change(state: ScenarioState, good: str, commit: str) -> str:
    """The good commit of a confirmation of ``commit``: ``good``, but not from
    before a change already confirmed in this scenario since (the fresh runs
    would show that change again in its component, and it would be alerted
    and bisected twice)."""
    last = position(state, state.last_change)
    if state.last_change and position(state, good) < last < position(state, commit):
        return state.last_change
    return good


def series_key(component: str, hardware_id: str, branch: str) -> str:
    return f"{component}|{hardware_id}|{branch}"


def being_confirmed(state: ScenarioState, holding: bool = True) -> set[str]:
    """The series an open confirmation (or follow-up) is testing; with
    ``holding``, less those whose confirmation is taken for stalled."""
    if not state.confirming:
        return set()
    keys = {series_key(n, c.hardware_id, c.branch)
            for c in state.confirming.values() for n in c.components}
    return keys - set(state.unheld) if holding else keys

