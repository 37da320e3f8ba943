"""The Faust app: topics, the ClickHouse sink, and the decision streams.

``build_app(settings)`` wires everything from one ``Settings``; ``main()``
builds the settings once and runs a worker. Several workers of the same app
share the topics' partitions (scenario = key, so one worker owns a
scenario's state).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import faust

from streams import transport
from streams.sink import DeadLetter, StoreWriter, store_batch
from streams.transport import partition_lag
from ttfb import events as ev
from ttfb import metrics, native
from ttfb.bus import wait_for_bus
from ttfb.events import encode
from ttfb.process import exit_with_lab
from ttfb.settings import TOPICS, Settings
from ttfb.store import ingest, open_store

log = logging.getLogger(__name__)


def broker_url(bootstrap: str, scheme: str = "kafka") -> str:
    return ";".join(f"{scheme}://{host.strip()}" for host in bootstrap.split(",")
                    if host.strip())


def build_app(settings: Settings, app_id: str | None = None) -> faust.App:
    """The lab's Faust app over the configured (or embedded, already started) bus."""
    app = new_app(settings, app_id or settings.streams_app_id)
    topics = lab_topics(app, settings)
    app.ttfb_topics = topics  # type: ignore[attr-defined]
    if not settings.sink_apart:  # else the sink's own process stores them
        register_sink(app, settings, topics)
    from streams.decisions import register_decisions

    register_decisions(app, settings, topics)
    register_metrics(app, settings)
    if settings.retention_days > 0:
        register_retention(app, settings)
    if settings.alert_webhooks or settings.slack_webhooks or settings.smtp_host:
        register_notifications(app, settings, topics)
    return app


PRODUCER_BATCH_BYTES = 256 * 1024


def lab_topics(app: faust.App, settings: Settings) -> dict[str, faust.TopicT]:
    """The lab's topics by name, as raw bytes (the agents decode them)."""
    return {name: app.topic(settings.topic(name), key_serializer="raw",
                            value_serializer="raw", partitions=settings.partitions)
            for name in TOPICS}


def new_app(settings: Settings, app_id: str) -> faust.App:
    """A Faust app on the bus as the lab configures it (fetch wait, timeouts,
    credentials), with no agents yet: the lab's, or a benchmark's."""
    if not settings.kafka_bootstrap:
        raise ValueError("build_app needs a bootstrap address; start the embedded bus first")
    # Faust's own folder, which it makes (not its parents) even for tables in
    # memory: under the lab's data directory, not wherever the lab was started
    datadir = settings.data_dir / "streams" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}
    if settings.kafka_sasl_username:
        extra["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism)
    app = transport.App(
        app_id,
        broker=broker_url(settings.kafka_bootstrap),
        # the consumer with a short fetch wait (streams.transport says why)
        broker_consumer=broker_url(settings.kafka_bootstrap, transport.SCHEME),
        # a batch is acked only once its effects are durable: on shutdown there
        # is nothing to wait for, the unacked rest is processed again on restart
        stream_wait_empty=False,
        store="memory://",
        datadir=str(datadir).replace("{", "{{").replace("}", "}}"),  # (Faust formats it)
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        producer_max_request_size=settings.max_event_bytes * 2,
        # the bytes of a partition's batch of records: aiokafka's send waits for
        # the broker once it is full, and the folds write each changed scenario's
        # state (kilobytes) to the changelog every batch; at Kafka's 16 kB that
        # was a wait every two or three states
        producer_max_batch_size=min(PRODUCER_BATCH_BYTES, settings.max_event_bytes * 2),
        table_standby_replicas=0,
        # Tansu holds a first join for the rebalance timeout; keep it short so a
        # worker is ready in seconds and a dead one is noticed quickly.
        broker_session_timeout=settings.group_session_timeout_s,
        broker_rebalance_timeout=settings.group_session_timeout_s,
        broker_heartbeat_interval=1.0,
        **extra,
    )
    app.ttfb_fetch_max_wait_ms = settings.fetch_max_wait_ms  # type: ignore[attr-defined]
    return app


def dead_letterer(topics: dict[str, faust.TopicT]) -> DeadLetter:
    """Sends a dead letter to the lab's dead-letter topic."""
    async def dead_letter(letter: ev.DeadLettered) -> None:
        await topics["deadletter"].send(key=letter.key.encode(), value=encode(letter))

    return dead_letter


def register_notifications(app: faust.App, settings: Settings,
                           topics: dict[str, faust.TopicT]) -> None:
    """Send each alert and each triage to the configured channels, off the
    stream's path; what keeps failing goes to the dead-letter topic."""
    from streams.decisions import decoded
    from streams.notify import NOTICE_MARKERS, NOTICE_TYPES, Notifier, channels

    notifier = Notifier(channels(settings), dead_letterer(topics),
                        attempts=settings.notify_attempts, base_delay=settings.notify_backoff_s)
    app.ttfb_notifier = notifier  # type: ignore[attr-defined]
    # alerts come on the alerts topic, triage on the detections topic
    source = app.topic(settings.topic("alerts"), settings.topic("detections"),
                       key_serializer="raw", value_serializer="raw")

    @app.agent(source, name="ttfb-notify")
    async def notices(stream: faust.StreamT) -> None:
        async for raw in stream:
            if not raw or not any(marker in raw for marker in NOTICE_MARKERS):
                continue
            notice = decoded(raw, settings.max_event_bytes)  # invalid: the sink dead-letters it
            if isinstance(notice, NOTICE_TYPES):
                notifier.offer(notice, raw)

    @app.task
    async def send_notices() -> None:
        await notifier.run()


def register_retention(app: faust.App, settings: Settings) -> None:
    """Expire raw runs past ``retention_days`` (``ttfb.store.retention``) on
    start and every hour, on the leader worker only."""
    import asyncio

    from ttfb.store.retention import expire

    async def run() -> None:
        try:
            done = await asyncio.to_thread(expire, open_store(settings), settings.retention_days)
        except Exception:  # the store is down: the next hour tries again
            log.exception("retention: expiring old runs failed")
            return
        if done["commits"]:
            log.info("retention: %s", done)

    @app.timer(3600.0, on_leader=True)
    async def hourly() -> None:
        await run()

    @app.task
    async def at_start() -> None:
        await run()


def register_metrics(app: faust.App, settings: Settings) -> None:
    """``/metrics`` and ``/health`` (healthy while the worker's consumer has
    partitions or is still starting); the consumer's lag, every 5 s."""
    def healthy() -> bool:
        return not app.should_stop

    @app.task
    async def start_metrics() -> None:
        metrics.FOLDS_COMPILED.set(1 if native.active() else 0)
        # as Python the folds are slower: said at the level an operator reads
        (log.info if native.active() else log.warning)("decision folds: %s", native.describe())
        metrics.serve(settings.metrics_host, settings.streams_metrics_port, healthy)

    @app.timer(5.0)
    async def lag() -> None:
        try:
            for (topic, partition), behind in partition_lag(app.consumer).items():
                metrics.CONSUMER_LAG.labels(topic, str(partition)).set(behind)
        except Exception:  # a faust timer that raises crashes the app: a gauge is not worth that
            log.warning("consumer lag not measured this time", exc_info=True)


def register_sink(app: faust.App, settings: Settings, topics: dict[str, faust.TopicT]) -> None:
    """Every topic lands in the store; acks only after the rows are durable."""
    every = app.topic(*settings.all_topics(), key_serializer="raw", value_serializer="raw")
    writer = StoreWriter(lambda: open_store(settings, hold_s=settings.sink_hold_s))
    app.ttfb_writer = writer  # type: ignore[attr-defined]
    dead_letter = dead_letterer(topics)

    @app.agent(every, name="ttfb-sink")
    async def sink(stream: faust.StreamT) -> None:
        take = stream.noack_take  # type: ignore[attr-defined]  # faust-streaming >= 0.11
        async for batch in take(settings.sink_batch_size, within=settings.sink_batch_seconds):
            messages = [(e.message.topic, e.message.value or b"") for e in batch]
            await store_batch(messages, settings, writer, dead_letter,
                              stop=lambda: app.should_stop)
            for event in batch:
                await stream.ack(event)


def new_worker(app: faust.App, loglevel: str) -> faust.Worker:
    """A Faust worker for ``app``, without its terminal spinner: for the
    spinner to turn at every log record, Faust sets the root logger to DEBUG,
    and every debug line of Faust and aiokafka was then made, to be dropped
    by the handler (a twentieth of a busy worker's time)."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    return worker


def main(argv: list[str] | None = None) -> int:
    """Run one streams worker until SIGTERM/SIGINT."""
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s streams %(levelname)s %(message)s")
    refusal = settings.key_refusal()
    if refusal:
        print(f"streams: {refusal}", file=sys.stderr)
        return 2
    missing = "" if settings.sink_apart else ingest.views_missing(settings)
    if missing:
        print(f"streams: {missing}", file=sys.stderr)
        return 2
    exit_with_lab()
    wait_for_bus(settings)
    app = build_app(settings)
    worker = new_worker(app, settings.log_level)
    sys.argv = [sys.argv[0], "worker"]
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
