"""A bisect's state, its JSON form, its runs and how it asks for more."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.bisect.policy import BisectPolicy
from streams.detection.state import fields_of
from ttfb import events as ev


@dataclass
class Bisect:
    bisect_id: str
    detection_id: str
    scenario: str
    component: str
    repo: str
    branch: str
    good: str
    bad: str
    direction: str = "regression"
    hardware_class: str = ""  # its runs go to the agents of the confirmed series
    phase: str = "range"  # range (or follow), endpoints, search, residual, explain, done
    commits: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    lo: int = 0
    hi: int = 0
    current: int = -1
    samples: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    requested: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    culprits: list[int] = field(default_factory=list)
    confidence: float = 1.0
    profiles: dict[str, dict[str, float]] = field(default_factory=dict)  # the last, per commit
    profile_runs: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # every one
    explained: dict[str, int] = field(default_factory=dict)  # explain runs back, failed ones too
    ours: list[str] = field(default_factory=list)  # profile names in the repository
    changed: list[str] = field(default_factory=list)  # ... that the culprit changed
    # the files the culprit changed that its runs imported or read
    changed_files: list[str] = field(default_factory=list)
    # TTFB as a whole as the confirmation measured it (``ev.WholeEffect``'s
    # fields; empty when it was not)
    whole: dict[str, float] = field(default_factory=dict)
    preloaded: dict[str, int] = field(default_factory=dict)  # samples known before requesting
    search_good: int = 0  # indices whose samples are the current search's endpoints
    search_bad: int = -1
    topped: dict[str, int] = field(default_factory=dict)  # top-up runs before the residual test
    affected: list[bool] = field(default_factory=list)  # per commit, from the range's lister
    # the range listed again once a run is back: an agent that had not yet run
    # the scenario could not say which commits touch its modules
    relisted: bool = False
    block: int = 0  # the last block (batch) requested; 0 holds the confirmation's runs
    cells: list[tuple[str, int, float]] = field(default_factory=list)  # (commit, block, value)
    reproduced: bool = True
    max_runs: int = 0  # runs it may ask for in all before it ends inconclusive (0: no cap)
    # the bisect of another component of the same detection whose runs this
    # one takes while it waits (phase "follow"), or took when it began after
    # that one's search: they are runs of the same scenario over the same
    # range, and each carries every component
    follows: str = ""
    # its own bisect runs, every component of each ("ttfb" too): a bisect of
    # another component of the same change confirmed once this one's search
    # is over starts from them (``adopt``)
    runs: list[tuple[str, int, dict[str, float]]] = field(default_factory=list)
    # runs per commit taken from the bisect it follows, which count as its
    # own: that bisect ran them beside the endpoints, as its own batches would
    adopted: dict[str, int] = field(default_factory=dict)
    # of each profiled run, the times this component does not read (functions
    # for imports, modules for the rest), per commit: for a later bisect of
    # another component of the same change
    other_profiles: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    changed_at: str = ""  # the culprit whose runs named ``changed``, where adopted
    # profiled runs per commit the bisect it follows has asked for and not had
    # back: its own explanation waits for them rather than asking again
    promised: dict[str, int] = field(default_factory=dict)


@dataclass
class BisectBook:
    """All bisects of one scenario."""

    bisects: dict[str, Bisect] = field(default_factory=dict)
    by_detection: dict[str, str] = field(default_factory=dict)


def to_json(book: BisectBook) -> dict[str, Any]:
    return {"bisects": {k: fields_of(v) for k, v in book.bisects.items()},
            "by_detection": book.by_detection}


def from_json(data: dict[str, Any] | None) -> BisectBook:
    if not data:
        return BisectBook()
    return BisectBook({k: Bisect(**v) for k, v in data["bisects"].items()},
                      dict(data["by_detection"]))


def record(b: Bisect, event: ev.RunCompleted | ev.RunFailed) -> None:
    if event.purpose == "explain":
        b.explained[event.commit] = b.explained.get(event.commit, 0) + 1
        if isinstance(event, ev.RunCompleted):
            record_profile(b, event)
        return
    if isinstance(event, ev.RunFailed):
        b.failed[event.commit] = b.failed.get(event.commit, 0) + 1
        return
    value = event.ttfb_ms if b.component == "ttfb" else event.components.get(b.component)  # type: ignore[call-overload]
    if value is not None:
        add_sample(b, event.commit, block_of(event.arm), value)
    if not b.follows:
        values = {str(k): v for k, v in event.components.items()} | {"ttfb": event.ttfb_ms}
        b.runs.append((event.commit, block_of(event.arm), values))


def add_sample(b: Bisect, commit: str, block: int, value: float) -> None:
    """One run's value of ``b``'s component, in ``block``."""
    b.samples.setdefault(commit, []).append(float(value))
    b.cells.append((commit, block, float(value)))


def adopt(b: Bisect, leader: Bisect) -> None:
    """``leader``'s runs of the range as ``b``'s own, ``b`` a bisect of
    another component of the same change started once ``leader``'s search
    was over: its bisect runs (each carries every component), its failed
    ones and, once it has explained its culprit, its profiled runs."""
    for commit, block, values in leader.runs:
        value = values.get(b.component)
        if value is not None:
            add_sample(b, commit, block, value)
            b.adopted[commit] = b.adopted.get(commit, 0) + 1
    for commit, n in leader.failed.items():
        b.failed[commit] = b.failed.get(commit, 0) + n
    if leader.phase == "done" and leader.culprits and leader.explained:
        same = profile_keys(b.component) == profile_keys(leader.component)
        b.profile_runs = {c: [dict(t) for t in runs] for c, runs in
                          (leader.profile_runs if same else leader.other_profiles).items()}
        b.explained, b.ours = dict(leader.explained), list(leader.ours)
        take_changed(b, leader)


def share_profile(b: Bisect, leader: Bisect, event: ev.RunCompleted | ev.RunFailed) -> None:
    """A profiled run of ``leader``'s culprit or its parent, for ``b``, which
    follows it: its own explanation reads it as its own, and what the
    culprit changed, where ``b`` names the same one."""
    record(b, event)
    if b.promised.get(event.commit):
        b.promised[event.commit] -= 1
    if leader.culprits and not b.culprits:
        take_changed(b, leader)


def take_changed(b: Bisect, leader: Bisect) -> None:
    """What ``leader``'s culprit changed (its profile names, its files), as
    what ``b``'s does, until ``b`` names another culprit."""
    b.changed, b.changed_files = list(leader.changed), list(leader.changed_files)
    b.changed_at = leader.commits[leader.culprits[0]]


def promise(b: Bisect, leader: Bisect, runs: int) -> None:
    """``leader``, explaining its culprit, still has profiled runs of it and
    of its parent to come (``runs`` a side in all): ``b`` waits for them."""
    if leader.phase == "explain" and leader.culprits:
        for c in leader.commits[leader.culprits[0] - 1:leader.culprits[0] + 1]:
            b.promised[c] = max(0, runs - leader.explained.get(c, 0))


def profile_keys(component: str) -> tuple[str, str]:
    """The part of a profile a component's explanation reads (modules by
    import time for imports, functions by cumulative time for the rest),
    and the other part."""
    return ("imports_ms", "cumulative_ms") if component == "imports" else \
        ("cumulative_ms", "imports_ms")


def record_profile(b: Bisect, event: ev.RunCompleted) -> None:
    """A profiled run's names and times: for imports, modules by cumulative
    import time (-X importtime); for any other component, functions by
    cumulative time. Which are the repository's, and which the culprit
    changed, is what its agent said (runs of the culprit say both). A run
    whose profile could not be read counts as back, with nothing in it."""
    key, other = profile_keys(b.component)
    rest = {str(k): float(v) for k, v in dict(event.profile.get(other, {})).items()}
    if rest:
        b.other_profiles.setdefault(event.commit, []).append(rest)
    times = {str(k): float(v) for k, v in dict(event.profile.get(key, {})).items()}
    if not times:
        return
    b.profiles[event.commit] = times
    b.profile_runs.setdefault(event.commit, []).append(times)
    of_culprit = bool(b.culprits) and event.commit == b.commits[b.culprits[0]]
    for mine, names in ((b.ours, event.profile.get("repository", [])),
                        (b.changed, event.profile.get("changed", []) if of_culprit else []),
                        (b.changed_files,
                         event.profile.get("changed_files", []) if of_culprit else [])):
        mine.extend(str(n) for n in names if n not in mine)


def spent(b: Bisect) -> int:
    """Runs the bisect has asked for so far."""
    return sum(b.requested.values())


def block_of(arm: str) -> int:
    """The block a run's arm label names; a run without one shares block 0."""
    _, _, number = arm.rpartition("-")
    return int(number) if number.isdigit() else 0


def received(b: Bisect, commit: str) -> int:
    return len(b.samples.get(commit, [])) + b.failed.get(commit, 0)


def waiting(b: Bisect, commits: tuple[str, ...]) -> bool:
    return any(received(b, c) < b.preloaded.get(c, 0) + b.requested.get(c, 0) for c in commits)


def request_runs(b: Bisect, commit: str, count: int, purpose: str = "bisect",
          profile: bool = False) -> list[ev.Event]:
    """``count`` runs of ``commit`` in the current block, whose number the arm
    label carries (``bisect-3``) and the agent hands back with each run. A
    bisect that follows another (a second component of the same change)
    asks for runs only once that one's search has ended, with its runs:
    they refine a change already told, whose commit is most likely found,
    and wait behind the monitoring of new commits
    (``RunRequested.background``)."""
    b.requested[commit] = b.requested.get(commit, 0) + count
    label = f"{purpose}-{b.block}" if purpose == "bisect" else purpose
    return [ev.RunRequested(scenario=b.scenario, repo=b.repo, commit=commit, branch=b.branch,
                            runs=1, purpose=purpose, correlation_id=b.bisect_id,  # type: ignore[arg-type]
                            profile=profile, arm=ev.Arm(label=label),
                            hardware_class=b.hardware_class, background=bool(b.follows),
                            producer="ttfb-bisect") for _ in range(count)]


def batch_runs(b: Bisect, commit: str, policy: BisectPolicy) -> list[ev.Event]:
    """One block: ``batch`` runs of ``commit``, between one run of each of the
    search's endpoints (their order alternates, so a steady drift within a
    block weighs on both alike)."""
    b.block += 1
    if not policy.paired:
        return request_runs(b, commit, policy.batch)
    ends = [b.commits[b.search_good], b.commits[b.search_bad]]
    first, last = ends if b.block % 2 else ends[::-1]
    return request_runs(b, first, 1) + request_runs(b, commit, policy.batch) + \
        request_runs(b, last, 1)


def endpoint_block(b: Bisect, missing: list[int], alternate: bool = False) -> list[ev.Event]:
    """A block of its own of ``missing`` = [good, bad] runs of the endpoints,
    interleaved: good, bad, good, bad, ...; ``alternate``: good, bad, bad,
    good, ... (each side follows each as often)."""
    b.block += 1
    ends = [(0, b.commits[0]), (1, b.commits[-1])]
    out: list[ev.Event] = []
    for i in range(max(missing)):
        for side, commit in ends if i % 2 == 0 or not alternate else ends[::-1]:
            out += request_runs(b, commit, 1) if i < missing[side] else []
    return out
