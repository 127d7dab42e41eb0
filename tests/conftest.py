"""Shared test configuration: hypothesis profiles, the backends shared tests run on, and the
PostgreSQL server fixtures."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Final, NoReturn

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, settings
from shutdown_checks import StorePlace

from mcstore.backends import Backend, MemoryBackend, MemoryDatabase, PostgresBackend, SQLiteBackend
from mcstore.backends._lock import lock_path_for
from mcstore.testing import pgfailover, pgserver
from mcstore.testing.pgfailover import ReplicatedPair
from mcstore.testing.pgserver import PostgresServer

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


# -- the backends that the shared store and contract tests run on ---------------------------

BACKEND_KINDS: Final = ["memory", "sqlite", "postgres"]
"""Every backend the shared tests run on; the one list to extend with a new backend."""

STORED_KINDS: Final = [kind for kind in BACKEND_KINDS if kind != "memory"]
"""Backends with real storage (a file, a server): the places of the crash and multi-process tests."""

THREADED_KINDS: Final = frozenset(STORED_KINDS)
"""Backends that run their calls in a thread: they need the real clock (trio issue #456)."""


class BackendFactory:
    """Builds backends of one kind on one database (a test's own): each call gives a fresh,
    unopened backend on the same database, so a second call models a reopen."""

    def __init__(self, kind: str, directory: Path, dsn: str | None = None) -> None:
        self.kind: Final = kind
        self.dsn: Final = dsn
        """The database (a fresh schema on the test server) of the "postgres" kind."""
        self.memory = MemoryDatabase()
        """The database of the "memory" kind."""
        self.path: Final = directory / "mc.sqlite"
        """The database file of the "sqlite" kind."""

    def __call__(self) -> Backend:
        if self.kind == "memory":
            return MemoryBackend(self.memory)
        if self.kind == "sqlite":
            return SQLiteBackend(self.path)
        if self.kind == "postgres" and self.dsn is not None:
            return PostgresBackend(self.dsn)
        raise AssertionError(f"unknown backend kind {self.kind!r}; add it to BACKEND_KINDS and here")

    async def drop_lock(self, backend: Backend, namespace: str = "default") -> None:
        """Release the namespace lock that the open ``backend`` holds, behind its back: as when
        its lock file is deleted (SQLite) or its advisory lock is released on its session
        (PostgreSQL). Another backend can then open the namespace."""
        if isinstance(backend, MemoryBackend):
            backend.database.drop_lock(namespace)
        elif isinstance(backend, SQLiteBackend):
            os.unlink(lock_path_for(str(self.path), namespace))
        elif isinstance(backend, PostgresBackend):
            await backend._run(lambda: backend._conn and backend._conn.execute("SELECT pg_advisory_unlock_all()"))
        else:
            raise AssertionError(f"no way to drop the lock of {backend!r}; add one here")


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """The kind of backend a shared test runs on (parametrizes the test over BACKEND_KINDS)."""
    return str(request.param)


@pytest.fixture
def make_backend(backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> BackendFactory:
    """A factory of fresh backends of ``backend_kind`` on this test's own database."""
    dsn = request.getfixturevalue("pg_dsn") if backend_kind == "postgres" else None
    return BackendFactory(backend_kind, tmp_path, dsn)


@pytest.fixture
def store_clock(backend_kind: str) -> trio.testing.MockClock | None:
    """The clock for a shared test: virtual (autojump) for an in-Trio backend, the real clock
    (``None``) for a threaded one. A test takes it as an argument, so that pytest-trio sees it."""
    if backend_kind in THREADED_KINDS:
        return None
    return trio.testing.MockClock(autojump_threshold=0)


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


@pytest.fixture(params=STORED_KINDS)
def store_place(request: pytest.FixtureRequest, tmp_path: Path) -> StorePlace:
    """A real backend's storage for the crash and multi-process tests: a file, or a schema."""
    if request.param == "postgres":
        return StorePlace("postgres", request.getfixturevalue("pg_dsn"))
    return StorePlace("sqlite", str(tmp_path / "mc.sqlite"))


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
