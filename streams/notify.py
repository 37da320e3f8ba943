"""Notifications: each alert (confirmed, attributed, retracted) and each
triage of one, sent to the channels a team configures: Slack incoming
webhooks, e-mail over SMTP, and generic JSON webhooks signed with the
Standard Webhooks scheme (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``; https://www.standardwebhooks.com).

The decision stream never waits on a channel: ``Notifier.offer`` queues
without blocking, one bounded queue per channel, so a channel that is down
delays nobody else. Each message is retried with exponential backoff
(tenacity); one that still fails is dead-lettered with its reason (the
dead-letter topic, hence the store and the dashboard's dead letters page).
When a queue is full the oldest message is dropped with a warning: every
alert is on the alerts topic and in the store as well.

Targets are secrets (a Slack webhook URL is its own credential): logs and
dead letters name a channel by its kind and host only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import urlsplit

from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from ttfb import events as ev
from ttfb import metrics
from ttfb.settings import Settings

log = logging.getLogger(__name__)

Notice = ev.Alert | ev.AlertTriaged | ev.ScenarioBroken
NOTICE_TYPES = (ev.Alert, ev.AlertTriaged, ev.ScenarioBroken)
DeadLetter = Callable[[ev.DeadLettered], Awaitable[Any]]
# the types a notifier takes, recognised in the encoded bytes before decoding
NOTICE_MARKERS = tuple(f'"type":"{t.__name__}"'.encode() for t in NOTICE_TYPES)


class NotifyError(Exception):
    """A channel's delivery failed; the message says why in a sentence."""


# --- what a notice says ---------------------------------------------------

def effect(alert: ev.Alert | ev.AlertTriaged) -> str:
    text = f"{alert.effect_pct:+.1f}% ({alert.effect_ms:+,.0f} ms)"
    if isinstance(alert, ev.Alert) and (alert.ci_low_pct or alert.ci_high_pct):
        text += f", 95% CI [{alert.ci_low_pct:+.1f}%, {alert.ci_high_pct:+.1f}%]"
    return text


def listed(names: Sequence[str], most: int = 5) -> str:
    """``names``, the first ``most`` of them, and how many more."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def headline(notice: Notice) -> str:
    """One line: what happened, where, how much."""
    if isinstance(notice, ev.ScenarioBroken):
        on = f" on {notice.hardware_class}" if notice.hardware_class else ""
        if notice.status == "broken":
            return (f"{notice.scenario} broken at {notice.commit[:10]}{on}: every run failed "
                    "before its first batch")
        return f"{notice.scenario} runs again at {notice.commit[:10]}{on}"
    where = f"{notice.scenario}/{notice.component}"
    if isinstance(notice, ev.AlertTriaged):
        who = f" by {notice.by}" if notice.by else ""
        return (f"{notice.kind} in {where} at {notice.commit[:10]} marked {notice.status}"
                f"{who}")
    if notice.status == "not_reproduced":
        return (f"retracted: {notice.kind} in {where} at {notice.commit[:10]} did not "
                "reproduce")
    state = "attributed" if notice.culprit else "confirmed"
    return f"{notice.kind} {state} in {where}: {effect(notice)} at {notice.commit[:10]}"


def details(notice: Notice) -> list[str]:
    """The lines under the headline: culprit, effect, note, link."""
    lines: list[str] = []
    if isinstance(notice, ev.ScenarioBroken):
        if notice.status == "broken":
            lines += [f"error: {notice.reason}" if notice.reason else "error: not reported",
                      f"last commit whose runs completed: {notice.good_commit[:12]}"]
        else:
            by = f" by {notice.author}" if notice.author else ""
            lines.append(f"its runs had failed from {notice.broken_at[:12]}; "
                         f"{notice.commit[:12]}{by}: {notice.subject}")
        return lines
    if isinstance(notice, ev.AlertTriaged):
        lines.append(f"effect {effect(notice)}")
        if notice.culprit:
            lines.append(f"culprit {notice.culprit[:12]}")
        if notice.note:
            lines.append(f"note: {notice.note}")
    elif notice.status == "not_reproduced":
        lines.append("the bisect ran both ends again and they no longer differ; "
                     "no commit is blamed")
    else:
        lines.append(f"effect {effect(notice)}")
        if notice.measured:
            lines.append(notice.whole_text(notice.kind))
        if notice.culprit:
            sure = "" if notice.culprit_confidence >= ev.BISECT_STOP else \
                f", a best guess (posterior {notice.culprit_confidence:.2f})"
            by = f" by {notice.author}" if notice.author else ""
            lines.append(f"culprit {notice.culprit[:12]}{by}: {notice.subject}{sure}")
            if notice.changed_files:
                lines.append(f"it changed what {notice.scenario} imports or reads: "
                             f"{listed(notice.changed_files)}")
        else:
            lines.append(f"bisecting; commit {notice.commit[:12]}: {notice.subject}")
    if notice.link:
        lines.append(notice.link)
    return lines


def slack_payload(notice: Notice) -> dict[str, Any]:
    """A Slack message: ``text`` for notifications and clients without
    blocks, and the same in blocks (mrkdwn)."""
    title = headline(notice)
    body = details(notice)
    text = f"ttfb-lab: {title}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack_escape(title)}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(
            f"<{line}|dashboard>" if line == getattr(notice, "link", None)
            else _slack_escape(line)
            for line in body)}},
    ]
    return {"text": text, "blocks": blocks}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mail_message(notice: Notice, sender: str, to: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[ttfb-lab] {headline(notice)}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    message.set_content("\n".join([headline(notice), "", *details(notice)]) + "\n")
    return message


def safe_target(url: str) -> str:
    """A URL as logs and dead letters may show it: scheme and host only."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


# --- channels -------------------------------------------------------------

class Channel(Protocol):
    kind: str

    @property
    def target(self) -> str: ...  # printable: no credential

    async def send(self, notice: Notice, raw: bytes) -> None: ...


async def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s, \
                s.post(url, data=body, headers={"Content-Type": "application/json",
                                                "User-Agent": "ttfb-lab", **headers}) as r:
            if r.status >= 300:
                raise NotifyError(f"{safe_target(url)} answered HTTP {r.status}")
            await r.read()
    except aiohttp.ClientError as exc:
        raise NotifyError(f"{safe_target(url)}: {type(exc).__name__}: {exc}"[:300]) from None
    except TimeoutError:
        raise NotifyError(f"{safe_target(url)}: no answer within {timeout:g}s") from None


@dataclass
class SlackChannel:
    url: str
    timeout: float = 10.0
    kind: str = "slack"

    @property
    def target(self) -> str:
        return safe_target(self.url)

    async def send(self, notice: Notice, raw: bytes) -> None:
        await _post(self.url, json.dumps(slack_payload(notice)).encode(), {}, self.timeout)


@dataclass
class WebhookChannel:
    """The event's JSON, as on the bus, with Standard Webhooks headers; signed
    when a secret is set. The id is the event's, so a receiver drops a retry
    it already has."""
    url: str
    secret: str = ""
    timeout: float = 10.0
    kind: str = "webhook"

    @property
    def target(self) -> str:
        return safe_target(self.url)

    async def send(self, notice: Notice, raw: bytes) -> None:
        await _post(self.url, raw, signed_headers(notice.event_id, raw, self.secret),
                    self.timeout)


def signed_headers(message_id: str, body: bytes, secret: str,
                   now: datetime | None = None) -> dict[str, str]:
    from standardwebhooks.webhooks import Webhook

    stamp = now or datetime.now(UTC)
    headers = {"webhook-id": message_id, "webhook-timestamp": str(int(stamp.timestamp()))}
    if secret:
        headers["webhook-signature"] = Webhook(secret).sign(message_id, stamp, body.decode())
    return headers


@dataclass
class MailChannel:
    host: str
    port: int
    sender: str
    to: list[str]
    username: str = ""
    password: str = ""
    starttls: bool = True
    timeout: float = 10.0
    kind: str = "mail"

    @property
    def target(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def send(self, notice: Notice, raw: bytes) -> None:
        message = mail_message(notice, self.sender, self.to)
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(f"{self.target}: {type(exc).__name__}: {exc}"[:300]) from None


def channels(settings: Settings) -> list[Channel]:
    """The channels the settings configure (none: nothing is sent)."""
    out: list[Channel] = [SlackChannel(url) for url in settings.slack_webhooks]
    secret = settings.webhook_secret.get_secret_value()
    out += [WebhookChannel(url, secret) for url in settings.alert_webhooks]
    if settings.smtp_host and settings.mail_to:
        out.append(MailChannel(
            settings.smtp_host, settings.smtp_port, settings.mail_from, settings.mail_to,
            settings.smtp_username, settings.smtp_password.get_secret_value(),
            settings.smtp_starttls))
    return out


# --- the notifier ---------------------------------------------------------

@dataclass
class Tally:
    delivered: int = 0
    dead: int = 0
    dropped: int = 0


@dataclass
class Notifier:
    """One bounded queue and one sending task per channel."""
    channels: Sequence[Channel]
    dead_letter: DeadLetter
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 60.0
    capacity: int = 1000
    queues: list[asyncio.Queue[tuple[Notice, bytes]]] = field(init=False)
    tallies: list[Tally] = field(init=False)

    def __post_init__(self) -> None:
        self.queues = [asyncio.Queue(self.capacity) for _ in self.channels]
        self.tallies = [Tally() for _ in self.channels]

    def offer(self, notice: Notice, raw: bytes | None = None) -> None:
        """Queue one notice for every channel without waiting."""
        body = raw if raw is not None else ev.encode(notice)
        for channel, queue, tally in zip(self.channels, self.queues, self.tallies, strict=True):
            if queue.full():
                queue.get_nowait()
                queue.task_done()  # dropped: ``idle`` does not wait for it
                tally.dropped += 1
                metrics.NOTIFICATIONS.labels(channel.kind, "dropped").inc()
                log.warning("%s %s: queue full, dropped the oldest notice (%d so far)",
                            channel.kind, channel.target, tally.dropped)
            queue.put_nowait((notice, body))

    async def run(self) -> None:
        """Send for ever, each channel on its own."""
        await asyncio.gather(*(self._drain(i) for i in range(len(self.channels))))

    async def _drain(self, i: int) -> None:
        channel, queue, tally = self.channels[i], self.queues[i], self.tallies[i]
        while True:
            notice, raw = await queue.get()
            try:
                await self.deliver(channel, notice, raw)
                tally.delivered += 1
                metrics.NOTIFICATIONS.labels(channel.kind, "delivered").inc()
            except Exception as exc:  # any failure, after the retries: recorded, not fatal
                tally.dead += 1
                metrics.NOTIFICATIONS.labels(channel.kind, "dead_lettered").inc()
                reason = (f"notification to {channel.kind} {channel.target} failed "
                          f"{self.attempts} times; last: {exc}")
                log.error("%s (%s %s)", reason, notice.type, notice.event_id)
                await self.dead_letter(ev.dead_letter(raw, reason, "alerts", "ttfb-notify"))
            finally:
                queue.task_done()

    async def deliver(self, channel: Channel, notice: Notice, raw: bytes) -> None:
        """One notice to one channel, with retries; raises the last failure."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts), reraise=True,
            wait=wait_exponential(multiplier=self.base_delay, max=self.max_delay),
            before_sleep=lambda state: log.warning(
                "%s %s: attempt %d failed (%s); retrying", channel.kind, channel.target,
                state.attempt_number, state.outcome.exception() if state.outcome else ""))
        async for attempt in retrying:
            with attempt:
                await channel.send(notice, raw)

    async def idle(self) -> None:
        """Until every queued notice is delivered or dead-lettered."""
        for queue in self.queues:
            await queue.join()
