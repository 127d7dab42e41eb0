"""Shared test configuration: hypothesis profiles, the wall-clock limits, and the fixture
plugins: the backends shared tests run on (``backend_fixtures.py``) and the PostgreSQL servers
(``pg_fixtures.py``)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Final

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["backend_fixtures", "pg_fixtures"]

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


# -- the wall-clock limit for slow tests ---------------------------------------------------------

SLOW_TEST_TIMEOUT: Final = 600
"""Seconds a test marked ``slow`` may take (the default, ``timeout`` in pyproject.toml, is 60)."""

TIMEOUT_SCALE: Final = 20 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 1
"""The "thorough" profile runs 20x more examples (and SIGINT rounds): 20x the limits."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give tests marked ``slow`` the larger wall-clock limit, scaled for the profile, unless a
    test sets its own ``timeout`` marker."""
    default = float(config.getini("timeout") or 0)
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        limit = SLOW_TEST_TIMEOUT if item.get_closest_marker("slow") is not None else default
        if limit and (limit != default or TIMEOUT_SCALE != 1):
            item.add_marker(pytest.mark.timeout(limit * TIMEOUT_SCALE))


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """Python's own SIGINT handler for one test, as in a program started from a terminal.

    A non-interactive parent (a CI runner, ``cmd &``) may start pytest with SIGINT ignored, and
    Python then installs no handler; the Ctrl-C tests need the handler a user's program has.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
