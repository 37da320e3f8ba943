"""Statistics of ttfb-lab: pure, numpy and scipy only, randomness from seeds."""

from ttfb import native

native.install()  # the detector compiled, where it is built for these sources (before its import)

from ttfb.stats.comparisons import (  # noqa: E402
    Comparison,
    benjamini_hochberg,
    compare,
    compare_blocked,
    compare_paired,
    counterbalanced,
    rank_p_blocked,
)
from ttfb.stats.detector import (  # noqa: E402
    ChangePoint,
    DetectorConfig,
    Point,
    SeriesState,
    accept,
    apply,
    detect,
    group_points,
    kept_in_window,
)
from ttfb.stats.history import HistoryConfig, detect_history  # noqa: E402

__all__ = [
    "ChangePoint", "Comparison", "DetectorConfig", "HistoryConfig", "Point", "SeriesState",
    "accept", "apply", "benjamini_hochberg", "compare", "compare_blocked", "compare_paired",
    "counterbalanced", "detect", "detect_history", "group_points", "kept_in_window",
    "rank_p_blocked",
]
