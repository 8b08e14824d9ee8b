"""Hypothesis profiles: CI runs are derandomized (the same examples every run, so a red CI is
reproducible); `HYPOTHESIS_PROFILE=explore make test` searches with fresh random examples."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
