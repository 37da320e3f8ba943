"""``ttfb alerts tail|list|triage``: follow the alerts topic, list the
alerts as they stand, and triage one.

Notifications (Slack, mail, signed webhooks) are sent by the streams worker
(``streams.notify``).

``--from-beginning`` first prints the alerts already in the store (everything
lands there, so this works after the lab is gone), then follows the live
topic when a bus is up: the configured cluster or a running ``ttfb up``.
With the embedded parts it reads the lab that last ran in the data directory
(``ttfb up --demo`` runs in ``<data>/demo-lab`` and says so in ``lab.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from streams.notify import listed
from ttfb import events as ev
from ttfb.bus import consumer_options, stop_on_signals
from ttfb.settings import Settings


def wanted(alert: dict[str, Any], scenario: str | None, kind: str | None) -> bool:
    return (not scenario or alert["scenario"] == scenario) and (not kind or alert["kind"] == kind)


def line(alert: dict[str, Any]) -> str:
    culprit = ""
    if alert.get("culprit"):
        culprit = f" culprit {alert['culprit'][:10]}"
        sure = float(alert.get("culprit_confidence") or 0.0)
        if sure < ev.BISECT_STOP:  # the run budget ended the search
            culprit += f" (a best guess: posterior {sure:.2f})"
        if alert.get("changed_files"):
            culprit += f" changed {listed(list(alert['changed_files']), 3)}"
    if alert.get("status") == "not_reproduced":
        culprit = " retracted: the bisect ran both ends again and they no longer differ"
    ci = ""
    if alert.get("ci_low_pct") or alert.get("ci_high_pct"):
        ci = f" [{float(alert['ci_low_pct']):+.1f}%, {float(alert['ci_high_pct']):+.1f}%]"
    whole = ev.WholeEffect.of(alert)
    total = f"; TTFB {whole.ttfb_effect_pct:+.1f}%" if whole.measured else ""
    return (f"[{alert['status']}] {alert['kind']} {alert['scenario']}/{alert['component']} "
            f"{float(alert['effect_pct']):+.1f}%{ci} ({float(alert['effect_ms']):+,.0f} ms"
            f"{total}) at {alert['commit'][:10]}{culprit}: {alert.get('subject', '')} "
            f"{alert.get('link', '')}")


async def follow(bootstrap: str, settings: Settings, from_beginning: bool,
                 show: Callable[[dict[str, Any]], None], stop: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer

    options = consumer_options(settings.model_copy(update={"kafka_bootstrap": bootstrap}))
    consumer = AIOKafkaConsumer(settings.topic("alerts"), group_id=None,
                                auto_offset_reset="earliest" if from_beginning else "latest",
                                **options)
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    try:
                        alert = ev.decode(record.value or b"")
                    except ev.EventRejected:
                        continue
                    if isinstance(alert, ev.Alert):
                        show(alert.model_dump(mode="json"))
    finally:
        await consumer.stop()


def tail_command(args: argparse.Namespace, settings: Settings) -> int:
    from ttfb.labinfo import last_lab, running_bus

    settings = last_lab(settings)  # after ``ttfb up --demo``: the demo's lab

    seen: set[str] = set()

    def show(alert: dict[str, Any]) -> None:
        key = alert.get("event_id", "")
        if key in seen or not wanted(alert, args.scenario, args.kind):
            return
        seen.add(key)
        print(json.dumps(alert, default=str) if args.json else line(alert), flush=True)

    if args.from_beginning:
        from ttfb.store import open_store, queries

        for alert in queries.alerts(open_store(settings), limit=100_000):
            show({**alert, "event_id": alert["alert_id"] + alert["status"]})
    bootstrap = running_bus(settings)
    if not bootstrap:
        if args.from_beginning:
            return 0
        print("ttfb alerts tail: no bus: start `ttfb up` or set TTFB_KAFKA_BOOTSTRAP",
              file=sys.stderr)
        return 2

    async def run() -> None:
        await follow(bootstrap, settings, args.from_beginning, show, stop_on_signals())

    asyncio.run(run())
    return 0


class TriageError(ValueError):
    """A triage that cannot be recorded; the message says why."""


def triage_event(store: Any, alert_id: str, status: str, by: str = "",
                 note: str = "") -> ev.AlertTriaged:
    """The ``AlertTriaged`` of a stored alert, its fields copied from the store."""
    from ttfb.store import queries

    if status not in ev.TRIAGE_STATUSES:
        raise TriageError(f"unknown triage status {status!r}; one of {list(ev.TRIAGE_STATUSES)}")
    if len(note) > 2000 or len(by) > 200:
        raise TriageError("a triage note is at most 2000 characters and a name 200")
    row = queries.alert(store, alert_id)
    if row is None:
        raise TriageError(f"no alert {alert_id!r}; `ttfb alerts list` shows them")
    return ev.AlertTriaged(
        alert_id=alert_id, status=status, by=by, note=note,  # type: ignore[arg-type]
        scenario=row["scenario"], component=row["component"], kind=row["kind"],
        commit=row["commit"], culprit=row["culprit"], hardware_id=row["hardware_id"] or "",
        branch=row["branch"] or "", effect_pct=float(row["effect_pct"]),
        effect_ms=float(row["effect_ms"]), link=row["link"], producer="ttfb-triage")


def record_triage(settings: Settings, event: ev.AlertTriaged) -> str:
    """Put a triage on the bus (the folds and the notifications act on it),
    or, with no lab running, straight into the store, whose event log the
    next embedded lab folds on start. Returns where it went."""
    from ttfb.emitter import emit_all
    from ttfb.labinfo import running_bus

    bus = running_bus(settings)
    if bus:
        asyncio.run(emit_all(settings.model_copy(update={"kafka_bootstrap": bus}),
                             "ttfb-triage", [(event, "detections")]))
        return "the lab"
    from ttfb.store import open_store

    open_store(settings).write([event], topic=settings.topic("detections"))
    return "the store (no lab is running: it applies when one starts)"


def default_author() -> str:
    import getpass
    import subprocess

    try:
        name = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        name = ""
    try:
        return name or getpass.getuser()
    except (OSError, KeyError):
        return ""


def alerts_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "tail":
        return tail_command(args, settings)
    from ttfb.labinfo import last_lab
    from ttfb.store import open_store, queries

    settings = last_lab(settings)
    store = open_store(settings)
    if args.action == "list":
        rows = queries.current_alerts(store, triage=args.triage, scenario=args.scenario)
        for row in rows:
            if args.json:
                print(json.dumps(row, default=str))
            else:
                by = f" by {row['triaged_by']}" if row["triaged_by"] else ""
                triage = f"[{row['triage']}{by}]" if row["triage"] else "[untriaged]"
                print(f"{row['alert_id']} {triage} {line(row)}")
        return 0
    if not args.alert_id or not args.status:
        print("ttfb alerts triage: give the alert's id and --status "
              f"({', '.join(ev.TRIAGE_STATUSES)})", file=sys.stderr)
        return 2
    try:
        event = triage_event(store, args.alert_id, args.status,
                             args.by if args.by is not None else default_author(), args.note)
    except TriageError as exc:
        print(f"ttfb alerts triage: {exc}", file=sys.stderr)
        return 2
    where = record_triage(settings, event)
    print(f"alert {event.alert_id} ({event.scenario}/{event.component}) marked {event.status}"
          f" in {where}")
    return 0
