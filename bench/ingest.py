"""Into the store from the measurements topic: the Python sink, or
ClickHouse reading the topic itself (``TTFB_CLICKHOUSE_KAFKA_INGEST``:
its Kafka engine and the views of ``ttfb.store.ingest``), in one run on
the same events.

N canonical run events (three in four ``RunCompleted``, the rest
``ComponentMeasured``) are put on an embedded Tansu broker's topic first.
Then, each into a fresh chDB store:

- sink: one consumer reads the topic in batches, each decoded and written
  as the sink does (``decode_batch``, ``StoreWriter``, a held session);
- clickhouse: the views are made and chDB's Kafka engine reads the topic;
  its consumer group's first assignment is timed apart (``joined``), and
  the rate is counted from the first rows stored to the last.

Events per second into the store, and the CPU time per event of this
process (chDB runs inside it for both).

    .venv/bin/python bench/ingest.py [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.sink import StoreWriter, decode_batch  # noqa: E402
from ttfb import events as ev  # noqa: E402
from ttfb.bus import EmbeddedBroker  # noqa: E402
from ttfb.settings import Settings  # noqa: E402
from ttfb.store import Store, ingest, open_store  # noqa: E402


def cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def workload(count: int) -> list[bytes]:
    out = []
    for i in range(count):
        if i % 4 == 3:
            event: ev.Event = ev.ComponentMeasured(
                repo="demo", scenario=f"s{i % 10}", commit=f"c{i // 40}", component="imports",
                ms=1000.0 + i % 97, purpose="monitor")
        else:
            comps = {"imports": 1000.0 + i % 97, "data": 200.0, "model": 900.0}
            event = ev.RunCompleted(repo="demo", scenario=f"s{i % 10}", commit=f"c{i // 40}",
                                    repetition=i % 3, runs_total=3, purpose="monitor",
                                    ttfb_ms=sum(comps.values()), components=comps)  # type: ignore[arg-type]
        out.append(ev.encode(event))
    return out


async def put(bootstrap: str, topic: str, messages: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        for message in messages:
            await producer.send(topic, message)
        await producer.flush()
    finally:
        await producer.stop()


async def by_sink(settings: Settings, topic: str, count: int) -> tuple[float, float]:
    from aiokafka import AIOKafkaConsumer

    writer = StoreWriter(lambda: open_store(settings, hold_s=settings.sink_hold_s))
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                                group_id="bench-sink", auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    stored, started, cpu = 0, 0.0, 0.0
    try:
        while stored < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=settings.sink_batch_size)
            messages = [(m.topic, m.value or b"") for records in batches.values()
                        for m in records]
            if not messages:
                continue
            if not started:
                started, cpu = time.perf_counter(), cpu_s()
            stored += await writer.write(decode_batch(messages, "bench", "deadletter",
                                                      settings.max_event_bytes))
            await consumer.commit()
    finally:
        await consumer.stop()
        await asyncio.to_thread(writer.close)
    return count / (time.perf_counter() - started), (cpu_s() - cpu) / count


def by_clickhouse(settings: Settings, count: int) -> tuple[float, float, float]:
    store = open_store(settings)
    with store.backend.transaction() as tx:  # the Kafka engine reads while a session is open
        made = time.perf_counter()
        ingest.install(tx, settings)
        view = Store(tx, store.db)
        first_at, first, cpu = 0.0, 0, 0.0
        while True:
            stored = int(view.query(f"SELECT count() AS n FROM {store.db}.events")[0]["n"])
            if stored and not first_at:
                first_at, first, cpu = time.perf_counter(), stored, cpu_s()
            if stored >= count:
                break
            if time.perf_counter() - made > 600:
                raise TimeoutError(f"ClickHouse stored {stored} of {count} events in 600 s")
            time.sleep(0.05)
        done = time.perf_counter()
        for sql in ingest.drop_ddl(settings):
            tx.command(sql)
    if first >= count:  # no rate to count from the first rows to the last
        raise SystemExit(f"ClickHouse stored all {count:,} events in its first block: "
                         "give more --events (100,000 is the measured size)")
    rate = (count - first) / (done - first_at)
    return rate, (cpu_s() - cpu) / max(1, count - first), first_at - made


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    messages = workload(args.events)
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        def settings(name: str) -> Settings:
            return Settings(data_dir=Path(tmp) / name, kafka_bootstrap=broker.bootstrap,
                            _env_file=None)  # type: ignore[call-arg]

        topic = settings("x").topic("measurements")
        asyncio.run(put(broker.bootstrap, topic, messages))
        sink_rate, sink_cpu = asyncio.run(by_sink(settings("sink"), topic, args.events))
        ch_rate, ch_cpu, joined = by_clickhouse(settings("clickhouse"), args.events)
    print(f"events: {args.events:,}")
    print("| into the store | events/s | CPU per event |")
    print("| --- | --- | --- |")
    print(f"| Python sink (decode, held chDB session) | {sink_rate:,.0f}"
          f" | {sink_cpu * 1e3:.3f} ms |")
    print(f"| ClickHouse Kafka engine + views | {ch_rate:,.0f} | {ch_cpu * 1e3:.3f} ms |")
    print(f"ratio: {ch_rate / sink_rate:.1f}x; the engine's consumer group first read "
          f"{joined:.1f} s after its table was made")
    return 0


if __name__ == "__main__":
    sys.exit(main())
