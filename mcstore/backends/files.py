"""The files of a location, for tools that write files beside a database or write into one.

An SQLite location is a file with companions (``-wal``, ``-shm``, ``-journal``) and lock files
(one per namespace); a PostgreSQL location has no files. These checks are the SQLite-only
part of what a tool must know before it writes: :func:`check_write_target` before a store
opens a location it was given, :func:`database_file_role` before a tool writes a file of its
own (an export) that might be one of the database's.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Final, Literal

from ._lock import is_lock_path
from .location import LocationError, classify_location
from .sqlite_read import check_sqlite_file, connect_readonly, table_names

__all__ = ["FileRole", "check_write_target", "database_file_role", "same_file"]

FileRole = Literal["database", "wal", "shm", "journal", "lock"]
"""What :func:`database_file_role` returns: which of the database's files a path is."""

_COMPANIONS: Final[tuple[tuple[str, FileRole], ...]] = (
    ("", "database"),
    ("-wal", "wal"),
    ("-shm", "shm"),
    ("-journal", "journal"),
)


def same_file(a: str, b: str) -> bool:
    """Whether the paths ``a`` and ``b`` lead to the same file (through any symlink or hard
    link); for a path that does not exist (yet), whether both lead to the same place."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they lead
        return os.path.realpath(a) == os.path.realpath(b)


def database_file_role(location: str, path: str) -> FileRole | None:
    """Which file of the database at ``location`` the file ``path`` is, or None if none.

    The database itself, one of its SQLite companions (``wal``, ``shm``, ``journal``), through
    any symlink or hard link, or a lock file of any of its namespaces (by name, either
    naming). A tool must never write such a file: replacing a lock file unlocks its
    namespace. Writes nothing.
    """
    for suffix, role in _COMPANIONS:
        if same_file(path, location + suffix):
            return role
    if classify_location(location) != "postgres" and is_lock_path(location, path):
        return "lock"
    return None


def check_write_target(location: str) -> None:
    """Check that a writing tool may open ``location`` with a store.

    The store creates its tables in any SQLite file it is given. That is right for a new or
    empty database, and for an mcstore database; for any other database (say lnd's own
    ``channel.sqlite``, passed by mistake) it would be vandalism, so this refuses it. Raises
    :class:`~mcstore.LocationError`; writes nothing. A ``postgresql://`` URL passes: the store
    creates its tables only in the schema the URL chooses, beside whatever else is there. A
    location that is not durable storage raises :class:`~mcstore.backends.InvalidLocation`
    (:func:`~mcstore.backends.classify_location`).
    """
    if classify_location(location) == "postgres":
        return
    if not check_sqlite_file(location):
        directory = os.path.dirname(location) or "."
        if not os.path.isdir(directory):
            raise LocationError(location, f"directory {directory!r} does not exist")
        return
    if os.path.getsize(location) == 0:
        return
    conn = connect_readonly(location)
    try:
        tables = table_names(conn)
    except sqlite3.Error as exc:
        raise LocationError(location, f"cannot read: {exc}") from None
    finally:
        conn.close()
    if tables and "mc_results" not in tables:
        raise LocationError(
            location, f"not an mcstore database (tables: {', '.join(tables)}); refusing to write to it"
        )
