"""Faust wiring of the decision folds: decode, decide, emit.

Detection state lives in a Faust table keyed by scenario (messages are keyed
by scenario, so the table is co-partitioned and one worker owns a scenario);
its changelog brings it back after a worker restart. Commands the fold asks
for are signed here, at the edge, before they go on the bus.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from streams.detection import Policy, decide, from_json, to_json
from ttfb import events as ev
from ttfb.settings import Settings
from ttfb.signing import sign

log = logging.getLogger(__name__)

ROUTES: dict[type[ev.Event], str] = {
    ev.RunRequested: "commands", ev.CommitRangeRequested: "commands", ev.Alert: "alerts",
    ev.ThresholdCalibrated: "calibration", ev.BisectCompleted: "bisect",
}


def topic_for(event: ev.Event) -> str:
    return ROUTES.get(type(event), "detections")


def register_decisions(app: faust.App, settings: Settings,
                       topics: dict[str, Any]) -> None:
    table = app.Table("ttfb-detector", default=dict, partitions=settings.partitions,
                      key_type=str, value_serializer="json")
    policy = Policy(dashboard_url=settings.public_url())
    key = settings.signing_key.get_secret_value()

    async def emit(event: ev.Event) -> None:
        if isinstance(event, ev.Signed):
            event = sign(event, key)
        await topics[topic_for(event)].send(key=event.key.encode(), value=ev.encode(event))

    @app.agent(topics["measurements"], name="ttfb-detector")
    async def detector(stream: faust.StreamT) -> None:
        async for raw in stream:
            try:
                event = ev.decode(raw, max_bytes=settings.max_event_bytes)
            except ev.EventRejected:
                continue  # the sink dead-letters it
            if not isinstance(event, (ev.RunCompleted, ev.RunFailed)):
                continue
            state, out = decide(from_json(table[event.scenario]), event, policy)
            for produced in out:
                await emit(produced)
            table[event.scenario] = to_json(state)
            if out:
                log.info("%s: %s", event.scenario, ", ".join(type(e).__name__ for e in out))
