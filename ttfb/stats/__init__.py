"""Statistics of ttfb-lab: pure, numpy and scipy only, randomness from seeds."""

from ttfb.stats.detector import (
    ChangePoint,
    DetectorConfig,
    Point,
    SeriesState,
    accept,
    apply,
    detect,
    group_points,
)
from ttfb.stats.tests import Comparison, benjamini_hochberg, compare

__all__ = [
    "ChangePoint", "Comparison", "DetectorConfig", "Point", "SeriesState", "accept", "apply",
    "benjamini_hochberg", "compare", "detect", "group_points",
]
