"""ttfb-lab core: events, statistics, settings, store, in-workflow SDK and CLI.

This package imports none of the application folders (producers, agents,
streams, dashboard); they import it.
"""

__version__ = "0.1.0"

# the public API: what a workflow imports (``from ttfb import phase``). The
# SDK is the standard library only: workflows import this package under their
# own interpreters, which need not have the lab's dependencies. The event
# contract is ``ttfb.events``; everything else is internal and may move.
from ttfb.sdk import first_batch, phase, report, timed_first_batch, timed_iter

__all__ = ["__version__", "first_batch", "phase", "report", "timed_first_batch", "timed_iter"]
