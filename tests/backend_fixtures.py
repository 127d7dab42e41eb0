"""Fixtures (a pytest plugin, see ``conftest.py``): the backends the shared store and contract
tests run on, and the real places of the crash and multi-process tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import pytest
import trio
import trio.testing
from shutdown_checks import StorePlace

from mcstore.backends import Backend, MemoryBackend, MemoryDatabase, PostgresBackend, SQLiteBackend
from mcstore.backends._lock import lock_path_for

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


@pytest.fixture(params=STORED_KINDS)
def store_place(request: pytest.FixtureRequest, tmp_path: Path) -> StorePlace:
    """A real backend's storage for the crash and multi-process tests: a file, or a schema."""
    if request.param == "postgres":
        return StorePlace("postgres", request.getfixturevalue("pg_dsn"))
    return StorePlace("sqlite", str(tmp_path / "mc.sqlite"))
