"""The demo story: play the demo repository's history through the running lab.

Commit by commit, as if pushed live: a baseline burst on the first commit,
then the scheduler's selection for each commit (unaffected scenarios are
skipped and recorded). Detections, confirmation runs and alerts happen in the
streams worker on their own; the driver keeps the agent one commit ahead
(a commit is sent once the runs of the one two before it are stored), then
waits for every open detection to settle, and summarises what the lab found
against the manifest of injected changes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.catalog import load_catalog
from agents.workspace import changed_files
from producers.commands import CommandSender
from producers.scheduler import new_commits, plan_commit
from ttfb import events as ev
from ttfb.emitter import emit_all
from ttfb.settings import Settings
from ttfb.store import Store, queries

BASELINE_RUNS = 5
RUNS_PER_COMMIT = 3
ALERTS = 10_000  # alerts read for the story and the summary: every one a demo raises
AHEAD = 1  # commits sent before the runs of the one before them are all stored


def _wait(check: Callable[[], bool], timeout: float, lab_check: Callable[[], None],
          progress: Callable[[], int] | None = None) -> bool:
    """Until ``check`` holds, or ``timeout`` seconds pass (since ``progress``
    last moved, when given)."""
    deadline = time.monotonic() + timeout
    last = progress() if progress else 0
    while time.monotonic() < deadline:
        lab_check()
        if check():
            return True
        time.sleep(2.0)  # each poll opens a chDB session: keep the lab quiet
        if progress and (now := progress()) != last:
            last, deadline = now, time.monotonic() + timeout
    return False


def _runs_stored(store: Store) -> int:
    return int(store.query(f"SELECT count() AS n FROM {store.db}.runs")[0]["n"])


def _stored_requests(store: Store, ids: list[str]) -> int:
    rows = store.query(f"SELECT count() AS n FROM {store.db}.runs FINAL"
                       " WHERE request_id IN {ids:Array(String)}", {"ids": ids})
    return int(rows[0]["n"])


def _outstanding_runs(store: Store) -> int:
    """Runs the lab has asked for (confirmations, bisects) that have not arrived."""
    asked = store.query(f"SELECT request_id, any(runs) AS runs FROM {store.db}.commands FINAL"
                        " WHERE type = 'RunRequested' GROUP BY request_id")
    done = {r["request_id"]: int(r["n"]) for r in store.query(
        f"SELECT request_id, count() AS n FROM {store.db}.runs FINAL GROUP BY request_id")}
    return sum(max(0, int(a["runs"]) - done.get(a["request_id"], 0)) for a in asked)


def _calibrating(store: Store) -> bool:
    """A calibration asked for and not answered yet."""
    rows = store.query(
        f"SELECT type, JSONExtractString(payload, 'scenario') AS scenario,"
        f" JSONExtractUInt(payload, 'accepted') AS accepted FROM {store.db}.events"
        " WHERE type IN ('CalibrationRequested', 'ThresholdCalibrated')")
    asked = {(r["scenario"], r["accepted"]) for r in rows if r["type"] == "CalibrationRequested"}
    return not asked <= {(r["scenario"], r["accepted"]) for r in rows
                         if r["type"] == "ThresholdCalibrated"}


def _settled(store: Store) -> bool:
    """No run outstanding, every candidate decided, every confirmed change
    bisected, every calibration answered. One store session for the look:
    on chDB each opens with a lock and 30-150 ms of CPU beside the runs."""
    with store.backend.transaction():
        if _outstanding_runs(store) or _calibrating(store):
            return False
        found = queries.findings(store)
        bisects = queries.bisects(store, limit=10_000)
    # each component a candidate named has its verdict (a clear one comes at
    # the first look, the others when the confirmation ends)
    opened = {(f["detection_id"], f["component"]) for f in found
              if f["type"] == "CandidateDetected"}
    closed = {(f["detection_id"], f["component"]) for f in found
              if f["type"] != "CandidateDetected"}
    confirmed = {(f["detection_id"], f["component"]) for f in found
                 if f["type"] in ("RegressionConfirmed", "ImprovementConfirmed")}
    bisected = {(b["detection_id"], b["component"]) for b in bisects}
    return opened <= closed and confirmed <= bisected


def _quiet(store: Store, for_s: float = 6.0) -> Callable[[], bool]:
    """Settled, and still settled ``for_s`` later: the streams decide a moment after
    the last runs land, so one settled look is not proof that nothing follows."""
    since: list[float] = []

    def check() -> bool:
        if not _settled(store):
            since.clear()
            return False
        since[:] = since or [time.monotonic()]
        return time.monotonic() - since[0] >= for_s

    return check


async def _send(settings: Settings, events: list[ev.Event]) -> None:
    commands = [e for e in events if isinstance(e, ev.RunRequested)]
    facts = [e for e in events if not isinstance(e, ev.Signed)]
    if commands:
        await CommandSender(settings, "scheduler").send_all(commands)
    if facts:
        await emit_all(settings, "scheduler", [(fact, "commands") for fact in facts])


def _manifest(repo: Path) -> list[dict[str, Any]]:
    """The demo repository's injected changes, written beside it (none for another repository)."""
    path = repo.parent / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else []


class Story:
    """Says once, while the history still plays, when every injected change
    is attributed to its commit: the story is told, and what follows
    (thresholds calibrated, side effects' bisects in the background) is the
    rest of the history. Looks at the store every ``every_s`` seconds at most."""

    def __init__(self, store: Store, repo: Path, say: Callable[[str], None],
                 started: float, every_s: float = 10.0) -> None:
        self.manifest = _manifest(repo)
        self.store, self.say, self.started, self.every_s = store, say, started, every_s
        self.told_s: float | None = None
        self.looked = -every_s

    def __call__(self) -> None:
        now = time.monotonic()
        if self.told_s is not None or not self.manifest or now - self.looked < self.every_s:
            return
        self.looked = now
        current = queries.current_alerts(self.store, limit=ALERTS)
        verdict = classify(self.manifest, [a for a in current if a["status"] == "attributed"])
        if verdict["missed"]:
            return
        self.told_s = round(now - self.started, 1)
        alarms = len(verdict["false_alarms"])
        self.say(f"story told after {self.told_s:.0f} s: all {len(self.manifest)} injected "
                 f"changes found and attributed to their commits ({alarms} false alarm"
                 f"{'' if alarms == 1 else 's'} so far); the rest of the history calibrates "
                 "thresholds and bisects the side effects")


def play(settings: Settings, store: Store, lab_check: Callable[[], None],
         say: Callable[[str], None], commit_timeout: float = 300.0) -> dict[str, Any]:
    """Play every commit of the demo repository; returns the summary."""
    started = time.monotonic()
    repo_name, repo_path = next(iter(settings.repos.items()))
    repo = Path(repo_path)
    story = Story(store, repo, say, started)

    def look() -> None:  # between two polls of the store
        lab_check()
        story()

    catalog = load_catalog(settings.catalog)
    commits = new_commits(repo, "HEAD", None)
    sent: list[tuple[str, list[str], int]] = []  # commits whose runs are not all stored
    for number, commit in enumerate(commits):
        if number == 0:
            plan = plan_commit(catalog, repo_name, commit, [], {}, BASELINE_RUNS)
        else:
            plan = plan_commit(catalog, repo_name, commit, changed_files(repo, commit),
                               queries.latest_modules(store), RUNS_PER_COMMIT)
        asyncio.run(_send(settings, [*plan.requests, *plan.skipped]))
        names = ", ".join(r.scenario for r in plan.requests) or "none (unaffected)"
        say(f"commit {number + 1:>2}/{len(commits)} {commit[:10]}: runs {names}")
        sent.append((commit, [r.request_id for r in plan.requests],
                     sum(r.runs for r in plan.requests)))
        # a commit goes out before the runs of the one before it are all
        # stored: the agent has it queued and never waits on the store between
        # two commits. The baseline's runs come first (the test selection
        # reads the modules they imported)
        while len(sent) > (AHEAD if number else 0):
            _wait_for_runs(store, *sent.pop(0), commit_timeout, look)
    for waiting in sent:
        _wait_for_runs(store, *waiting, commit_timeout, look)
    say("history played; waiting for open detections to be confirmed or dismissed")
    _wait(_quiet(store), 900, look)
    return summarise(store, repo, time.monotonic() - started, story.told_s)


def _wait_for_runs(store: Store, commit: str, ids: list[str], wanted: int,
                   commit_timeout: float, lab_check: Callable[[], None]) -> None:
    """Until a commit's runs are stored. They wait behind confirmations' and
    bisects' (an agent runs those first): the commit is stuck only once no
    run at all arrives for ``commit_timeout`` seconds."""
    if ids and not _wait(lambda: _stored_requests(store, ids) >= wanted, commit_timeout,
                         lab_check, lambda: _runs_stored(store)):
        raise TimeoutError(f"runs of commit {commit[:10]} did not arrive, and no other "
                           f"run for {commit_timeout:.0f} s")


def classify(manifest: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The alerts against the injected changes, by the commit each is attributed
    to: ``found`` and ``missed`` (the manifest's changes), ``other_moves`` (at an
    injected commit, in a component the manifest does not name for it: the
    commit's side effects, such as an import moved from one phase into
    another) and ``false_alarms`` (at an ordinary commit, or a named
    component moved the wrong way)."""
    expected = {(m["scenario"], m["component"], m["direction"], m["commit"]) for m in manifest}
    named_at = {(m["scenario"], m["component"], m["commit"]) for m in manifest}
    injected = {m["commit"] for m in manifest}
    seen = {(a["scenario"], a["component"], a["kind"], a["culprit"]) for a in alerts}
    other = {k for k in seen - expected if k[3] in injected and (k[0], k[1], k[3]) not in named_at}

    def named(keys: set[tuple[str, str, str, str]]) -> list[str]:
        return sorted(f"{s}/{c} {d} {k[:10]}" for s, c, d, k in keys)

    return {"found": named(expected & seen), "missed": named(expected - seen),
            "other_moves": named(other), "false_alarms": named(seen - expected - other)}


def summarise(store: Store, repo: Path, elapsed_s: float,
              story_told_s: float | None = None) -> dict[str, Any]:
    manifest = _manifest(repo)
    found = queries.findings(store)
    rows = [{"scenario": a["scenario"], "component": a["component"], "kind": a["kind"],
             "status": a["status"],
             "commit": a["commit"], "culprit": a["culprit"] or a["commit"],
             "culprit_confidence": round(float(a["culprit_confidence"]), 3),
             "effect_pct": round(float(a["effect_pct"]), 1), "subject": a["subject"]}
            for a in queries.current_alerts(store, limit=ALERTS)]
    # a retracted alert (its bisect's runs no longer showed the change) is
    # judged by nobody: it blames no commit, and it is listed on its own
    retracted = [r for r in rows if r["status"] == "not_reproduced"]
    return {
        "alerts": rows,
        **classify(manifest, [r for r in rows if r["status"] != "not_reproduced"]),
        "not_reproduced": sorted(f"{r['scenario']}/{r['component']} {r['kind']} {r['commit'][:10]}"
                                 for r in retracted),
        "candidates": len({f["detection_id"] for f in found
                           if f["type"] == "CandidateDetected"}),
        "dismissed": len({f["detection_id"] for f in found
                          if f["type"] == "DetectionDismissed"}),
        "runs_spent": queries.runs_spent(store),
        "calibrated": sorted({c["scenario"] for c in queries.calibrations(store)}),
        "story_told_s": story_told_s,
        "elapsed_s": round(elapsed_s, 1),
    }
