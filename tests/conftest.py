"""Shared test configuration: hypothesis profiles, and the PostgreSQL server fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from shutdown_checks import StorePlace

from mcstore import pgserver
from mcstore.pgserver import PostgresServer

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


# -- PostgreSQL: one server per session, a fresh schema per test --------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session: ``MCSTORE_PG_DSN``, or a throwaway one.

    Without a server the PostgreSQL tests skip, saying why; with ``CI=true`` they fail instead,
    so that CI never passes without having run them.
    """
    try:
        with pgserver.pg_server() as server:
            yield server
    except pgserver.ServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no PostgreSQL server: {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL server ({exc}); set {pgserver.DSN_ENV} or install postgresql")


@pytest.fixture
def pg_dsn(pg_server: PostgresServer) -> Iterator[str]:
    """The DSN of a fresh, empty schema on the session's server (dropped after the test)."""
    with pgserver.scratch_schema(pg_server.dsn) as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", "postgres"])
def store_place(request: pytest.FixtureRequest, tmp_path: Path) -> StorePlace:
    """A real backend's storage for the crash and multi-process tests: a file, or a schema."""
    if request.param == "postgres":
        return StorePlace("postgres", request.getfixturevalue("pg_dsn"))
    return StorePlace("sqlite", str(tmp_path / "mc.sqlite"))
