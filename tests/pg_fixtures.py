"""Fixtures (a pytest plugin, see ``conftest.py``): PostgreSQL, one server per session and a
fresh schema per test, and the replicated pair of the failover tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from mcstore.testing import pgfailover, pgserver
from mcstore.testing.pgfailover import ReplicatedPair
from mcstore.testing.pgserver import PostgresServer

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
        _no_server(exc, f"set {pgserver.DSN_ENV} or install postgresql")


def _no_server(exc: pgserver.ServerUnavailable, advice: str) -> NoReturn:
    """Skip a PostgreSQL test that has no server, saying why; fail it under ``CI=true``."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and no PostgreSQL server: {exc}", pytrace=False)
    pytest.skip(f"no PostgreSQL server ({exc}); {advice}")


@pytest.fixture(scope="module")
def pg_pair() -> Iterator[ReplicatedPair]:
    """A primary and a synchronous standby (:mod:`mcstore.testing.pgfailover`), for a module's failover
    tests. Always started here (``MCSTORE_PG_DSN`` does not apply); skipped or failed as
    :func:`pg_server` without the server's binaries."""
    try:
        with pgfailover.replicated_pair() as pair:
            yield pair
    except pgserver.ServerUnavailable as exc:
        _no_server(exc, "the failover tests need Debian's postgresql package (initdb, pg_basebackup)")


@pytest.fixture
def pg_dsn(pg_server: PostgresServer) -> Iterator[str]:
    """The DSN of a fresh, empty schema on the session's server (dropped after the test)."""
    with pgserver.scratch_schema(pg_server.dsn) as dsn:
        yield dsn
