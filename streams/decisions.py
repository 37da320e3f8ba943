"""Faust wiring of the decision folds: decode, decide, emit.

Detection state lives in a Faust table keyed by scenario (messages are keyed
by scenario, so the table is co-partitioned and one worker owns a scenario);
its changelog brings it back after a worker restart. Commands the fold asks
for are signed here, at the edge, before they go on the bus.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import faust

from streams.bisect import BisectPolicy, attributed_alert
from streams.bisect import decide as decide_bisect
from streams.bisect import from_json as bisect_from_json
from streams.bisect import to_json as bisect_to_json
from streams.detection import Policy, decide, from_json, to_json
from ttfb import events as ev
from ttfb.settings import STREAMS_TABLES, Settings
from ttfb.signing import sign

log = logging.getLogger(__name__)

ROUTES: dict[type[ev.Event], str] = {
    ev.RunRequested: "commands", ev.CommitRangeRequested: "commands", ev.Alert: "alerts",
    ev.ThresholdCalibrated: "calibration", ev.BisectCompleted: "bisect",
}


def topic_for(event: ev.Event) -> str:
    return ROUTES.get(type(event), "detections")


def pin_ids(out: list[ev.Event], source: ev.Event) -> list[ev.Event]:
    """Ids of the outputs derived from the input's: if a crash makes the worker
    process an input again (its state was not yet in the changelog), it emits
    the very same events and commands, and the store and agents drop them."""
    pinned: list[ev.Event] = []
    for i, event in enumerate(out):
        update = {"event_id": ev.derived_id(source.event_id, str(i))}
        if isinstance(event, (ev.RunRequested, ev.CommitRangeRequested)):
            update["request_id"] = ev.derived_id(source.event_id, str(i), "request")
        pinned.append(event.model_copy(update=update))
    return pinned


def register_decisions(app: faust.App, settings: Settings,
                       topics: dict[str, Any]) -> None:
    """One agent over measurements, detections and bisect: detection and bisect folds."""
    table = app.Table(STREAMS_TABLES[0], default=dict, partitions=settings.partitions,
                      key_type=str)  # values are JSON (the app default serializer)
    policy = Policy(dashboard_url=settings.public_url())
    bisect_policy = BisectPolicy()
    key = settings.signing_key.get_secret_value()
    source = app.topic(settings.topic("measurements"), settings.topic("detections"),
                       settings.topic("bisect"), key_serializer="raw", value_serializer="raw")

    worker = f"{socket.gethostname()}:{os.getpid()}"

    async def emit(event: ev.Event) -> None:
        # which worker decided: operators see how scenarios are spread over workers
        event = event.model_copy(update={"producer": f"{event.producer}@{worker}"})
        if isinstance(event, ev.Signed):
            event = sign(event, key)
        await topics[topic_for(event)].send(key=event.key.encode(), value=ev.encode(event))

    @app.agent(source, name="ttfb-decisions")
    async def decisions(stream: faust.StreamT) -> None:
        async for raw in stream:
            try:
                event = ev.decode(raw, max_bytes=settings.max_event_bytes)
            except ev.EventRejected:
                continue  # the sink dead-letters it
            scenario = str(getattr(event, "scenario", ""))
            if not scenario:
                continue
            stored = table[scenario] or {}
            detector, out = decide(from_json(stored.get("detector")), event, policy)
            book, more = decide_bisect(bisect_from_json(stored.get("bisect")), event,
                                       bisect_policy)
            out += more
            out += [attributed_alert(e, policy.dashboard_url) for e in more
                    if isinstance(e, ev.BisectCompleted) and e.culprit]
            for produced in pin_ids(out, event):
                await emit(produced)
            if out or isinstance(event, (ev.RunCompleted, ev.RunFailed)):
                table[scenario] = {"detector": to_json(detector), "bisect": bisect_to_json(book)}
            if out:
                log.info("%s: %s", scenario, ", ".join(type(e).__name__ for e in out))
