"""Backends: the :class:`Backend` protocol and its implementations.

* :mod:`mcstore.backends.base`: the protocol (the persistence seam) and its outcome records.
* :mod:`mcstore.backends.sqlite`: :class:`SQLiteBackend`, one SQLite file.
* :mod:`mcstore.backends.postgres`: :class:`PostgresBackend`, a PostgreSQL server (needs the
  ``postgres`` extra, psycopg 3, imported only when a PostgreSQL backend is made).
* :mod:`mcstore.backends.sqlite_read`: SQLite snapshots and the read-only SQLite reader.
* :mod:`mcstore.backends.postgres_read`: PostgreSQL snapshots and the read-only reader.
* :mod:`mcstore.backends.memory`: :class:`MemoryBackend`, in Trio, for virtual-time tests.
* :mod:`mcstore.backends.location`: which backend a location is for
  (:func:`classify_location`, which refuses what is not durable storage), and what of it may
  be shown (:func:`redact_location`, never a password).
* :mod:`mcstore.backends.files`: the files of a location, for tools that write
  (:func:`check_write_target`, :func:`database_file_role`).
* :mod:`mcstore.backends.foreign`: reading a database that is not mcstore's (lnd's), read-only
  (:func:`query_readonly`).

Tools such as the ``mcstore`` command use this package's names only, never a module of it nor
a database driver: what is particular to SQLite or PostgreSQL stays in here.

:func:`backend_for_path` is the one place that turns what a caller passed as ``path`` into a
backend, and :func:`open_reader` the one place that turns a location into a read-only
:class:`Reader`; both classify it with :func:`classify_location`.
"""

from __future__ import annotations

import os
import sqlite3

from .base import DEFAULT_LOCK_TIMEOUT, Backend, FetchOutcome, FlushOutcome, Reader, Row, Snapshot
from .files import FileRole, check_write_target, database_file_role, same_file
from .foreign import Query, query_readonly
from .location import (
    SCRUB_FILTER,
    InvalidLocation,
    LocationError,
    LocationKind,
    classify_location,
    redact_location,
    remember_secrets,
    scrub_secrets,
)
from .memory import MemoryBackend, MemoryDatabase, MemorySnapshot
from .postgres import SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION
from .postgres import PostgresBackend
from .postgres_read import PostgresReader, PostgresSnapshot
from .sqlite import SCHEMA_VERSION, SQLiteBackend
from .sqlite_read import SQLiteReader, SQLiteSnapshot, is_sqlite_file

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "SCHEMA_VERSION",
    "SCRUB_FILTER",
    "Backend",
    "FetchOutcome",
    "FileRole",
    "FlushOutcome",
    "InvalidLocation",
    "LocationError",
    "LocationKind",
    "MemoryBackend",
    "MemoryDatabase",
    "MemorySnapshot",
    "PostgresBackend",
    "PostgresReader",
    "PostgresSnapshot",
    "Query",
    "Reader",
    "Row",
    "SQLiteBackend",
    "SQLiteReader",
    "SQLiteSnapshot",
    "Snapshot",
    "backend_for_path",
    "check_write_target",
    "classify_location",
    "database_file_role",
    "driver_error_text",
    "is_backend",
    "is_sqlite_file",
    "open_reader",
    "query_readonly",
    "redact_location",
    "remember_secrets",
    "same_file",
    "scrub_secrets",
]


def is_backend(obj: object) -> bool:
    """True if ``obj`` is a ready :class:`Backend` rather than a location."""
    return isinstance(obj, Backend) and not isinstance(obj, (str, bytes, os.PathLike))


def backend_for_path(path: str | os.PathLike[str] | Backend, *, synchronous: str = "FULL") -> Backend:
    """The backend for ``path``: a :class:`Backend` is returned as it is; a ``postgresql://`` or
    ``postgres://`` URL gets a :class:`PostgresBackend` (``synchronous`` does not apply: commits
    are always synchronous there); any other path is a file and gets a :class:`SQLiteBackend`
    (``synchronous`` is its ``PRAGMA synchronous``).

    Raises :class:`InvalidLocation` (a ``ValueError``) for a location that is not durable
    storage (see :func:`classify_location`), and ``TypeError`` for anything else, naming the
    value (never its password).
    """
    if is_backend(path):
        return path  # type: ignore[return-value]
    if classify_location(path) == "postgres":
        assert isinstance(path, str)
        return PostgresBackend(path)
    assert isinstance(path, (str, os.PathLike))
    return SQLiteBackend(path, synchronous=synchronous)


async def open_reader(location: str | os.PathLike[str]) -> Reader:
    """Open a read-only :class:`Reader` of the mcstore database at ``location``: a file path, or
    a ``postgresql://`` URL (the tables in the connection's current schema).

    It takes no namespace lock and writes nothing, so it works while a store writes the same
    database. Close it with ``await reader.aclose()`` (or ``contextlib.aclosing``). Raises
    :class:`~mcstore.LocationError` for a location that does not hold an mcstore database this
    version can read (a missing file is never created), :class:`InvalidLocation` (a
    ``ValueError``) for one that is not durable storage (see :func:`classify_location`), and
    ``TypeError`` for a location of another type, naming the value. Cancellation closes
    whatever was opened.
    """
    if classify_location(location) == "postgres":
        assert isinstance(location, str)
        return await PostgresReader.open(location, newest_schema=POSTGRES_SCHEMA_VERSION)
    return await SQLiteReader.open(location, newest_schema=SCHEMA_VERSION)


def driver_error_text(exc: BaseException) -> str | None:
    """The one line that tells what a database driver's error ``exc`` was (``SQLite error:
    ...``), for one that a backend let through unwrapped; None if ``exc`` is not a driver's."""
    if isinstance(exc, sqlite3.Error):
        return f"SQLite error: {exc}"
    return None
