"""Dashboard data access: store queries, cached with a short TTL.

The dashboard only reads, and only through ``ttfb.store.queries``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ttfb.events import COMPONENTS
from ttfb.settings import Settings
from ttfb.store import Store, open_store, queries

TTL_S = 5


@st.cache_resource
def store() -> Store:
    return open_store(Settings())


@st.cache_data(ttl=TTL_S)
def recent_runs(per_scenario: int = 20) -> pd.DataFrame:
    return pd.DataFrame(queries.recent_runs(store(), per_scenario))


@st.cache_data(ttl=TTL_S)
def dead_letters(limit: int = 100) -> pd.DataFrame:
    return pd.DataFrame(queries.dead_letters(store(), limit))


def components_long(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, component) for stacked bars, components in TTFB order."""
    rows: list[dict[str, Any]] = []
    for run in runs.itertuples():
        for order, name in enumerate(COMPONENTS):
            rows.append({"scenario": run.scenario, "run": str(run.run_id)[:8],
                         "when": run.occurred_at, "commit": str(run.commit)[:10],
                         "component": name, "order": order,
                         "ms": float(run.components.get(name, 0.0))})
    return pd.DataFrame(rows)
