"""ttfb-lab core: events, statistics, settings, store, in-workflow SDK and CLI.

This package imports none of the application folders (producers, agents,
streams, dashboard); they import it.
"""

__version__ = "0.1.0"
