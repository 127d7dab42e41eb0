"""Reading mcstore's tables on PostgreSQL without writing: snapshots and the read-only reader.

:class:`PostgresSnapshot` is the :class:`~mcstore.backends.Snapshot` of one namespace: its own
connection, one ``REPEATABLE READ READ ONLY`` transaction held from open to close (its view is
fixed by its first read, so a flush commits meanwhile and is not seen), and keyset pagination
(``WHERE key > last ORDER BY key LIMIT n`` on the primary key), so that it holds one batch at a
time whatever the namespace's size. :class:`PostgresReader` is the
:class:`~mcstore.backends.Reader` of a database (the tables in the connection's current schema),
for ``mcstore stats`` and ``mcstore export``: it takes no namespace lock, and never creates,
repairs or deletes anything.

Calls run in a worker thread, one at a time per connection, and are cancelled as the backend's
are (:class:`~mcstore.backends._pgconn.PgSession`). ``aclose()`` from another task cancels the
call in progress, which then raises :class:`~mcstore.StoreClosed`. A snapshot holds back
the server's cleanup of old row versions (VACUUM) while it is open; close it promptly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ..errors import StoreError
from ._pgconn import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_LOCK_TIMEOUT,
    DriverError,
    Interrupted,
    PgSession,
    check_lock_timeout,
    connect,
    driver_text,
    parse_dsn,
    require_psycopg,
)
from ._pgha import ReplicationState, replication_state
from ._snapshot import KeysetSnapshot, OpenSnapshots, ReadConnection, SnapshotReader
from .base import Row
from .location import LocationError, redact_location

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["PostgresReader", "PostgresSnapshot"]

T = TypeVar("T")

_FIRST: Final = "SELECT key, value FROM mc_results WHERE namespace = %s ORDER BY key LIMIT %s"
_AFTER: Final = "SELECT key, value FROM mc_results WHERE namespace = %s AND key > %s ORDER BY key LIMIT %s"
_COUNT: Final = "SELECT count(*) FROM mc_results WHERE namespace = %s"
_NAMESPACES: Final = (
    "SELECT namespace, sum(n)::bigint FROM ("
    " SELECT namespace, count(*) AS n FROM mc_results GROUP BY namespace"
    " UNION ALL SELECT namespace, 0 FROM mc_namespaces"
    ") AS counts GROUP BY namespace ORDER BY namespace"
)


class _PgConnection(ReadConnection):
    """A :class:`~mcstore.backends._snapshot.ReadConnection` on a PostgreSQL connection, run by a
    :class:`~mcstore.backends._pgconn.PgSession` (which serialises the calls and cancels them)."""

    DIALECT = "PostgreSQL"
    DRIVER_ERRORS = (DriverError, Interrupted)

    def __init__(self, dsn: str, what: str, connect_timeout: int, lock_timeout: float) -> None:
        require_psycopg()
        parse_dsn(dsn)
        where = redact_location(dsn)
        super().__init__(where, where, what)
        self.dsn: Final = dsn
        self._connect_timeout = connect_timeout
        self._lock_timeout = check_lock_timeout(lock_timeout)
        self._session = PgSession("pg-reader")

    def _connection(self) -> Connection[Any]:
        conn = self._session.conn
        if conn is None:
            raise StoreError(f"{self._what} of {self.where} is not connected")
        return conn

    def _connect_sync(self) -> Connection[Any]:
        conn = connect(self.dsn, self._connect_timeout, self._lock_timeout)
        self._session.conn = conn
        return conn

    async def _run(self, fn: Callable[[], T]) -> T:
        return await self._session.run(fn)

    def _interrupt(self) -> None:
        self._session.interrupt()

    async def _close_connection(self) -> None:
        try:
            await self._session.run(self._close_sync)
        finally:
            await self._session.aclose()

    def _close_sync(self) -> None:
        conn, self._session.conn = self._session.conn, None
        if conn is not None:
            conn.close()


class PostgresSnapshot(KeysetSnapshot, _PgConnection):
    """The :class:`~mcstore.backends.Snapshot` of ``namespace`` in the database of ``dsn``.

    Create it, then ``await snapshot.start()`` (which takes the view); both the PostgreSQL
    backend and :class:`PostgresReader` do this for you. ``on_release`` is called once when it
    is closed.
    """

    def __init__(
        self,
        dsn: str,
        namespace: str,
        *,
        connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        on_release: Callable[[PostgresSnapshot], None] | None = None,
    ) -> None:
        super().__init__(dsn, f"snapshot of namespace {namespace!r}", connect_timeout, lock_timeout)
        self.namespace: Final = namespace
        self._init_keyset(on_release)

    def _begin_sync(self) -> None:
        conn = self._connect_sync()
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        # The first read fixes the transaction's view.
        conn.execute("SELECT 1 FROM mc_results WHERE namespace = %s LIMIT 1", (self.namespace,)).fetchall()

    def _page_sync(self, after: bytes | None, max_rows: int) -> list[Row]:
        conn = self._connection()
        if after is None:
            rows = conn.execute(_FIRST, (self.namespace, max_rows)).fetchall()
        else:
            rows = conn.execute(_AFTER, (self.namespace, after, max_rows)).fetchall()
        return [(bytes(key), bytes(value)) for key, value in rows]

    def _count_sync(self) -> int:
        row = self._connection().execute(_COUNT, (self.namespace,)).fetchone()
        return int(row[0]) if row is not None else 0


class PostgresReader(SnapshotReader[PostgresSnapshot], _PgConnection):
    """The :class:`~mcstore.backends.Reader` of mcstore's tables in the database of ``dsn``.

    Open it with :meth:`open` (or :func:`mcstore.backends.open_reader`). Raises
    :class:`~mcstore.LocationError` for a server that cannot be reached, a schema without
    mcstore's tables, or a newer schema version. ``location`` has no password.
    """

    def __init__(
        self, dsn: str, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> None:
        super().__init__(dsn, "reader", connect_timeout, lock_timeout)
        self.location: str = self.where
        self.schema_version: int = 0
        self.replication: ReplicationState | None = None
        """How the server replicates, read at open (its ``describe()`` is ``mcstore stats``'s line)."""
        self._snapshots: OpenSnapshots[PostgresSnapshot] = OpenSnapshots()

    @classmethod
    async def open(cls, dsn: str, *, newest_schema: int) -> PostgresReader:
        """Open the reader of ``dsn``, accepting schema versions up to ``newest_schema``."""
        import psycopg

        reader = cls(dsn)

        def work() -> None:
            try:
                conn = reader._connect_sync()
            except psycopg.OperationalError as exc:
                raise LocationError(reader.location, f"cannot connect: {driver_text(exc)}") from None
            row = conn.execute(
                "SELECT current_schema(), to_regclass('mc_results') IS NOT NULL, to_regclass('mc_schema') IS NOT NULL"
            ).fetchone()
            assert row is not None
            schema, has_results, has_version = row
            if not has_results:
                raise LocationError(reader.location, f"not an mcstore database (no mc_results table in schema "
                                                     f"{schema!r})")
            version_row = conn.execute("SELECT max(version) FROM mc_schema").fetchone() if has_version else None
            version = int(version_row[0]) if version_row and version_row[0] is not None else 0
            if version > newest_schema:
                raise LocationError(
                    reader.location, f"schema version {version} is newer than {newest_schema}, which this mcstore reads"
                )
            reader.schema_version = version
            reader.replication = replication_state(conn)

        await reader._start(work)
        return reader

    def _new_snapshot(self, namespace: str) -> PostgresSnapshot:
        return PostgresSnapshot(
            self.dsn,
            namespace,
            connect_timeout=self._connect_timeout,
            lock_timeout=self._lock_timeout,
            on_release=self._snapshots.discard,
        )

    async def namespaces(self) -> dict[str, int]:
        """See :meth:`mcstore.backends.Reader.namespaces`."""

        def work() -> dict[str, int]:
            rows = self._connection().execute(_NAMESPACES).fetchall()
            return {str(name): int(count) for name, count in rows}

        return await self._call(work)

    async def check_integrity(self) -> list[str]:
        """See :meth:`mcstore.backends.Reader.check_integrity`: a server checks its own pages."""
        return []
