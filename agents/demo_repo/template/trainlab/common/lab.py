"""Phase marks for ttfb-lab; no-ops when the lab's SDK is not installed."""

try:
    from ttfb.sdk import first_batch, phase, report
except ImportError:  # running outside the lab
    from contextlib import contextmanager

    @contextmanager
    def phase(name):
        yield

    def first_batch():
        pass

    def report(**fields):
        pass

__all__ = ["first_batch", "phase", "report"]
