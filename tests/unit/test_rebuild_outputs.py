"""A replay of a long history keeps only its newest outputs (those a lost
lab may not have delivered), so its memory does not grow with the history."""

from __future__ import annotations

import numpy as np

from streams.detection import Policy
from streams.rebuild import replay
from tests.unit.test_detection_fold import run


def test_a_replay_keeps_its_newest_outputs_in_order_and_counts_them_all() -> None:
    rng = np.random.default_rng(8)
    events = [run(rng, f"c{c}", r) for c in range(12) for r in range(3)]
    every = replay(events, Policy(), keep=None)
    few = replay(events, Policy(), keep=5)
    assert every.produced == few.produced == len(every.outputs) >= 12  # a CommitTested each
    assert list(few.outputs) == list(every.outputs)[-5:]
    assert few.states.keys() == every.states.keys()
