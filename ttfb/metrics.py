"""Prometheus metrics and a health endpoint for each of the lab's services.

Each service (the streams worker, an agent) serves ``/metrics`` (the
Prometheus text format, prometheus_client's default registry) and
``/health`` (200 while the service says it is healthy, else 503) on its own
port, from a daemon thread: a scrape never waits on the event loop. A port
that is taken costs the metrics, not the service: a warning, and it runs on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

EVENTS_IN = Counter("ttfb_events_in_total", "Events the sink received, per topic", ["topic"])
EVENTS_OUT = Counter("ttfb_events_out_total", "Events the decision folds sent, per topic",
                     ["topic"])
DEAD_LETTERS = Counter("ttfb_dead_letters_total", "Messages dead-lettered, by who",
                       ["source"])
REFUSED = Counter("ttfb_refused_commands_total", "Commands an agent refused, by kind",
                  ["kind"])
RUNS = Counter("ttfb_runs_total", "Runs an agent finished, by status", ["status"])
RUNS_RUNNING = Gauge("ttfb_runs_running", "Commands an agent is executing")
RUNS_QUEUED = Gauge("ttfb_runs_queued", "Commands an agent holds, waiting for their slot")
FOLD_SECONDS = Histogram("ttfb_fold_batch_seconds", "A decision batch: folded, emitted, and "
                         "its outputs and states acknowledged by the broker",
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
CONSUMER_LAG = Gauge("ttfb_consumer_lag", "Messages on a partition not yet read by this worker",
                     ["topic", "partition"])
FOLDS_COMPILED = Gauge("ttfb_folds_compiled", "1 where this worker runs the decision folds "
                       "compiled (ttfb.native), 0 where it runs them as Python")
NOTIFICATIONS = Counter("ttfb_notifications_total", "Notifications, by channel and outcome",
                        ["channel", "outcome"])


def serve(host: str, port: int,
          healthy: Callable[[], bool] = lambda: True) -> ThreadingHTTPServer | None:
    """``/metrics`` and ``/health`` on ``host:port`` (0: off); None when off or
    when the port cannot be had."""
    if not port:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?")[0]
            if path == "/metrics":
                body, status, kind = generate_latest(), 200, CONTENT_TYPE_LATEST
            elif path == "/health":
                ok = healthy()
                body, status, kind = (b"ok\n" if ok else b"unhealthy\n"), 200 if ok else 503, \
                    "text/plain"
            else:
                body, status, kind = b"not found: /metrics or /health\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        log.warning("metrics: cannot listen on %s:%d (%s); running without", host, port, exc)
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
