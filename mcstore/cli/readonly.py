"""Reading an mcstore database without a store: for ``mcstore stats`` and ``mcstore export``.

Nothing here writes to the database or takes a namespace lock, and nothing is left behind: a
missing file is an error (it is never created), and a row that fails to decode is reported
through a callback and skipped, not removed (the store's ``fetch_all`` removes such rows; a
read-only tool must not). ``stats`` and ``export`` read through a
:class:`~mcstore.backends.Reader` (:func:`~mcstore.backends.open_reader`, whatever the
backend): one consistent snapshot per namespace, streamed in batches, so that memory stays
flat whatever the history size, and a store can keep writing meanwhile.

The SQLite helpers for the writing commands' checks (:func:`connect_readonly` and friends)
live in :mod:`mcstore.backends.sqlite_read`, and are importable from here too.

Every failure is a :class:`~mcstore.LocationError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Final

from ..backends import Snapshot, classify_location
from ..backends.sqlite_read import check_sqlite_file, connect_readonly, table_names
from ..codec import decode_result
from ..errors import DecodeError, LocationError
from ..model import PaymentResult

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "NamespaceStats",
    "OnBadRow",
    "OnRows",
    "check_sqlite_file",
    "check_write_target",
    "connect_readonly",
    "namespace_keys",
    "namespace_stats",
    "namespaces",
    "quick_check",
    "stream_results",
]

DEFAULT_BATCH_SIZE: Final = 1000
"""Rows read per batch by :func:`stream_results`."""

OnBadRow = Callable[[bytes, DecodeError], None]
"""Called with the key and the error of each row that fails to decode."""

OnRows = Callable[[int], None]
"""Called with the number of rows read (decodable or not) after each batch."""

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


def check_write_target(path: str) -> None:
    """Check that a writing command may open ``path`` with a store.

    The store creates its tables in any SQLite file it is given. That is right for a new or
    empty database, and for an mcstore database; for any other database (say lnd's own
    ``channel.sqlite``, passed by mistake) it would be vandalism, so this refuses it. Raises
    :class:`~mcstore.LocationError`; writes nothing. A ``postgresql://`` URL passes: the store
    creates its tables only in the schema the URL chooses, beside whatever else is there. A
    location that is not durable storage raises :class:`~mcstore.backends.InvalidLocation`
    (:func:`~mcstore.backends.classify_location`).
    """
    if classify_location(path) == "postgres":
        return
    if not check_sqlite_file(path):
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            raise LocationError(path, f"directory {directory!r} does not exist")
        return
    if os.path.getsize(path) == 0:
        return
    conn = connect_readonly(path)
    try:
        tables = table_names(conn)
    except sqlite3.Error as exc:
        raise LocationError(path, f"cannot read: {exc}") from None
    finally:
        conn.close()
    if tables and "mc_results" not in tables:
        raise LocationError(
            path, f"not an mcstore database (tables: {', '.join(tables)}); refusing to write to it"
        )


def namespaces(conn: sqlite3.Connection) -> list[str]:
    """Every namespace that has rows or a recorded count, sorted."""
    rows = conn.execute(
        "SELECT namespace FROM mc_results UNION SELECT namespace FROM mc_namespaces ORDER BY 1"
    ).fetchall()
    return [str(row[0]) for row in rows]


async def stream_results(
    snapshot: Snapshot,
    on_bad_row: OnBadRow,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_rows: OnRows | None = None,
) -> AsyncGenerator[tuple[bytes, bytes, PaymentResult], None]:
    """Yield ``(key, value, result)`` for each row of ``snapshot``, oldest first (key order).

    Reads ``batch_size`` rows at a time, so memory does not grow with the namespace. A row
    that fails to decode goes to ``on_bad_row`` and is skipped; nothing is deleted.
    ``on_rows`` hears how many rows each batch held (for a progress bar). Close the
    generator (``contextlib.aclosing``) when leaving early; the snapshot stays the caller's.
    """
    while True:
        rows = await snapshot.next_batch(batch_size)
        if on_rows is not None:
            on_rows(len(rows))
        for key, value in rows:
            try:
                result = decode_result(key, value)
            except DecodeError as exc:
                on_bad_row(bytes(key), exc)
                continue
            yield key, value, result
        if len(rows) < batch_size:
            return


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


async def namespace_stats(
    snapshot: Snapshot, namespace: str, on_bad_row: OnBadRow, *, on_rows: OnRows | None = None
) -> NamespaceStats:
    """Decode every row of ``snapshot`` (of ``namespace``) once and summarise it, streaming;
    report bad rows to ``on_bad_row`` and batch sizes to ``on_rows``."""
    stats = NamespaceStats(namespace)

    def bad_row(key: bytes, exc: DecodeError) -> None:
        stats.undecodable += 1
        on_bad_row(key, exc)

    async with contextlib.aclosing(stream_results(snapshot, bad_row, on_rows=on_rows)) as rows:
        async for _key, _value, result in rows:
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
