"""Backends: the :class:`Backend` protocol and its implementations.

* :mod:`mcstore.backends.base`: the protocol (the persistence seam) and its outcome records.
* :mod:`mcstore.backends.sqlite`: :class:`SQLiteBackend`, one SQLite file.
* :mod:`mcstore.backends.postgres`: :class:`PostgresBackend`, a PostgreSQL server (needs the
  ``postgres`` extra, psycopg 3, imported only when a PostgreSQL backend is made).
* :mod:`mcstore.backends.memory`: :class:`MemoryBackend`, in Trio, for virtual-time tests.

:func:`backend_for_path` is the one place that turns what a caller passed as ``path`` into a
backend.
"""

from __future__ import annotations

import os

from .base import Backend, FetchOutcome, FlushOutcome
from .memory import MemoryBackend, MemoryDatabase
from .postgres import PostgresBackend, is_postgres_url
from .sqlite import SQLiteBackend

__all__ = [
    "Backend",
    "FetchOutcome",
    "FlushOutcome",
    "MemoryBackend",
    "MemoryDatabase",
    "PostgresBackend",
    "SQLiteBackend",
    "backend_for_path",
    "is_backend",
]


def is_backend(obj: object) -> bool:
    """True if ``obj`` is a ready :class:`Backend` rather than a location."""
    return isinstance(obj, Backend) and not isinstance(obj, (str, bytes, os.PathLike))


def backend_for_path(path: str | os.PathLike[str] | Backend, *, synchronous: str = "FULL") -> Backend:
    """The backend for ``path``: a :class:`Backend` is returned as it is; a ``postgresql://`` or
    ``postgres://`` URL gets a :class:`PostgresBackend` (``synchronous`` does not apply: commits
    are always synchronous there); any other path is a file and gets a :class:`SQLiteBackend`
    (``synchronous`` is its ``PRAGMA synchronous``).

    Raises ``TypeError`` for anything else, naming the value.
    """
    if is_backend(path):
        return path  # type: ignore[return-value]
    if is_postgres_url(path):
        return PostgresBackend(path)
    if isinstance(path, (str, os.PathLike)):
        return SQLiteBackend(path, synchronous=synchronous)
    raise TypeError(f"path must be a file path, a postgresql:// URL or a Backend, got {path!r}")
