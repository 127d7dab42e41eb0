"""Checks shared by the shutdown, fault, crash and multi-process tests.

Each helper states one shutdown guarantee as an assertion, so that a test reads as the list of
guarantees it proves. They use only public API: the store's methods, the Backend seam, the
``mcstore`` logger, and the documented SQLite schema.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, Protocol

import trio
import trio.testing

import mcstore
from mcstore.backends._thread import THREAD_NAME_PREFIX
from mcstore.codec import decode_result
from mcstore.model import PaymentResult
from mcstore.store import STOPPED_MESSAGE, STOPPING_MESSAGE
from mcstore.testing import live_store_tasks

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(mcstore.__file__)))
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
SCRIPTS_DIR = os.path.join(TESTS_DIR, "scripts")
"""The programs the tests run as child processes."""

LOCKED_STATUS = 3
"""The exit status of ``scripts/open_probe.py`` when the namespace was locked."""

REOPEN_WITHIN = 1.0
"""Seconds within which a killed holder's namespace must open again: at once on SQLite (the
kernel drops the process's flock), and once the server has seen the session end on PostgreSQL."""


@asynccontextmanager
async def reopen_after_kill(path: str, **options: Any) -> AsyncIterator[mcstore.MissionControlStore]:
    """``open_store(path, **options)`` on a namespace whose holder was just killed.

    Retries :class:`~mcstore.StoreLocked` (polling every 10 ms: the lock's release happens in
    another process, which sends us nothing) until :data:`REOPEN_WITHIN` seconds have passed,
    then lets it through, failing the test.
    """
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        while True:
            try:
                store = await stack.enter_async_context(mcstore.open_store(path, **options))
                break
            except mcstore.StoreLocked:
                if time.monotonic() - started >= REOPEN_WITHIN:
                    raise
                await trio.sleep(0.01)
        yield store



class _InFlight(Protocol):
    @property
    def calls_in_flight(self) -> int: ...


def assert_nothing_running(backend: _InFlight) -> None:
    """No task started by a store is alive, no worker thread runs, no backend call is open.

    The task check walks the whole task tree (``live_store_tasks``). A backend's own worker
    thread (``mcstore.backends._thread``) is found by its ``mcstore-`` name among every OS
    thread; ``active_thread_count()`` covers ``trio.to_thread`` calls; and the backend's own
    ``calls_in_flight`` is checked as well.
    """
    alive = live_store_tasks()
    assert alive == [], f"store tasks still alive after close: {[t.name for t in alive]}"
    threads = store_threads()
    assert threads == [], f"store threads still alive after close: {threads}"
    assert trio.testing.active_thread_count() == 0, "a worker thread outlived the store"
    assert backend.calls_in_flight == 0, f"{backend.calls_in_flight} backend calls still in flight"


def store_threads() -> list[str]:
    """The names of every live OS thread that a store's backend started (``mcstore-*``)."""
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX)]


class LogRecorder(logging.Handler):
    """Collects the ``mcstore`` logger's records, DEBUG and up."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]

    def assert_ticker_stopped(self, stores: int = 1) -> None:
        """Both lnd shutdown lines were logged, once per closed store, in order."""
        lines = [m for m in self.messages() if m in (STOPPING_MESSAGE, STOPPED_MESSAGE)]
        assert lines == [STOPPING_MESSAGE, STOPPED_MESSAGE] * stores, lines


@contextmanager
def record_store_log() -> Iterator[LogRecorder]:
    """Record the ``mcstore`` logger (at DEBUG) for the duration of the block."""
    logger = logging.getLogger("mcstore")
    recorder = LogRecorder()
    previous = logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.DEBUG)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(previous)


def sqlite_results(path: str | os.PathLike[str], namespace: str = "default") -> list[PaymentResult]:
    """The committed results of ``namespace``, in key order, read over a separate connection."""
    conn = sqlite3.connect(os.fspath(path))
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'mc_results'").fetchone():
            return []  # no store ever finished opening this file
        rows = conn.execute(
            "SELECT key, value FROM mc_results WHERE namespace = ? ORDER BY key", (namespace,)
        ).fetchall()
    finally:
        conn.close()
    return [decode_result(key, value) for key, value in rows]


def sqlite_integrity(path: str | os.PathLike[str]) -> str:
    """``"ok"`` when the file is sound (``PRAGMA integrity_check``) and every namespace's kept
    count (``mc_namespaces.stored``) equals its rows."""
    conn = sqlite3.connect(os.fspath(path))
    try:
        checked = "\n".join(str(row[0]) for row in conn.execute("PRAGMA integrity_check").fetchall())
        if checked != "ok" or not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'mc_namespaces'").fetchone():
            return checked
        wrong = conn.execute(
            "SELECT n.namespace, n.stored, (SELECT count(*) FROM mc_results r WHERE r.namespace = n.namespace) AS rows "
            "FROM mc_namespaces n WHERE n.stored <> rows"
        ).fetchall()
    finally:
        conn.close()
    return "ok" if not wrong else f"kept counts differ from the rows: {wrong}"


def child_env() -> dict[str, str]:
    """The environment for a helper process: this checkout and the tests' modules (for the
    scripts' shared helpers) importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, TESTS_DIR, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def pg_results(dsn: str, namespace: str = "default") -> list[PaymentResult]:
    """The committed results of ``namespace`` on PostgreSQL, in key order, over a new connection."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('mc_results') IS NULL").fetchone() == (True,):
            return []  # no store ever finished opening this schema
        rows = conn.execute(
            "SELECT key, value FROM mc_results WHERE namespace = %s ORDER BY key", (namespace,)
        ).fetchall()
    return [decode_result(bytes(key), bytes(value)) for key, value in rows]


def pg_integrity(dsn: str) -> str:
    """``"ok"`` when every namespace's kept count (``mc_namespaces.stored``) equals its rows."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('mc_results') IS NULL").fetchone() == (True,):
            return "ok"
        wrong = conn.execute(
            "SELECT n.namespace, n.stored, count(r.key) FROM mc_namespaces n "
            "LEFT JOIN mc_results r ON r.namespace = n.namespace GROUP BY n.namespace, n.stored "
            "HAVING n.stored <> count(r.key)"
        ).fetchall()
    return "ok" if not wrong else f"kept counts differ from the rows: {wrong}"


class StorePlace:
    """Where a real-backend test keeps its store: an SQLite file, or a fresh PostgreSQL schema.

    ``path`` is what ``open_store`` (and the helper processes) take.
    """

    def __init__(self, kind: str, path: str) -> None:
        self.kind = kind
        self.path = path

    def results(self, namespace: str = "default") -> list[PaymentResult]:
        """The committed results of ``namespace``, in key order."""
        if self.kind == "postgres":
            return pg_results(self.path, namespace)
        return sqlite_results(self.path, namespace)

    def integrity(self) -> str:
        """``"ok"`` when the storage is sound: SQLite's integrity check, PostgreSQL's kept counts."""
        if self.kind == "postgres":
            return pg_integrity(self.path)
        return sqlite_integrity(self.path)

    def __repr__(self) -> str:
        return f"StorePlace({self.kind})"
