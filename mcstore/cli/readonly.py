"""Reading an mcstore database without a store: for ``mcstore stats`` and ``mcstore export``.

These functions never write to the database, take no namespace lock, and leave nothing
behind: a missing file is an error (it is never created), and a row that fails to decode is
reported through a callback and skipped, not removed (the store's ``fetch_all`` removes such
rows; a read-only tool must not). Reading is safe while a store writes the same file: SQLite's
WAL mode gives each query a consistent snapshot. To read a WAL-mode file SQLite needs its
``-wal`` and ``-shm`` companions; when they do not exist (no one has the file open),
:func:`connect_readonly` lets SQLite create them and remove them again when the connection
closes, so that a read-only command leaves the directory as it found it.

Every failure is a :class:`DatabaseFileError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Final

from ..backends.sqlite import SCHEMA_VERSION
from ..codec import decode_result
from ..errors import DecodeError
from ..model import PaymentResult

__all__ = [
    "DatabaseFileError",
    "NamespaceStats",
    "OnBadRow",
    "check_sqlite_file",
    "check_write_target",
    "connect_readonly",
    "count_results",
    "iter_results",
    "namespace_keys",
    "namespace_stats",
    "namespaces",
    "open_mcstore_readonly",
    "quick_check",
    "schema_version",
]

_SQLITE_HEADER: Final = b"SQLite format 3\x00"
_WAL_FORMAT: Final = 2
"""Bytes 18 and 19 of the header (write and read format version): 2 in WAL mode, 1 otherwise."""

OnBadRow = Callable[[bytes, DecodeError], None]
"""Called with the key and the error of each row that fails to decode."""


class DatabaseFileError(Exception):
    """A database file that cannot be used: missing, not SQLite, not mcstore's, or unreadable."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def check_sqlite_file(path: str) -> bool:
    """Return whether ``path`` exists; raise :class:`DatabaseFileError` if it is not SQLite.

    An empty file counts as SQLite (it is what SQLite makes of a new database). Reads at most
    16 bytes and writes nothing.
    """
    try:
        with open(path, "rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise DatabaseFileError(path, "is a directory, not a database file") from None
    except OSError as exc:
        raise DatabaseFileError(path, f"cannot read: {exc.strerror or exc}") from None
    if header and header != _SQLITE_HEADER:
        raise DatabaseFileError(path, "not an SQLite database")
    return True


def _in_wal_mode(path: str) -> bool:
    """Whether the header of the SQLite file ``path`` says WAL mode (reads 20 bytes)."""
    with open(path, "rb") as f:
        header = f.read(20)
    return len(header) == 20 and header[18] == header[19] == _WAL_FORMAT


def connect_readonly(path: str, *, immutable_if_idle: bool = False) -> sqlite3.Connection:
    """Open the existing SQLite file ``path`` for reading only; never create it, never write it.

    Leaves nothing behind. A WAL-mode file with no ``-wal`` beside it (no one has it open) is
    opened read-write with ``PRAGMA query_only``: SQLite then creates the ``-wal`` and ``-shm``
    it needs and removes them when the connection closes (if a writer opened the file
    meanwhile, they are the writer's, and it removes them). A file whose ``-wal`` exists (a
    writer has it open, or crashed) is opened ``mode=ro``, which uses the existing companions
    and never writes the file, even to recover a crashed writer's log. Any other file is
    opened ``mode=ro``, which creates nothing for a rollback-journal database.

    With ``immutable_if_idle``, a file without a ``-wal`` companion is opened ``immutable``
    instead, so SQLite creates nothing beside it at all; use it for files that belong to
    another program. Raises :class:`DatabaseFileError`.
    """
    if not check_sqlite_file(path):
        raise DatabaseFileError(path, "no such file")
    uri = pathlib.Path(path).absolute().as_uri()
    idle = not os.path.exists(path + "-wal")
    if immutable_if_idle and idle:
        uri += "?mode=ro&immutable=1"
    elif idle and _in_wal_mode(path):
        uri += "?mode=rw"
    else:
        uri += "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise DatabaseFileError(path, f"cannot open read-only: {exc}") from None
    try:
        conn.execute("PRAGMA query_only = ON")
        # The header looked right; this reads the schema, so a damaged file fails here.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise DatabaseFileError(path, f"not a readable SQLite database: {exc}") from None
    return conn


def quick_check(conn: sqlite3.Connection) -> list[str]:
    """Run ``PRAGMA quick_check``; return its complaints (empty when the file is sound).

    Reads every page of the database once; writes nothing. An error that stops the check
    itself (say, a damaged schema) is returned as the only complaint.
    """
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        return [f"quick_check could not run: {exc}"]
    messages = [str(row[0]) for row in rows]
    return [] if messages == ["ok"] else messages


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    return [str(row[0]) for row in rows]


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version``: mcstore's schema version."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def open_mcstore_readonly(path: str) -> sqlite3.Connection:
    """Open ``path`` read-only and check that it is an mcstore database this version can read.

    Raises :class:`DatabaseFileError` for a missing file, a file that is not SQLite, an SQLite
    file without mcstore's tables, or a newer schema version.
    """
    conn = connect_readonly(path)
    try:
        tables = _tables(conn)
        if "mc_results" not in tables:
            found = ", ".join(tables) if tables else "none"
            raise DatabaseFileError(path, f"not an mcstore database (no mc_results table; tables: {found})")
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            raise DatabaseFileError(
                path, f"schema version {version} is newer than {SCHEMA_VERSION}, which this mcstore reads"
            )
    except BaseException:
        conn.close()
        raise
    return conn


def check_write_target(path: str) -> None:
    """Check that a writing command may open ``path`` with a store.

    The store creates its tables in any SQLite file it is given. That is right for a new or
    empty database, and for an mcstore database; for any other database (say lnd's own
    ``channel.sqlite``, passed by mistake) it would be vandalism, so this refuses it. Raises
    :class:`DatabaseFileError`; writes nothing.
    """
    if not check_sqlite_file(path):
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            raise DatabaseFileError(path, f"directory {directory!r} does not exist")
        return
    if os.path.getsize(path) == 0:
        return
    conn = connect_readonly(path)
    try:
        tables = _tables(conn)
    except sqlite3.Error as exc:
        raise DatabaseFileError(path, f"cannot read: {exc}") from None
    finally:
        conn.close()
    if tables and "mc_results" not in tables:
        raise DatabaseFileError(
            path, f"not an mcstore database (tables: {', '.join(tables)}); refusing to write to it"
        )


def namespaces(conn: sqlite3.Connection) -> list[str]:
    """Every namespace that has rows or a recorded count, sorted."""
    rows = conn.execute(
        "SELECT namespace FROM mc_results UNION SELECT namespace FROM mc_namespaces ORDER BY 1"
    ).fetchall()
    return [str(row[0]) for row in rows]


def iter_results(
    conn: sqlite3.Connection, namespace: str, on_bad_row: OnBadRow
) -> Generator[tuple[bytes, bytes, PaymentResult], None, None]:
    """Yield ``(key, value, result)`` for each row of ``namespace``, oldest first (key order).

    A row that fails to decode goes to ``on_bad_row`` and is skipped; nothing is deleted.
    Rows are streamed, so memory does not grow with the namespace.
    """
    cursor = conn.execute("SELECT key, value FROM mc_results WHERE namespace = ? ORDER BY key", (namespace,))
    try:
        for key, value in cursor:
            key, value = bytes(key), bytes(value)
            try:
                result = decode_result(key, value)
            except DecodeError as exc:
                on_bad_row(key, exc)
                continue
            yield key, value, result
    finally:
        cursor.close()


def count_results(conn: sqlite3.Connection, namespace: str) -> int:
    """How many rows ``namespace`` holds (decoded or not)."""
    row = conn.execute("SELECT count(*) FROM mc_results WHERE namespace = ?", (namespace,)).fetchone()
    return int(row[0])


def namespace_keys(conn: sqlite3.Connection, namespace: str) -> set[bytes]:
    """The keys stored in ``namespace`` (decoded or not)."""
    rows = conn.execute("SELECT key FROM mc_results WHERE namespace = ?", (namespace,)).fetchall()
    return {bytes(row[0]) for row in rows}


@dataclass(slots=True)
class NamespaceStats:
    """What ``mcstore stats`` reports about one namespace."""

    namespace: str
    records: int = 0
    """Rows that decode."""
    undecodable: int = 0
    """Rows that fail to decode (reported and skipped)."""
    oldest_reply_ns: int | None = None
    newest_reply_ns: int | None = None
    successes: int = 0
    failures: int = 0
    failure_codes: Counter[tuple[int | None, str]] = field(default_factory=Counter)
    """Failures by ``(code, name)``; ``(None, "no failure message")`` when lnd had none."""


def namespace_stats(conn: sqlite3.Connection, namespace: str, on_bad_row: OnBadRow) -> NamespaceStats:
    """Decode every row of ``namespace`` once and summarise it; report bad rows to ``on_bad_row``."""
    stats = NamespaceStats(namespace)

    def bad_row(key: bytes, exc: DecodeError) -> None:
        stats.undecodable += 1
        on_bad_row(key, exc)

    for _key, _value, result in iter_results(conn, namespace, bad_row):
        stats.records += 1
        reply = result.time_reply_ns
        if stats.oldest_reply_ns is None or reply < stats.oldest_reply_ns:
            stats.oldest_reply_ns = reply
        if stats.newest_reply_ns is None or reply > stats.newest_reply_ns:
            stats.newest_reply_ns = reply
        failure = result.failure
        if failure is None:
            stats.successes += 1
            continue
        stats.failures += 1
        code, name = failure.code, failure.code_name
        stats.failure_codes[(code, name if name is not None else "no failure message")] += 1
    return stats
