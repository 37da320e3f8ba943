"""ttfb-lab dashboard (read only): ``streamlit run dashboard/app.py``."""

from __future__ import annotations

import streamlit as st

from dashboard.views import calibration, deadletters, experiments, overview, regressions, scenario

st.set_page_config(page_title="ttfb-lab", layout="wide")
pages = [
    st.Page(overview.render, title="Overview", url_path="overview", default=True),
    st.Page(scenario.render, title="Scenario", url_path="scenario"),
    st.Page(regressions.render, title="Regressions", url_path="regressions"),
    st.Page(experiments.render, title="Experiments", url_path="experiments"),
    st.Page(calibration.render, title="Calibration", url_path="calibration"),
    st.Page(deadletters.render, title="Dead letters", url_path="dead-letters"),
]
st.navigation(pages).run()
