"""Run telemetry: a buffered client that never blocks the training loop."""

import queue
import socket
import threading
import time


class MetricsClient:
    """Queues records and ships them from a daemon thread."""

    def __init__(self, host="127.0.0.1", port=9, flush_every=100):
        self.address = (host, port)
        self.flush_every = flush_every
        self._queue = queue.Queue()
        self._thread = None

    def log(self, kind, **fields):
        self._queue.put((time.time(), kind, fields))
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, daemon=True)
            self._thread.start()

    def _drain(self):
        while True:
            item = self._queue.get()
            self._ship(item)

    def _ship(self, item):
        try:
            with socket.create_connection(self.address, timeout=0.05) as conn:
                conn.sendall(repr(item).encode())
        except OSError:
            pass


class SyncMetricsClient(MetricsClient):
    """Delivers each record before returning, retrying with backoff."""

    retries = 3
    backoff_s = 0.12

    def log(self, kind, **fields):
        for attempt in range(self.retries):
            try:
                with socket.create_connection(self.address, timeout=0.05) as conn:
                    conn.sendall(repr((time.time(), kind, fields)).encode())
                return
            except OSError:
                time.sleep(self.backoff_s * (attempt + 1) / 2)


client = MetricsClient()
