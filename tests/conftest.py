"""Chart validation on (pages/common.py `show`) and Hypothesis profiles: CI runs are derandomized (the same
examples every run, so a red CI is reproducible); `HYPOTHESIS_PROFILE=explore make test` searches with fresh
random examples."""

import os

from hypothesis import settings

os.environ["KVLAB_VALIDATE_CHARTS"] = "1"  # pages check every chart against Vega-Lite's schema under test

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _navigation_only() -> None:
    """AppTest runs every script run as a fresh server's first: with a pages/ folder present, Streamlit's legacy
    multipage mode executes the page without app.py, and pages.common.ensure_router reruns through app.py. That
    rerun drops the run's button clicks, so no AppTest could press a button. A real server does it once (the
    browser tests cover that path); here the app is told it registers its pages with st.navigation, as it does."""
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def navigation_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = navigation_init


_navigation_only()
