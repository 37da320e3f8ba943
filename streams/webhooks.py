"""Optional webhook sink: POST every alert to the configured URLs.

The decision stream never waits on a webhook: alerts go into a bounded
queue and a background task posts them, each URL with retries and
exponential backoff. When a receiver is down long enough for the queue to
fill, the oldest queued alert is dropped with a warning — every alert is
also on the alerts topic and in the store, so a subscriber can catch up
from either.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Callable, Sequence

from ttfb import events as ev

log = logging.getLogger(__name__)

Post = Callable[[str, bytes], None]


def http_post(url: str, body: bytes) -> None:
    request = urllib.request.Request(  # noqa: S310 - URLs come from the operator's settings
        url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()


async def post_with_retries(url: str, body: bytes, attempts: int = 5, base_delay: float = 0.5,
                            post: Post = http_post) -> bool:
    """POST one body, retrying with exponential backoff; never raises."""
    for attempt in range(attempts):
        try:
            await asyncio.to_thread(post, url, body)
            return True
        except Exception as exc:  # any failure of the receiver is retried
            log.warning("webhook %s failed (%s); attempt %d of %d", url, exc, attempt + 1,
                        attempts)
            if attempt + 1 < attempts:
                await asyncio.sleep(base_delay * 2**attempt)
    log.error("webhook %s: giving up on one alert after %d attempts", url, attempts)
    return False


class WebhookSink:
    """A bounded queue of alerts and the task that posts them."""

    def __init__(self, urls: Sequence[str], capacity: int = 1000, attempts: int = 5,
                 base_delay: float = 0.5, post: Post = http_post) -> None:
        self.urls = list(urls)
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(capacity)
        self.attempts, self.base_delay, self.post = attempts, base_delay, post
        self.dropped = 0
        self.delivered = 0

    def offer(self, alert: ev.Alert) -> None:
        """Queue one alert without waiting; drops the oldest when full."""
        if not self.urls:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
            log.warning("webhook queue full: dropped the oldest alert (%d so far)", self.dropped)
        self.queue.put_nowait(ev.encode(alert))

    async def run(self) -> None:
        """Post queued alerts for ever; URLs in parallel, alerts in order."""
        while True:
            body = await self.queue.get()
            results = await asyncio.gather(*(
                post_with_retries(url, body, self.attempts, self.base_delay, self.post)
                for url in self.urls))
            self.delivered += sum(results)
