"""ttfb-lab dashboard: ``streamlit run dashboard/app.py``.

On a shared deployment set ``TTFB_DASHBOARD_LOGIN=true`` and configure an
OpenID Connect provider in ``.streamlit/secrets.toml`` (Streamlit's
``[auth]``): no page renders before a login, and ``TTFB_DASHBOARD_ALLOWED``
narrows who may see it. The embedded default stays login-free on 127.0.0.1.
"""

from __future__ import annotations

import streamlit as st

from dashboard.views import calibration, deadletters, experiments, overview, regressions, scenario
from ttfb.settings import Settings


def allowed(email: str, allow: list[str]) -> bool:
    """An address on the list, or in a domain on it (``@example.org``)."""
    email = email.lower()
    return not allow or any(email == a.lower() or (a.startswith("@") and
                                                   email.endswith(a.lower())) for a in allow)


def gate(settings: Settings) -> None:
    """Stop the script unless the viewer may see the dashboard."""
    if not settings.dashboard_login:
        return
    if not st.user.get("is_logged_in"):
        st.title("ttfb-lab")
        st.write("Log in to see the lab's measurements and alerts.")
        st.button("Log in", on_click=st.login)
        st.stop()
    if not allowed(str(st.user.get("email") or ""), settings.dashboard_allowed):
        st.error(f"{st.user.get('email')} may not see this dashboard.")
        st.button("Log out", on_click=st.logout)
        st.stop()


st.set_page_config(page_title="ttfb-lab", layout="wide")
gate(Settings())
pages = [
    st.Page(overview.render, title="Overview", url_path="overview", default=True),
    st.Page(scenario.render, title="Scenario", url_path="scenario"),
    st.Page(regressions.render, title="Regressions", url_path="regressions"),
    st.Page(experiments.render, title="Experiments", url_path="experiments"),
    st.Page(calibration.render, title="Calibration", url_path="calibration"),
    st.Page(deadletters.render, title="Dead letters", url_path="dead-letters"),
]
st.navigation(pages).run()
