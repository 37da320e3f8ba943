"""Notifications against real servers on the loopback address: a Slack
message and a mail with the culprit and the effect, a signed webhook the
receiver verifies, retries and then a dead letter, and a queue that never
blocks the stream."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from streams.notify import MailChannel, Notifier, SlackChannel, WebhookChannel, channels
from tests.receiver import MailReceiver, Receiver
from ttfb import events as ev
from ttfb.settings import Settings

CULPRIT = "3f2a9c81d0e4b5a67c1d2e3f4a5b6c7d8e9f0a1b"
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def alert(n: int = 1, status: str = "attributed",
          changed_files: tuple[str, ...] = ("vision/config.yaml",)) -> ev.Alert:
    return ev.Alert(changed_files=list(changed_files) if status == "attributed" else [],
                    alert_id=f"d{n}:imports", kind="regression", status=status,  # type: ignore[arg-type]
                    scenario="vision", component="imports", effect_ms=312.0, effect_pct=14.2,
                    ci_low_pct=9.1, ci_high_pct=19.4, commit=f"{n:040x}",
                    culprit=CULPRIT if status == "attributed" else "",
                    culprit_confidence=0.995, author="Ada", subject="load the table eagerly",
                    link="http://127.0.0.1:8501/regressions?detection=d1", producer="t")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


async def deliver(notifier: Notifier,
                  *notices: ev.Alert | ev.AlertTriaged | ev.ScenarioBroken) -> None:
    task = asyncio.create_task(notifier.run())
    for notice in notices:
        notifier.offer(notice)
    await asyncio.wait_for(notifier.idle(), 30)
    task.cancel()


async def no_dead_letter(letter: ev.DeadLettered) -> None:
    raise AssertionError(f"dead-lettered: {letter.reason}")


def test_slack_gets_a_readable_message_with_the_culprit_and_effect(receiver: Receiver) -> None:
    asyncio.run(deliver(Notifier([SlackChannel(receiver.url)], no_dead_letter), alert()))
    message = receiver.bodies[0]
    assert "regression attributed in vision/imports" in message["text"]
    shown = "\n".join(b["text"]["text"] for b in message["blocks"])
    assert CULPRIT[:12] in shown and "Ada" in shown and "load the table eagerly" in shown
    assert "+14.2% (+312 ms)" in shown and "[+9.1%, +19.4%]" in shown
    # a config the workflow reads has no frame of its own: the file is named
    assert "it changed what vision imports or reads: vision/config.yaml" in shown
    assert "<http://127.0.0.1:8501/regressions?detection=d1|dashboard>" in shown


def test_mail_carries_the_culprit_and_effect() -> None:
    server = MailReceiver()
    try:
        mail = MailChannel("127.0.0.1", server.port, "lab@example.org",
                           ["team@example.org", "oncall@example.org"], starttls=False)
        many = tuple(f"vision/layer{i}.py" for i in range(7))
        asyncio.run(deliver(Notifier([mail], no_dead_letter), alert(changed_files=many)))
    finally:
        server.close()
    [message] = server.messages
    assert message["To"] == "team@example.org, oncall@example.org"
    assert message["Subject"].startswith("[ttfb-lab] regression attributed in vision/imports")
    body = message.get_payload()
    assert isinstance(body, str)
    assert CULPRIT[:12] in body and "+14.2% (+312 ms)" in body
    text = message.get_payload(decode=True).decode()  # a long line is quoted-printable
    assert ("it changed what vision imports or reads: vision/layer0.py, vision/layer1.py,"
            " vision/layer2.py, vision/layer3.py, vision/layer4.py and 2 more") in text


def test_a_broken_scenario_reaches_slack_and_mail_with_its_error(receiver: Receiver) -> None:
    broken = ev.ScenarioBroken(
        status="broken", scenario="lm", repo="demo", commit="c" * 40, good_commit=CULPRIT,
        reason="workflow exited with code 1: FileNotFoundError: 'data/train.bin'", producer="t")
    fixed = ev.ScenarioBroken(status="working", scenario="lm", repo="demo", commit="d" * 40,
                              broken_at="c" * 40, author="Ada", subject="restore the loader")
    server = MailReceiver()
    try:
        mail = MailChannel("127.0.0.1", server.port, "lab@example.org", ["team@example.org"],
                           starttls=False)
        asyncio.run(deliver(Notifier([SlackChannel(receiver.url), mail], no_dead_letter),
                            broken, fixed))
    finally:
        server.close()
    first, second = receiver.bodies
    assert first["text"] == ("ttfb-lab: lm broken at cccccccccc: every run failed before its "
                             "first batch")
    shown = "\n".join(b["text"]["text"] for b in first["blocks"])
    assert "FileNotFoundError: 'data/train.bin'" in shown and CULPRIT[:12] in shown
    assert second["text"] == "ttfb-lab: lm runs again at dddddddddd"
    assert "failed from cccccccccccc" in "\n".join(b["text"]["text"] for b in second["blocks"])
    subjects = [" ".join(str(m["Subject"]).split()) for m in server.messages]  # unfolded
    assert subjects == ["[ttfb-lab] lm broken at cccccccccc: every run failed before its first "
                        "batch", "[ttfb-lab] lm runs again at dddddddddd"]


def test_a_webhook_is_signed_and_the_receiver_verifies_it(receiver: Receiver) -> None:
    sent = alert()
    asyncio.run(deliver(Notifier([WebhookChannel(receiver.url, SECRET)], no_dead_letter),
                        sent))
    [request] = receiver.requests
    verified = Webhook(SECRET).verify(request.raw, request.headers)
    assert verified == json.loads(ev.encode(sent)) and verified["culprit"] == CULPRIT
    assert request.headers["webhook-id"] == sent.event_id
    with pytest.raises(WebhookVerificationError):  # a body changed on the way fails
        Webhook(SECRET).verify(request.raw.replace(b"14.2", b"1.42"), request.headers)
    other = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(WebhookVerificationError):  # and so does another key
        Webhook(other).verify(request.raw, request.headers)


def test_a_failing_target_is_retried_then_dead_lettered_and_blocks_no_other(
        receiver: Receiver) -> None:
    failing = Receiver(fail=1000, status=500)
    letters: list[ev.DeadLettered] = []

    async def dead(letter: ev.DeadLettered) -> None:
        letters.append(letter)

    secret_url = failing.url + "/T000/B000/s3cr3t-token"
    notifier = Notifier([SlackChannel(secret_url), WebhookChannel(receiver.url)], dead,
                        attempts=3, base_delay=0.01)
    try:
        asyncio.run(deliver(notifier, alert(1), alert(2)))
    finally:
        failing.close()
    assert failing.attempts == 6  # 3 tries each
    assert [b["alert_id"] for b in receiver.bodies] == ["d1:imports", "d2:imports"]
    assert len(letters) == 2 and notifier.tallies[0].dead == 2
    assert "failed 3 times" in letters[0].reason and "HTTP 500" in letters[0].reason
    assert "s3cr3t" not in letters[0].reason  # a Slack URL is a credential
    kept = ev.decode(base64.b64decode(letters[0].raw_b64))  # the alert, whole
    assert isinstance(kept, ev.Alert) and kept.alert_id == "d1:imports"


def test_an_unreachable_mail_server_is_dead_lettered() -> None:
    from ttfb.bus import free_port

    letters: list[ev.DeadLettered] = []

    async def dead(letter: ev.DeadLettered) -> None:
        letters.append(letter)

    mail = MailChannel("127.0.0.1", free_port(), "lab@example.org", ["t@example.org"],
                       username="lab", password="hunter2", starttls=False)
    asyncio.run(deliver(Notifier([mail], dead, attempts=2, base_delay=0.01), alert()))
    assert len(letters) == 1 and "ConnectionRefusedError" in letters[0].reason
    assert "hunter2" not in letters[0].reason


def test_offer_never_blocks_and_drops_the_oldest_when_full() -> None:
    async def scenario() -> tuple[Notifier, list[str]]:
        notifier = Notifier([WebhookChannel("http://127.0.0.1:9/unused")], no_dead_letter,
                            capacity=2)
        for n in range(5):  # nobody drains the queue
            notifier.offer(alert(n))
        kept = [notifier.queues[0].get_nowait()[0].commit for _ in range(2)]
        for _ in kept:
            notifier.queues[0].task_done()
        # the dropped ones count as done: waiting for the queue waits for the kept two only
        await asyncio.wait_for(notifier.idle(), 1)
        return notifier, kept

    notifier, kept = asyncio.run(scenario())
    assert notifier.tallies[0].dropped == 3 and kept == [f"{3:040x}", f"{4:040x}"]


def test_triage_and_retraction_read_as_sentences(receiver: Receiver) -> None:
    triaged = ev.AlertTriaged(alert_id="d1:imports", status="expected", by="ada",
                              note="the new tokenizer is meant to load eagerly",
                              scenario="vision", component="imports", kind="regression",
                              commit="a" * 40, culprit=CULPRIT, effect_pct=14.2,
                              effect_ms=312.0, producer="t")
    asyncio.run(deliver(Notifier([SlackChannel(receiver.url)], no_dead_letter),
                        triaged, alert(status="not_reproduced")))
    first, second = (b["text"] for b in receiver.bodies)
    assert "marked expected by ada" in first
    assert "retracted" in second and "did not reproduce" in second


def test_settings_make_the_channels_and_refuse_bad_ones() -> None:
    settings = Settings(_env_file=None, slack_webhooks=["https://hooks.slack.com/services/x"],
                        alert_webhooks=["http://127.0.0.1:1/hook"], webhook_secret=SECRET,
                        smtp_host="mail.example.org", mail_to=["t@example.org"])
    assert [c.kind for c in channels(settings)] == ["slack", "webhook", "mail"]
    with pytest.raises(ValueError, match="http"):
        Settings(_env_file=None, slack_webhooks=["hooks.slack.com/services/x"])
    with pytest.raises(ValueError, match="whsec_"):
        Settings(_env_file=None, webhook_secret="not-a-secret")
