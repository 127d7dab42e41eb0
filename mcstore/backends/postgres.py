"""The PostgreSQL backend: lnd's key and value bytes on a database server, one table for all namespaces.

Schema (version 2, kept in ``mc_schema``), in the connection's current schema (the first
existing schema of its ``search_path``; set it with ``?options=-csearch_path%3Dname``)::

    mc_schema(version integer NOT NULL)
    mc_results(namespace text COLLATE "C" NOT NULL, key bytea NOT NULL, value bytea NOT NULL,
               PRIMARY KEY(namespace, key))
    mc_namespaces(namespace text COLLATE "C" PRIMARY KEY, stored bigint NOT NULL, owner bytea)

Version 1 had no ``owner``; a writer's open migrates a version-1 schema in one transaction
(readers read both versions and never migrate).

The tables are those of the SQLite backend. ``bytea`` compares bytewise, unsigned, shorter
prefix first, as SQLite BLOBs and bbolt keys do, so key order is chronological order.
``mc_namespaces.stored`` is each namespace's row count, changed in the same transaction as the
rows, *relative* to its stored value by the number of rows really inserted or deleted. A flush
whose COMMIT outcome was unknown (the connection dropped during it) is retried: if it had
committed, ``ON CONFLICT DO NOTHING`` inserts nothing the second time and adds nothing to the
count; if not, it inserts everything. Either way nothing is stored twice and the count is right.

One writer per namespace: the store's connection holds a session-level advisory lock,
``pg_try_advisory_lock(key)``, while the store is open. The key is computed in Python
(:func:`namespace_lock_key`): the first 8 bytes of
``sha256(b"mcstore-namespace\\0" + schema + b"\\0" + namespace)`` (both UTF-8), as a signed
big-endian 64-bit integer. Advisory locks are per database, so the schema is part of the key.
A second opener, in any process on any host, gets :class:`~mcstore.StoreLocked` at once. If the
connection breaks (server restart, ``pg_terminate_backend``, network loss), the next call
reconnects and takes the lock again before it writes; if another session took it meanwhile,
the call fails loudly (logged at ERROR, :class:`~mcstore.StoreError`) and the store keeps the
results pending and retries with its backoff.

The lock can also be lost without the store noticing (``pg_advisory_unlock_all()`` run on its
session, a connection that was cut and re-locked after another store came and went). So, as on
SQLite, each store also holds a fencing token: at open, once it holds the lock, it writes a
random token into its namespace's ``owner`` in a transaction of its own, and every write
transaction (flush, clear, the prune at open, ``fetch_all``'s repair) first reads the token
``FOR UPDATE`` (so that no other store can change it until the transaction ends) and writes
nothing unless it is still its own: else it raises :class:`~mcstore.StoreFenced`, logged at
ERROR, and the store keeps its results pending. (A flush sends all its statements in one round
trip, so its writes are conditional on the token too, and a fenced flush commits nothing.)

Lock waits: every connection sets ``lock_timeout`` (the backend's keyword, 5 s by default, as
SQLite waits for its write lock), so no statement waits longer for a lock that another session
holds; an open that does fails with :class:`~mcstore.StoreError` naming ``lock_timeout``.

Durability: ``synchronous_commit = on`` on the store's connection (overriding a role or
database default), so COMMIT returns once the WAL is flushed. Opening logs a WARNING if the
server runs with ``fsync = off``. TCP keepalives (client and server side: idle 30 s, then 3
probes 10 s apart, and ``tcp_user_timeout`` 60 s) free the lock of a vanished host in about a
minute instead of the OS default of two hours.

Replication and failover (:mod:`~mcstore.backends._pgha`; the how-to
docs/howto/high-availability.md): opening logs a WARNING when acknowledged results can be lost on failover (the
server has standbys but ``synchronous_standby_names`` is empty, or the session's
``synchronous_commit`` does not wait for them) or when every commit would wait (standbys named,
none connected). A COMMIT that returns with a WARNING (a cancelled wait for synchronous
replication: committed here, maybe not on the standby) is not acknowledged: the call raises and
the results stay pending; storing them again deduplicates them. While a call runs, a watch on a
second connection logs an ERROR naming ``synchronous_standby_names`` once its commit has waited
for synchronous replication longer than ``sync_wait_alarm``. With a multi-host URL and
``target_session_attrs=read-write``, a reconnect after a failover reaches the new primary and
takes the namespace lock there (advisory locks are not replicated).

Threads and cancellation: every call runs in the backend's own persistent worker thread
(:class:`~mcstore.backends._thread.WorkerThread`, the SQLite backend's model), one at a time, on
a synchronous psycopg connection (psycopg's async API is asyncio-only). Cancelling a call sets a
flag that the worker checks between statements, and sends ``Connection.cancel_safe()`` from a
short-lived helper thread (repeated every 0.1 s while the call runs, since a cancel that
reaches an idle session is ignored); the statement stops with ``QueryCanceled`` and its
transaction rolls back. A call that had already committed returns normally. Either way the
call has finished when the awaiting task resumes: nothing is abandoned. A connect cannot be
cancelled; it is bounded by ``connect_timeout`` (default 5 s), which is thus the uninterruptible
part of a call that has to reconnect. :meth:`PostgresBackend.aclose` unlocks the namespace,
closes the connection and ends the thread.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ..codec import encode_result
from ..errors import StoreError, StoreFenced, StoreLocked
from ..model import PaymentResult
from ._database import DatabaseBackend
from ._pgconn import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_LOCK_TIMEOUT,
    LOCK_NOT_AVAILABLE,
    PSYCOPG_MISSING,
    DriverError,
    Interrupted,
    PgSession,
    check_lock_timeout,
    connect,
    driver_text,
    parse_dsn,
)
from ._pgconn import require_psycopg as _require_psycopg
from ._pgha import DEFAULT_SYNC_WAIT_ALARM, CommitWarnings, SyncWaitWatch, replication_state
from .base import CANCEL_CHECK_ROWS, FlushOutcome, decode_stored_rows
from .location import POSTGRES_SCHEMES, is_postgres_url, redact_location
from .postgres_read import PostgresSnapshot

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["PSYCOPG_MISSING", "SCHEMA_VERSION", "URL_SCHEMES", "PostgresBackend", "is_postgres_url",
           "namespace_lock_key"]

logger = logging.getLogger("mcstore")

T = TypeVar("T")

SCHEMA_VERSION: Final = 2
"""The schema version this mcstore writes, and the newest it can read (it reads every older one)."""

URL_SCHEMES: Final = POSTGRES_SCHEMES
"""A ``path`` that starts with one of these is a PostgreSQL connection URL."""


_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS mc_schema(version integer NOT NULL)",
    'CREATE TABLE IF NOT EXISTS mc_results(namespace text COLLATE "C" NOT NULL, key bytea NOT NULL, '
    "value bytea NOT NULL, PRIMARY KEY(namespace, key))",
    'CREATE TABLE IF NOT EXISTS mc_namespaces(namespace text COLLATE "C" PRIMARY KEY, stored bigint NOT NULL, '
    "owner bytea)",
)
_MIGRATE_1_TO_2: Final = ("ALTER TABLE mc_namespaces ADD COLUMN IF NOT EXISTS owner bytea",)
"""From version 1 to 2: the fencing token's column. Run in the transaction that sets the version."""
_OWNER: Final = "SELECT owner FROM mc_namespaces WHERE namespace = %s FOR UPDATE"
_CLAIM: Final = "UPDATE mc_namespaces SET owner = %s WHERE namespace = %s"
_ADD_COUNT: Final = "UPDATE mc_namespaces SET stored = stored + %s WHERE namespace = %s RETURNING stored"
_RECOUNT: Final = (
    "INSERT INTO mc_namespaces(namespace, stored) SELECT %(ns)s, count(*) FROM mc_results WHERE namespace = %(ns)s "
    "ON CONFLICT(namespace) DO UPDATE SET stored = excluded.stored RETURNING stored"
)
_SET_COUNT: Final = (
    "INSERT INTO mc_namespaces(namespace, stored) VALUES (%s, %s) "
    "ON CONFLICT(namespace) DO UPDATE SET stored = excluded.stored"
)
# Keeps the `max_records` greatest keys: deletes every key up to the one at that offset from
# the top. A walk of `max_records` index entries, whatever the history size.
_PRUNE: Final = (
    "DELETE FROM mc_results WHERE namespace = %(ns)s AND key <= (SELECT key FROM mc_results "
    "WHERE namespace = %(ns)s ORDER BY key DESC OFFSET %(keep)s LIMIT 1)"
)


# A flush's writes, each conditional on the fencing token (see PostgresBackend._flush), each
# moving the kept count by the rows it really inserted or deleted, and returning the new count
# and those rows.
_MINE: Final = "EXISTS (SELECT FROM mc_namespaces WHERE namespace = %(ns)s AND owner = %(token)s)"
_COUNT_BY: Final = (
    "), n AS (SELECT count(*) AS n FROM changed) UPDATE mc_namespaces SET stored = stored {} n.n FROM n "
    "WHERE namespace = %(ns)s AND owner = %(token)s RETURNING stored, n.n"
)
_INSERT_COUNTED: Final = (
    "WITH changed AS (INSERT INTO mc_results(namespace, key, value) SELECT %(ns)s, k, v "
    "FROM unnest(%(keys)s::bytea[], %(values)s::bytea[]) AS u(k, v) WHERE " + _MINE + " "
    "ON CONFLICT DO NOTHING RETURNING 1" + _COUNT_BY.format("+")
)
_PRUNE_COUNTED: Final = "WITH changed AS (" + _PRUNE + " AND " + _MINE + " RETURNING 1" + _COUNT_BY.format("-")
_INSERT_CHUNK: Final = 1000
"""Rows per ``INSERT`` of a flush: its arrays stay small, and a flush of any size one round trip."""


def namespace_lock_key(schema: str, namespace: str) -> int:
    """The advisory lock key of ``namespace`` in ``schema`` (see the module docstring)."""
    digest = hashlib.sha256(b"mcstore-namespace\0" + schema.encode() + b"\0" + namespace.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _schema_lock_key(schema: str) -> int:
    """The transaction advisory lock that serialises creating the tables in ``schema``."""
    digest = hashlib.sha256(b"mcstore-schema\0" + schema.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresBackend(DatabaseBackend[PostgresSnapshot]):
    """A :class:`~mcstore.backends.Backend` on a PostgreSQL server, through psycopg 3.

    Connection parameters given in ``dsn`` win over mcstore's defaults (``connect_timeout``,
    TCP keepalives, ``application_name``). One backend opens one namespace once. No message,
    log line or ``repr`` of the backend shows a password
    (:func:`~mcstore.backends.redact_location`); errors of the driver are scrubbed of it.

    Args:
        dsn: A libpq connection string or ``postgresql://`` URL.
        connect_timeout: Seconds that bound each connect (an int, at least 2).
        lock_timeout: Seconds any statement may wait for a lock that another session holds
            (PostgreSQL's ``lock_timeout``, set on every connection of the backend; as SQLite
            waits for its write lock). An open that waits longer (say, behind ``LOCK TABLE
            mc_namespaces``) fails with :class:`~mcstore.StoreError` naming ``lock_timeout``;
            a flush that does fails and is retried as any failed flush.
        sync_wait_alarm: Seconds a commit may wait for synchronous replication before an ERROR
            is logged (see the module docstring).

    Raises:
        InvalidLocation: A ``dsn`` that does not parse (a ``ValueError``), at once.
        StoreError: The ``postgres`` extra (psycopg) is not installed; the error names it.
        TypeError: A ``dsn`` that is not a non-empty str.
        ValueError: A ``connect_timeout``, ``lock_timeout`` or ``sync_wait_alarm`` out of range.
    """

    DIALECT = "PostgreSQL"
    DRIVER_ERRORS = (DriverError, Interrupted)

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        sync_wait_alarm: float = DEFAULT_SYNC_WAIT_ALARM,
    ) -> None:
        if not isinstance(dsn, str) or not dsn:
            raise TypeError(f"dsn must be a non-empty str, got {redact_location(dsn)!r}")
        if not isinstance(connect_timeout, int) or isinstance(connect_timeout, bool) or connect_timeout < 2:
            raise ValueError(f"connect_timeout must be an int >= 2 (seconds), got {connect_timeout!r}")
        self.lock_timeout: Final = check_lock_timeout(lock_timeout)
        alarm_ok = isinstance(sync_wait_alarm, (int, float)) and not isinstance(sync_wait_alarm, bool)
        if not alarm_ok or not 0 < sync_wait_alarm < math.inf:
            raise ValueError(f"sync_wait_alarm must be a number of seconds > 0, got {sync_wait_alarm!r}")
        _require_psycopg()
        parse_dsn(dsn)
        self.dsn: Final = dsn
        where = redact_location(dsn)
        super().__init__(where, where)
        self.connect_timeout: Final = connect_timeout
        self.schema = ""
        self._lock_key = 0
        self._session = PgSession("pg-backend")
        self.reconnects = 0
        """Connections made after the first one (each one re-took the namespace lock)."""
        self._pid: int | None = None  # the server pid of the store's session, for the watch
        self._sync_watch = SyncWaitWatch(dsn, self.where, connect_timeout, lambda: self._pid, alarm=sync_wait_alarm)
        self._commit_warnings = CommitWarnings()

    @property
    def calls_in_flight(self) -> int:
        """Calls running in the worker thread now: 0 whenever no call is awaited."""
        return self._session.calls_in_flight

    @property
    def _conn(self) -> Connection[Any] | None:
        return self._session.conn

    @_conn.setter
    def _conn(self, conn: Connection[Any] | None) -> None:
        self._session.conn = conn
        self._pid = None if conn is None else conn.info.backend_pid

    def _raise_if_cancelled(self) -> None:
        self._session.raise_if_cancelled()

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the worker thread (see :class:`~mcstore.backends._pgconn.PgSession`)."""
        return await self._session.run(fn)

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> Connection[Any]:
        conn = connect(self.dsn, self.connect_timeout, self.lock_timeout)
        conn.add_notice_handler(self._commit_warnings.notice)
        return conn

    def _try_lock(self, conn: Connection[Any]) -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,)).fetchone()
        return bool(row and row[0])

    def _usable(self) -> Connection[Any]:
        """The store's connection, holding the namespace lock: reconnect and re-lock if it broke.

        Raises :class:`StoreError` (logged at ERROR) if another session took the lock while
        this one was disconnected.
        """
        from psycopg.pq import TransactionStatus

        conn = self._conn
        if conn is not None and not conn.closed:
            status = conn.info.transaction_status
            if status == TransactionStatus.IDLE:
                return conn
            if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
                conn.rollback()  # left over from a cancelled or failed call
                return conn
        if conn is not None:
            self._conn = None
            conn.close()
        self._raise_if_cancelled()
        logger.warning(
            "PostgreSQL connection of mission control namespace %r lost; reconnecting to %s",
            self.namespace, self.where,
        )
        conn = self._connect()
        try:
            if not self._try_lock(conn):
                logger.error(
                    "Mission control namespace %r was locked by another session while the connection to %s "
                    "was lost; not writing (results stay pending)",
                    self.namespace, self.where,
                )
                raise StoreError(
                    f"namespace {self.namespace!r} on {self.where} was taken by another store while the "
                    "connection was lost; results stay pending"
                )
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self.reconnects += 1
        logger.info("Reconnected to %s and re-locked mission control namespace %r", self.where, self.namespace)
        return conn

    def _check_fence(self, conn: Connection[Any]) -> None:
        """Raise :class:`StoreFenced` (logged at ERROR) unless the namespace's fencing token is
        still the store's own. Call first in a write transaction: the row stays locked until it ends."""
        self._check_owner(conn.execute(_OWNER, (self.namespace,)).fetchone())

    def _check_owner(self, row: tuple[Any, ...] | None) -> None:
        """Raise :class:`StoreFenced` (logged at ERROR) unless ``row``, the namespace's token as
        :data:`_OWNER` read it, is the store's own."""
        if row is None or row[0] is None or bytes(row[0]) != self._token:
            logger.error(
                "Mission control namespace %r on %s (schema %r) was taken over by another store (its fencing "
                "token changed); not writing (results stay pending)", self.namespace, self.where, self.schema,
            )
            raise StoreFenced(
                f"namespace {self.namespace!r} on {self.where} (schema {self.schema!r}) was taken over by another "
                "store (its fencing token changed); nothing written"
            )

    def _write(self, work: Callable[[Connection[Any]], T], *, fenced: bool = True) -> T:
        """Run ``work`` in one transaction on the locked connection (see :meth:`_retried`).

        ``fenced`` (every write once the store holds its token): check the token first
        (:meth:`_check_fence`).
        """

        def transaction(conn: Connection[Any]) -> T:
            with conn.transaction():
                if fenced:
                    self._check_fence(conn)
                value = work(conn)
                # Cancelled between statements, where no cancel request reaches: do not commit.
                self._raise_if_cancelled()
                self._commit_warnings.clear()  # what the COMMIT says comes next
            return value

        return self._retried(transaction)

    def _retried(self, transaction: Callable[[Connection[Any]], T]) -> T:
        """Run ``transaction`` (one transaction on the locked connection: committed when it
        returns, rolled back when it raises), then check what its COMMIT said.

        A transaction that fails because the connection was lost is retried once on a new
        connection, at once (safe: see the module docstring); any other failure is raised,
        with everything rolled back. A COMMIT that returned with a WARNING raises
        :class:`~mcstore.backends._pgha.CommitNotConfirmed`.
        """
        import psycopg

        for attempt in (1, 2):
            conn = self._usable()
            self._raise_if_cancelled()
            # The transaction moves the cached count as its statements return; one that does
            # not commit must not leave it moved.
            stored_before = self._stored
            try:
                try:
                    value = transaction(conn)
                except BaseException:
                    self._stored = stored_before
                    raise
                # Committed here; a cancelled wait for a synchronous standby is not acknowledged.
                self._commit_warnings.check(self.where, "transaction")
                return value
            except psycopg.OperationalError as exc:
                if attempt == 2 or not conn.closed or self._session.cancel_requested:
                    raise
                logger.warning("PostgreSQL transaction on %s failed with the connection (%s); retrying once",
                               self.where, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _flush(self, conn: Connection[Any], keys: list[bytes], values: list[bytes], max_records: int) -> FlushOutcome:
        """A flush's transaction in one round trip (psycopg's pipeline mode), for :meth:`_retried`.

        BEGIN; the fencing token read ``FOR UPDATE`` (:data:`_OWNER`), which locks the
        namespace's row until the transaction ends; one ``INSERT ... ON CONFLICT DO NOTHING`` of
        the rows' arrays per :data:`_INSERT_CHUNK` rows, which moves the kept count by the rows it
        really inserted; the prune to ``max_records``, which moves it by the rows it deleted;
        COMMIT. The token is checked once the answers are in, so every write is also
        conditional on it (:data:`_MINE`): a fenced flush commits nothing, then raises
        :class:`StoreFenced`. (Every round trip adds the network's latency to the flush;
        ``executemany`` also sends each row on its own.) The flush's
        statements raise no WARNING: any that comes is the COMMIT's.
        """
        namespace = self.namespace
        mine = {"ns": namespace, "token": self._token}
        try:
            # BEGIN and COMMIT as statements: psycopg's transaction() syncs the pipeline when it
            # starts and when it ends, a round trip each.
            with conn.pipeline():
                conn.execute("BEGIN")
                owner = conn.execute(_OWNER, (namespace,))
                inserts = [
                    conn.execute(
                        _INSERT_COUNTED,
                        {**mine, "keys": keys[i : i + _INSERT_CHUNK], "values": values[i : i + _INSERT_CHUNK]},
                    )
                    for i in range(0, len(keys), _INSERT_CHUNK)
                ]
                prune = conn.execute(_PRUNE_COUNTED, {**mine, "keep": max_records}) if max_records else None
                self._commit_warnings.clear()  # what the COMMIT says comes next
                conn.execute("COMMIT")
        except BaseException:
            self._end_failed_transaction(conn)
            raise
        self._check_owner(owner.fetchone())
        added = pruned = 0
        for cursor in (*inserts, prune):
            if cursor is not None:
                row = cursor.fetchone()
                assert row is not None  # the token was the store's: every count update found its row
                self._stored = int(row[0])
                if cursor is prune:
                    pruned = int(row[1])
                else:
                    added += int(row[1])
        return FlushOutcome(added, len(keys) - added, pruned, self._stored)

    def _end_failed_transaction(self, conn: Connection[Any]) -> None:
        """Roll back what a failed pipelined transaction left open.

        A statement that fails makes the server skip the COMMIT queued behind it: the
        transaction stays open, failed, holding its locks (the namespace's row among them),
        until a ROLLBACK.
        """
        from psycopg.pq import TransactionStatus

        if conn.closed or conn.info.transaction_status == TransactionStatus.IDLE:
            return
        try:
            conn.rollback()
        except Exception as exc:  # a broken connection: the server ends its transaction itself
            logger.debug("PostgreSQL rollback after a failed flush failed: %s", driver_text(exc))

    # -- Backend protocol --------------------------------------------------------------------

    async def open(self, namespace: str, max_records: int) -> int:
        """Connect, lock ``namespace``, create, check or migrate the schema, write the store's
        fencing token (in a transaction of its own), prune to ``max_records``.

        Raises :class:`~mcstore.StoreLocked` at once if another session holds the namespace,
        and :class:`~mcstore.StoreError` if the server cannot be reached (within
        ``connect_timeout``), the schema is newer than this mcstore, or any statement fails.
        On failure nothing stays open or locked.
        """
        return await super().open(namespace, max_records)

    def _open_sync(self, max_records: int) -> int:
        conn = self._connect()
        self._conn = conn
        row = conn.execute("SELECT current_schema(), current_setting('fsync')").fetchone()
        assert row is not None
        schema, fsync = row
        if schema is None:
            raise StoreError(f"{self.where}: no schema of the search_path exists to create mcstore's tables in")
        self.schema = str(schema)
        if fsync != "on":
            logger.warning(
                "PostgreSQL server %s runs with fsync=%s: a crash of the server can lose acknowledged "
                "mission control results", self.where, fsync,
            )
        replication = replication_state(conn).warning
        if replication is not None:
            logger.warning("PostgreSQL server %s: %s", self.where, replication)
        self._lock_key = namespace_lock_key(self.schema, self.namespace)
        if not self._try_lock(conn):
            raise StoreLocked(
                f"namespace {self.namespace!r} is already open in another store "
                f"({self.where}, schema {self.schema!r}, advisory lock {self._lock_key})"
            )
        self._write(self._ensure_schema, fenced=False)
        return self._claim_and_prune(max_records)

    def _claim_namespace(self) -> int:
        return self._write(self._claim, fenced=False)

    def _prune_at_open(self, max_records: int) -> int:
        return self._write(lambda c: self._prune(c, max_records))

    def _ensure_schema(self, conn: Connection[Any]) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_schema_lock_key(self.schema),))
        exists = conn.execute("SELECT to_regclass('mc_schema') IS NOT NULL").fetchone()
        if exists and exists[0]:
            row = conn.execute("SELECT max(version) FROM mc_schema").fetchone()
            version = row[0] if row else None
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.where} (schema {self.schema!r}) has mcstore schema version {version}, newer than "
                    f"the version {SCHEMA_VERSION} this mcstore supports; upgrade mcstore"
                )
            if version == SCHEMA_VERSION:
                return
        for statement in (*_DDL, *_MIGRATE_1_TO_2):
            conn.execute(statement)
        conn.execute("DELETE FROM mc_schema")
        conn.execute("INSERT INTO mc_schema(version) VALUES (%s)", (SCHEMA_VERSION,))

    def _claim(self, conn: Connection[Any]) -> int:
        """Write the store's fencing token into the namespace's row; return its kept count."""
        stored = self._count_row(conn)  # makes sure that the row exists
        conn.execute(_CLAIM, (self._token, self.namespace))
        return stored

    def _count_row(self, conn: Connection[Any]) -> int:
        """The namespace's kept count; counted once if there is none yet."""
        row = conn.execute("SELECT stored FROM mc_namespaces WHERE namespace = %s", (self.namespace,)).fetchone()
        if row is not None:
            return int(row[0])
        row = conn.execute(_RECOUNT, {"ns": self.namespace}).fetchone()
        assert row is not None
        return int(row[0])

    def _prune(self, conn: Connection[Any], max_records: int) -> int:
        """Keep the ``max_records`` greatest keys; update the count; return how many went."""
        pruned = conn.execute(_PRUNE, {"ns": self.namespace, "keep": max_records}).rowcount
        if pruned:
            self._add_count(conn, -pruned)
        else:
            self._stored = self._read_count(conn)
        return pruned

    # The namespace's row exists in every fenced write: the fence check read it, FOR UPDATE.

    def _read_count(self, conn: Connection[Any]) -> int:
        row = conn.execute("SELECT stored FROM mc_namespaces WHERE namespace = %s", (self.namespace,)).fetchone()
        assert row is not None
        return int(row[0])

    def _add_count(self, conn: Connection[Any], delta: int) -> None:
        """Change the kept count by ``delta`` rows; sets ``_stored`` to the new count."""
        row = conn.execute(_ADD_COUNT, (delta, self.namespace)).fetchone()
        assert row is not None
        self._stored = int(row[0])

    async def store_results(self, results: Sequence[PaymentResult], max_records: int) -> FlushOutcome:
        """Insert ``results`` (deduplicated by key) and prune, in one transaction."""

        def work() -> FlushOutcome:
            keys: list[bytes] = []
            values: list[bytes] = []
            for start in range(0, len(results), CANCEL_CHECK_ROWS):
                self._raise_if_cancelled()
                for result in results[start : start + CANCEL_CHECK_ROWS]:
                    key, value = encode_result(result)
                    keys.append(key)
                    values.append(value)
            return self._retried(lambda conn: self._flush(conn, keys, values, max_records))

        return await self._call(work, "flush")

    def _read_all_sync(self) -> tuple[list[PaymentResult], list[bytes]]:
        namespace = self.namespace

        def read(conn: Connection[Any]) -> list[tuple[bytes, bytes]]:
            return conn.execute(
                "SELECT key, value FROM mc_results WHERE namespace = %s ORDER BY key", (namespace,)
            ).fetchall()

        rows = self._write(read, fenced=False)  # reading needs no token
        return decode_stored_rows(rows, namespace, self._raise_if_cancelled)

    def _repair_sync(self, corrupted: list[bytes], count: int) -> None:
        namespace = self.namespace

        def repair(conn: Connection[Any]) -> None:
            with conn.cursor() as cursor:
                cursor.executemany(
                    "DELETE FROM mc_results WHERE namespace = %s AND key = %s",
                    [(namespace, key) for key in corrupted],
                )
            conn.execute(_SET_COUNT, (namespace, count))

        self._write(repair)

    def _clear_sync(self) -> int:
        namespace = self.namespace

        def transaction(conn: Connection[Any]) -> int:
            deleted = conn.execute("DELETE FROM mc_results WHERE namespace = %s", (namespace,)).rowcount
            conn.execute(_SET_COUNT, (namespace, 0))
            return deleted

        return self._write(transaction)

    def _connected(self) -> bool:
        return bool(self.schema)

    def _new_snapshot(self) -> PostgresSnapshot:
        """A snapshot on its own connection, in a ``REPEATABLE READ READ ONLY`` transaction (see
        :class:`~mcstore.backends.postgres_read.PostgresSnapshot`)."""
        return PostgresSnapshot(
            self.dsn,
            self.namespace,
            connect_timeout=self.connect_timeout,
            lock_timeout=self.lock_timeout,
            on_release=self._snapshots.discard,
        )

    def _failure(self, exc: Exception, what: str) -> StoreError:
        if isinstance(exc, DriverError) and exc.sqlstate == LOCK_NOT_AVAILABLE:
            return StoreError(
                f"PostgreSQL {what} on {self.where} waited longer than lock_timeout={self.lock_timeout:g} s "
                f"for a lock that another session holds ({exc})"
            )
        return super()._failure(exc, what)

    def _before_open(self) -> None:
        self._sync_watch.start()

    def _call_started(self, what: str) -> None:
        self._sync_watch.call_started(what)

    def _call_ended(self) -> None:
        self._sync_watch.call_ended()

    async def _release(self) -> None:
        try:
            await self._run(self._close_sync)
        finally:
            await self._session.aclose()
            await self._sync_watch.aclose()

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not conn.closed and self._lock_key:
                if conn.info.transaction_status != conn.info.transaction_status.IDLE:
                    conn.rollback()
                # Explicitly: a closed session's locks are freed asynchronously, a little later.
                conn.execute("SELECT pg_advisory_unlock_all()")
        except Exception as exc:  # a broken connection: its session, and lock, are gone anyway
            logger.debug("PostgreSQL unlock at close failed: %s", exc)
        finally:
            conn.close()
