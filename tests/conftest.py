"""Shared test configuration: hypothesis profiles and a per-test time budget."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# "ci" is bounded so the suite stays within minutes on 2 cores; "thorough" runs 20x more
# examples (select it with HYPOTHESIS_PROFILE=thorough); "dev" is hypothesis' default.
settings.register_profile(
    "ci",
    max_examples=50,
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
