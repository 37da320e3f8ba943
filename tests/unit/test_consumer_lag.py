"""The streams worker's lag gauge, from the consumer's offsets."""

from __future__ import annotations

from faust.types import TP

from streams.transport import partition_lag


class Consumer:
    """The part of faust's consumer the gauge reads: the assignment, the
    highwater per partition, and the read and committed offsets."""

    def __init__(self, highwater: dict[TP, int | None], read: dict[TP, int],
                 committed: dict[TP, int]) -> None:
        self._highwater = highwater
        self._read_offset = read
        self._committed_offset = committed

    def assignment(self) -> set[TP]:
        return set(self._highwater)

    def highwater(self, tp: TP) -> int | None:
        return self._highwater[tp]


def test_a_partition_just_assigned_is_left_out_until_its_highwater_is_known() -> None:
    read, committed, fresh = TP("m", 0), TP("m", 1), TP("m", 2)
    consumer = Consumer({read: 72, committed: 72, fresh: None},
                        read={read: 60}, committed={committed: 50, fresh: 40})
    assert partition_lag(consumer) == {("m", 0): 11, ("m", 1): 22}


def test_lag_is_never_negative() -> None:
    tp = TP("m", 0)
    assert partition_lag(Consumer({tp: 5}, read={tp: 9}, committed={})) == {("m", 0): 0}
