"""``ttfb alerts tail``: subscribe to the alerts topic.

The webhook sink that POSTs each alert lives in the streams worker
(``streams.webhooks``).

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
    if alert.get("status") == "not_reproduced":
        culprit = " retracted: the bisect ran both ends again and they no longer differ"
    ci = ""
    if alert.get("ci_low_pct") or alert.get("ci_high_pct"):
        ci = f" [{float(alert['ci_low_pct']):+.1f}%, {float(alert['ci_high_pct']):+.1f}%]"
    return (f"[{alert['status']}] {alert['kind']} {alert['scenario']}/{alert['component']} "
            f"{float(alert['effect_pct']):+.1f}%{ci} ({float(alert['effect_ms']):+,.0f} ms) at "
            f"{alert['commit'][:10]}{culprit}: {alert.get('subject', '')} {alert.get('link', '')}")


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
