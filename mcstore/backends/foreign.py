"""Reading a database that is not mcstore's, read-only: lnd's own, for ``mcstore import-lnd``.

:func:`query_readonly` opens the database at a location (an SQLite file or a ``postgresql://``
URL) so that nothing is written to it and nothing is created beside it, and hands back one
function that runs a query. What the tables mean is the caller's business
(:mod:`mcstore.cli.lnd_import`); how to reach them without harm is this module's.

* An SQLite file is opened read-only and, when no program has it open (no ``-wal`` file),
  ``immutable``, so that not even SQLite's ``-wal``/``-shm`` companions are created next to it
  (:func:`~mcstore.backends.sqlite_read.open_readonly`).
* A PostgreSQL database is read in one ``REPEATABLE READ READ ONLY`` transaction, so that every
  query sees one consistent view even while its owner writes, connected as the store connects;
  the driver's errors are scrubbed of the password.

Every failure to read, inside the ``with`` block too, is a :class:`~mcstore.LocationError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

from ..errors import StoreError
from .location import LocationError, classify_location, redact_location
from .sqlite_read import connect_readonly, table_names

__all__ = ["Query", "query_readonly"]

Query = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
"""Runs one statement (``?`` placeholders, whatever the database) and returns its rows."""


@contextmanager
def query_readonly(location: str, table: str) -> Iterator[tuple[Query, bool, str]]:
    """Open the database at ``location`` read-only: yield ``(query, has table, name for messages)``.

    ``has table`` says whether ``table`` exists (on PostgreSQL: in the connection's current
    schema); the name for messages has no password. Raises :class:`~mcstore.LocationError`
    for a location that cannot be opened or read, and for a driver error raised by ``query``
    within the block. Closes the connection (and ends the transaction) on leaving the block,
    whatever happens.
    """
    if classify_location(location) == "postgres":
        with _postgres(location, table) as opened:
            yield opened
        return
    with closing(connect_readonly(location, immutable_if_idle=True)) as conn:

        def query(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            return conn.execute(sql, params).fetchall()

        try:
            yield query, table in table_names(conn), location
        except sqlite3.Error as exc:
            raise LocationError(location, f"cannot read: {exc}") from None


@contextmanager
def _postgres(url: str, table: str) -> Iterator[tuple[Query, bool, str]]:
    """The database of ``url`` in one REPEATABLE READ READ ONLY transaction.

    Connected as the store connects (:func:`~mcstore.backends._pgconn.connect`); errors of the
    driver are scrubbed of the password (:func:`~mcstore.backends._pgconn.driver_text`).
    """
    from ._pgconn import DEFAULT_CONNECT_TIMEOUT, connect, driver_text, require_psycopg

    try:
        require_psycopg()
    except StoreError as exc:
        raise LocationError(url, str(exc)) from None
    import psycopg

    where = redact_location(url)
    try:
        conn = connect(url, DEFAULT_CONNECT_TIMEOUT)
    except psycopg.Error as exc:
        raise LocationError(where, f"cannot connect: {driver_text(exc)}") from None
    with conn:

        def query(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            yield query, bool(found and found[0]), where
            conn.execute("ROLLBACK")
        except psycopg.Error as exc:
            raise LocationError(where, f"cannot read: {driver_text(exc)}") from None
