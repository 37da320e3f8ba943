"""The detection fold's entry: one event in, the new state and the events
to emit out."""

from __future__ import annotations

from streams.detection.confirm import confirmation_result
from streams.detection.overrides import set_thresholds, triaged
from streams.detection.policy import MONITOR_PURPOSES, REMEMBER_IDS, Policy
from streams.detection.screen import monitor_result
from streams.detection.state import ScenarioState, arrived, copy_state, was_processed
from ttfb import events as ev


def decide(state: ScenarioState, event: ev.Event, policy: Policy,
           inplace: bool = False) -> tuple[ScenarioState, list[ev.Event]]:
    """Apply one measurement event; returns the new state and events to emit.

    ``inplace`` changes ``state`` itself instead of a copy: for a caller that
    owns it (the worker's cache) and throws it away if this raises.
    """
    if isinstance(event, (ev.RunCompleted, ev.RunFailed)):  # nearly every event
        return _measured(state, event, policy, inplace)
    if isinstance(event, ev.ThresholdCalibrated):
        if event.accepted < state.calibrated_on:
            return state, []  # an answer overtaken by a later one
        state = state if inplace else copy_state(state)
        state.operating, state.calibrated_on = [event.chosen.threshold, event.chosen_k], \
            event.accepted
        return state, []
    if isinstance(event, (ev.ThresholdsSet, ev.AlertTriaged)):  # a team's word
        if was_processed(state, event.event_id):
            return state, []
        state = _remember(state, event.event_id, inplace)
        if isinstance(event, ev.ThresholdsSet):
            return set_thresholds(state, event), []
        return triaged(state, event), []
    return state, []


def _measured(state: ScenarioState, event: ev.RunCompleted | ev.RunFailed, policy: Policy,
              inplace: bool) -> tuple[ScenarioState, list[ev.Event]]:
    if was_processed(state, event.event_id):
        return state, []  # a duplicate or a replay: no effect beyond the first
    if event.purpose in MONITOR_PURPOSES and event.commit not in state.pending and \
            arrived(state, event.commit):  # (a commit arrives when its runs stop pending)
        return state, []  # a replay of a commit already tested (older than the ids kept)
    state = _remember(state, event.event_id, inplace)
    if event.purpose == "confirm" and event.correlation_id in state.confirming:
        return confirmation_result(state, event, policy)
    if event.purpose in MONITOR_PURPOSES:
        return monitor_result(state, event, policy)
    return state, []


def _remember(state: ScenarioState, event_id: str, inplace: bool) -> ScenarioState:
    """The state (a copy unless ``inplace``) with ``event_id`` among the last
    ``REMEMBER_IDS`` ids processed."""
    state = state if inplace else copy_state(state)
    was_processed(state, event_id)  # the index made whole before it follows the list
    state.processed.append(event_id)
    state.processed_index.add(event_id)
    if len(state.processed) > REMEMBER_IDS:
        for forgotten in state.processed[:-REMEMBER_IDS]:
            state.processed_index.discard(forgotten)
        del state.processed[:-REMEMBER_IDS]
    return state
