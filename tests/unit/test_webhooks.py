"""The webhook sink: retries with backoff against a real HTTP server, never blocks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from streams.webhooks import WebhookSink, post_with_retries
from tests.receiver import Receiver
from ttfb import events as ev


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=2)
    yield r
    r.server.shutdown()


def alert(n: int) -> ev.Alert:
    return ev.Alert(alert_id=f"d{n}:config", kind="regression", status="confirmed",
                    scenario="lm", component="config", effect_ms=300.0, effect_pct=12.0,
                    ci_low_pct=8.0, ci_high_pct=16.0, commit=f"c{n}")


def test_post_retries_until_the_receiver_answers(receiver: Receiver) -> None:
    ok = asyncio.run(post_with_retries(receiver.url, ev.encode(alert(1)), attempts=4,
                                       base_delay=0.01))
    assert ok and receiver.attempts == 3
    assert receiver.bodies[0]["type"] == "Alert" and receiver.bodies[0]["commit"] == "c1"


def test_post_gives_up_without_raising(receiver: Receiver) -> None:
    receiver.fail = 10
    ok = asyncio.run(post_with_retries(receiver.url, b"{}", attempts=2, base_delay=0.01))
    assert not ok and receiver.attempts == 2 and not receiver.bodies


def test_sink_delivers_in_order_to_every_url(receiver: Receiver) -> None:
    other = Receiver(fail=0)

    async def scenario() -> WebhookSink:
        sink = WebhookSink([receiver.url, other.url], attempts=5, base_delay=0.01)
        task = asyncio.create_task(sink.run())
        for n in range(3):
            sink.offer(alert(n))
        while sink.delivered < 6:
            await asyncio.sleep(0.01)
        task.cancel()
        return sink

    sink = asyncio.run(scenario())
    other.server.shutdown()
    assert sink.dropped == 0
    assert [b["commit"] for b in receiver.bodies] == ["c0", "c1", "c2"]
    assert [b["commit"] for b in other.bodies] == ["c0", "c1", "c2"]


def test_offer_never_blocks_and_drops_the_oldest_when_full() -> None:
    async def scenario() -> tuple[WebhookSink, list[str]]:
        sink = WebhookSink(["http://127.0.0.1:9/unused"], capacity=2)
        for n in range(5):  # nobody drains the queue
            sink.offer(alert(n))
        kept = [ev.decode(sink.queue.get_nowait()).commit for _ in range(2)]  # type: ignore[attr-defined]
        return sink, kept

    sink, kept = asyncio.run(scenario())
    assert sink.dropped == 3 and kept == ["c3", "c4"]
