"""Chart validation on (app_pages/figures.py `show`) and Hypothesis profiles: CI runs are derandomized (the same
examples every run, so a red CI is reproducible); `HYPOTHESIS_PROFILE=explore make test` searches with fresh
random examples."""

import os

from hypothesis import settings

os.environ["KVLAB_VALIDATE_CHARTS"] = "1"  # pages check every chart against Vega-Lite's schema under test

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
