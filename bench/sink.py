"""The sink's own rate into chDB: a session a batch, or one held for the
batches that follow (``TTFB_SINK_HOLD_S``), alternating in one run.

Batches of ``RunCompleted`` events (decoded as the sink decodes them) are
written one after another, a short pause between them as on a live bus;
events per second of writing (pauses left out) and the process's CPU time
per event.

    .venv/bin/python bench/sink.py [--batches 40] [--size 100] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import run_event  # noqa: E402

from streams.sink import StoreWriter, decode_batch  # noqa: E402
from ttfb.settings import Settings  # noqa: E402
from ttfb.store import open_store  # noqa: E402

PAUSE_S = 0.05


def cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


async def measure(hold_s: float, batches: int, size: int) -> tuple[float, float]:
    """(events/s while writing, CPU ms per event)."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), _env_file=None)  # type: ignore[call-arg]
        open_store(settings).close()  # created and migrated before the clock starts
        writer = StoreWriter(lambda: open_store(settings, hold_s=hold_s))
        topic = settings.topic("measurements")
        messages = [[(topic, run_event(rng, f"s{i % 20}", f"c{b}", i)) for i in range(size)]
                    for b in range(batches)]
        started, used = time.perf_counter(), cpu_s()
        for batch in messages:
            await writer.write(decode_batch(batch, "bench", "deadletter", 1_000_000))
            await asyncio.sleep(PAUSE_S)
        wall = time.perf_counter() - started - PAUSE_S * batches
        used = cpu_s() - used
        writer.close()  # chDB serves one data directory a process: the next has its own
    return batches * size / wall, used / (batches * size) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for r in range(args.rounds):
        for hold_s in (0.0, 1.0):
            rate, cpu_ms = asyncio.run(measure(hold_s, args.batches, args.size))
            print(f"round {r}  hold {hold_s:.0f} s  {rate:8,.0f} events/s  "
                  f"CPU {cpu_ms:.2f} ms/event", flush=True)


if __name__ == "__main__":
    main()
