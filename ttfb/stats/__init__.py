"""Statistics of ttfb-lab: pure, numpy and scipy only, randomness from seeds."""

from ttfb.stats.comparisons import (
    Comparison,
    benjamini_hochberg,
    compare,
    compare_blocked,
    compare_paired,
    counterbalanced,
    rank_p_blocked,
)
from ttfb.stats.detector import (
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
from ttfb.stats.history import HistoryConfig, detect_history

__all__ = [
    "ChangePoint", "Comparison", "DetectorConfig", "HistoryConfig", "Point", "SeriesState",
    "accept", "apply", "benjamini_hochberg", "compare", "compare_blocked", "compare_paired",
    "counterbalanced", "detect", "detect_history", "group_points", "kept_in_window",
    "rank_p_blocked",
]
