"""The SQLite backend: lnd's key and value bytes in one SQLite file, one table for all namespaces.

Schema (version 2, kept in ``PRAGMA user_version``)::

    mc_results(namespace TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
               PRIMARY KEY(namespace, key)) WITHOUT ROWID
    mc_namespaces(namespace TEXT PRIMARY KEY, stored INTEGER NOT NULL, owner BLOB) WITHOUT ROWID

``mc_results`` holds lnd's 49-byte key and TLV value. BLOBs compare with ``memcmp``, so key
order is chronological order, as in lnd's bbolt bucket. ``mc_namespaces`` keeps each
namespace's row count, written in the same transaction as the rows, so that opening a store
and deciding how much to prune cost O(1) whatever the history size, and the namespace's
fencing token (``owner``). Version 1 had no ``owner``; a writer's open migrates a version-1
file in one transaction (readers read both versions and never migrate).

One writer per namespace: the store holds the namespace's lock file (:mod:`._lock`), and at
open, once it holds the lock, writes a random fencing token into ``owner`` in a transaction of
its own. Every write transaction (flush, clear, the prune at open, ``fetch_all``'s repair)
checks, inside the transaction, that the database path still names the file it opened (its
device and inode, kept from open; first) and that the token is still its own (last: the
statement that writes the kept count matches the token, and must find its row): else it
rolls back, writes nothing, and raises :class:`~mcstore.StoreFenced` (logged at ERROR). The
write lock is held from the transaction's start, so the token cannot change in between. So if the lock file is
deleted and a second store opens the namespace, the first one can no longer write; and a flush
after the database file was deleted, renamed or replaced fails instead of writing into a file
nobody will read.

New files are private: the database is created mode 0600 before SQLite opens it (SQLite gives
its ``-wal``, ``-shm`` and ``-journal`` the database's mode), and so are lock files.

Every SQLite call runs in the backend's own worker thread (:class:`~mcstore.backends._thread.WorkerThread`,
started at ``open`` and ended at ``aclose``), one at a time. Cancelling a call interrupts the
statement that is running (``Connection.interrupt()``), and its transaction rolls back; a call
that had already committed returns normally. Either way the call has finished, and the thread
is idle, when the awaiting task resumes: nothing is abandoned.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from ..codec import encode_result
from ..errors import StoreError, StoreFenced, StoreLocked
from ..model import PaymentResult
from ._database import DatabaseBackend
from ._lock import NamespaceLock
from ._thread import WorkerThread
from .base import CANCEL_CHECK_ROWS, DEFAULT_LOCK_TIMEOUT, FlushOutcome, decode_stored_rows
from .location import InvalidLocation, classify_location, redact_location
from .sqlite_read import SQLiteSnapshot

__all__ = ["SCHEMA_VERSION", "SYNCHRONOUS_MODES", "SQLiteBackend"]

logger = logging.getLogger("mcstore")

T = TypeVar("T")

SCHEMA_VERSION: Final = 2
"""The schema version this mcstore writes, and the newest it can read (it reads every older one)."""

SYNCHRONOUS_MODES: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
"""Accepted values of ``synchronous`` (SQLite's ``PRAGMA synchronous``)."""

_LOCK_WAIT: Final = DEFAULT_LOCK_TIMEOUT
"""Seconds a write transaction waits for another connection's write lock before failing."""
_BUSY_SLICE_MS: Final = 50
"""SQLite's busy_timeout, in ms: how long one statement waits for a lock before re-checking
whether the call was cancelled."""


_SQLITE_HEADER: Final = b"SQLite format 3\x00"

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS mc_results("
    "namespace TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, "
    "PRIMARY KEY(namespace, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS mc_namespaces("
    "namespace TEXT PRIMARY KEY, stored INTEGER NOT NULL, owner BLOB) WITHOUT ROWID",
)
_MIGRATE_1_TO_2: Final = ("ALTER TABLE mc_namespaces ADD COLUMN owner BLOB",)
"""From version 1 to 2: the fencing token's column. Run in the transaction that sets the version."""
_INSERT_CHUNK: Final = 256
"""Rows per ``INSERT`` statement of a flush (a power of two; 2 * 256 + 1 parameters stay under
SQLite's oldest limit of 999).

A flush inserts its rows with multi-row ``INSERT ... VALUES (...), (...)`` statements, not with
``executemany``: ``executemany`` runs one statement per row, and the thread gives up the GIL
around each one. While the Trio thread is busy in Python, taking the GIL back costs up to
``sys.getswitchinterval()`` (5 ms) each time, so a flush paid that wait once per row. A flush
now takes the GIL back a few times per chunk, not per row."""

_PROGRESS_STEPS: Final = 10_000
"""SQLite virtual-machine steps between two calls of the progress handler. Each call needs the
GIL (see ``_INSERT_CHUNK``), so it is not called more often than cancellation needs: 10,000
steps are well under a millisecond of SQLite's work."""


@functools.cache
def _insert_sql(rows: int) -> str:
    """``INSERT OR IGNORE`` of ``rows`` rows: ``?1`` is the namespace, then each row's key and value."""
    values = ",".join(f"(?1,?{2 * i + 2},?{2 * i + 3})" for i in range(rows))
    return f"INSERT OR IGNORE INTO mc_results(namespace, key, value) VALUES {values}"


def _insert(conn: sqlite3.Connection, namespace: str, flat: list[bytes]) -> int:
    """Insert the rows of ``flat`` (key, value, key, value, ...) into ``namespace``; return how many
    were new. Call inside a transaction.

    In statements of ``_INSERT_CHUNK`` rows, and the rest in power-of-two statements, so that
    only nine distinct statements exist and every one stays in the connection's statement cache.
    ``INSERT OR IGNORE`` skips a key already stored, or already earlier in the same flush.
    """
    added = 0
    start, end = 0, len(flat) // 2
    while start < end:
        size = min(_INSERT_CHUNK, 1 << ((end - start).bit_length() - 1))
        params: list[str | bytes] = [namespace]
        params += flat[2 * start : 2 * (start + size)]
        added += conn.execute(_insert_sql(size), params).rowcount
        start += size
    return added

_SET_COUNT_IF_OWNER: Final = "UPDATE mc_namespaces SET stored = ? WHERE namespace = ? AND owner = ?"
"""A fenced write's last statement: the new kept count, only where the fencing token is the store's."""
_CLAIM: Final = (
    "INSERT INTO mc_namespaces(namespace, stored, owner) VALUES (?, ?, ?) "
    "ON CONFLICT(namespace) DO UPDATE SET owner = excluded.owner"
)
# The oldest rows have the smallest keys; the primary key makes this an index walk of
# exactly `excess` entries, whatever the history size.
_PRUNE: Final = (
    "DELETE FROM mc_results WHERE namespace = ?1 AND key IN "
    "(SELECT key FROM mc_results WHERE namespace = ?1 ORDER BY key LIMIT ?2)"
)


_FileId = tuple[int, int]


def _file_id(path: str) -> _FileId | None:
    """``(st_dev, st_ino)`` of the file ``path`` names now (through symlinks), or None if none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _create_private(path: str) -> None:
    """Create the database file, empty and mode 0600, if it does not exist yet.

    SQLite would create it with mode 0644 (less the umask), and gives the ``-wal``, ``-shm``
    and ``-journal`` files it makes later the database's own mode: so creating the file first
    makes all of them private, whatever the umask. A symlink to a missing file gets its target
    created here, as SQLite would.
    """
    try:
        fd = os.open(os.path.realpath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create {path!r}: {exc.strerror or exc}") from exc
    os.close(fd)


def _check_writable(path: str) -> None:
    """Refuse at once a database a store could not write: a read-only file, or a directory
    where SQLite cannot create its ``-wal`` and ``-shm`` files (nor the store its lock files).

    Without this the open could succeed (SQLite opens a read-only file read-only, silently)
    and only the flushes would fail, the last one after ``shutdown_timeout``.
    """
    real = os.path.realpath(path)
    directory = os.path.dirname(real) or "."
    if not os.access(directory, os.W_OK):
        raise StoreError(
            f"cannot write {path!r}: directory {directory!r} is not writable (a store creates the "
            "database's -wal and -shm files and its lock files there); read it with mcstore stats or export"
        )
    if os.path.exists(real) and not os.access(real, os.W_OK):
        raise StoreError(f"cannot write {path!r}: the file is read-only; read it with mcstore stats or export")


def _check_is_sqlite(path: str) -> None:
    """Refuse, without writing anything, a file that exists but is not an SQLite database."""
    try:
        with open(path, "rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            raise StoreError(
                f"cannot create {redact_location(path)!r}: directory {redact_location(directory)!r} does not exist"
            ) from None
        return
    except OSError as exc:
        raise StoreError(f"cannot read {redact_location(path)!r}: {exc.strerror or exc}") from None
    # An empty file is what sqlite3 makes of a new database, so it is fine.
    if header and header != _SQLITE_HEADER:
        raise StoreError(f"{redact_location(path)!r} is not an SQLite database (it starts with {header!r})")


class _CancelFlag:
    """The sticky cancel request of one call: set from the Trio thread, read in the worker thread.

    A flag rather than only ``Connection.interrupt()``, which is a no-op when it arrives before
    the statement starts: the request would be lost, and the flush would run to the end. One
    per call, so that a request can never leak into the next call.
    """

    __slots__ = ("requested",)

    def __init__(self) -> None:
        self.requested = False


class SQLiteBackend(DatabaseBackend[SQLiteSnapshot]):
    """A :class:`~mcstore.backends.Backend` on one SQLite file.

    The file is in WAL mode. Nothing is opened until the store opens the backend.

    Args:
        path: The database file (created if missing, mode 0600).
        synchronous: SQLite's ``PRAGMA synchronous``, one of :data:`SYNCHRONOUS_MODES` (any
            case): ``FULL`` (the default) makes every flush durable on power loss, as lnd's
            bbolt commits are.

    Raises:
        InvalidLocation: A location that is not a durable file (``''``, ``':memory:'``, a
            ``file:`` URI, a URL): a ``ValueError`` (see
            :func:`~mcstore.backends.classify_location`).
        ValueError: An unknown ``synchronous`` mode.
    """

    DIALECT = "SQLite"
    DRIVER_ERRORS = (sqlite3.Error,)

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        mode = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}"
            )
        if classify_location(path) != "sqlite":
            raise InvalidLocation(path, "is a PostgreSQL URL: use PostgresBackend (or open_store(url))")
        self.path: Final = os.fspath(path)
        where = redact_location(self.path)
        super().__init__(where, repr(where))
        self.synchronous: Final = mode
        self._conn: sqlite3.Connection | None = None
        self._lock: NamespaceLock | None = None
        self._file_id: _FileId | None = None
        """The database file the connection opened (``st_dev``, ``st_ino``; None before open)."""
        self._worker = WorkerThread(f"sqlite:{os.path.basename(self.path)}")
        # The running call's cancel request (worker thread side; see _run).
        self._cancel = _CancelFlag()
        self._rolling_back = False

    @property
    def calls_in_flight(self) -> int:
        """SQLite calls handed to the worker thread and not finished: 0 whenever none is awaited."""
        return self._worker.calls_in_flight

    @property
    def worker(self) -> WorkerThread:
        """The backend's worker thread (alive from ``open`` until ``aclose`` returns)."""
        return self._worker

    # -- running SQLite off the Trio thread ----------------------------------------------

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the worker thread and return its result; interrupt it on cancellation.

        See :meth:`WorkerThread.run`: on cancellation this sets the call's sticky cancel flag
        (read by the progress handler, the busy wait and the encoding loops) and calls
        ``Connection.interrupt()``, then still delivers ``fn``'s own outcome. So the caller
        always learns whether a transaction committed (the value) or rolled back (the
        exception); the pending ``Cancelled`` is raised at its next checkpoint.
        """
        flag = _CancelFlag()

        def call() -> T:
            # Installed by the thread itself, so that it always belongs to the running call.
            self._cancel = flag
            return fn()

        def on_cancel() -> None:
            flag.requested = True
            conn = self._conn
            if conn is not None:
                conn.interrupt()

        return await self._worker.run(call, on_cancel=on_cancel)

    def _raise_if_cancelled(self) -> None:
        """Stop Python-side work (encoding, decoding) of a call that was cancelled."""
        if self._cancel.requested:
            raise sqlite3.OperationalError("interrupted")

    def _progress(self) -> int:
        """SQLite's progress handler: a non-zero answer interrupts the running statement."""
        return self._cancel.requested and not self._rolling_back

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise self._not_open()
        return self._conn

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction; roll back on any failure."""
        conn = self._connection()
        self._begin(conn)
        try:
            value = work(conn)
            # Cancelled between statements, where nothing interrupts: do not commit.
            self._raise_if_cancelled()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                self._rolling_back = True
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:  # pragma: no cover - SQLite rolls back on its own then
                    pass
                finally:
                    self._rolling_back = False
            raise
        return value

    def _write_fenced(self, work: Callable[[sqlite3.Connection], tuple[T, int]]) -> T:
        """A write of the store once it holds its token (flush, clear, the prune at open,
        ``fetch_all``'s repair), in one transaction (:meth:`_write`): return ``work``'s value.

        ``work`` changes the namespace's rows and returns its value and the namespace's new
        kept count. First the database path must still name the file the store opened; last,
        the count is written by a statement that also checks the fencing token
        (:data:`_SET_COUNT_IF_OWNER`). Else it raises :class:`StoreFenced` (logged at ERROR) and
        the transaction rolls back: nothing is written. SQLite's write lock, held from ``BEGIN
        IMMEDIATE``, keeps any other store from changing the token during the transaction, so a
        check at its end is as good as one at its start, and costs no statement of its own.
        """

        def fenced(conn: sqlite3.Connection) -> T:
            self._check_file()
            value, stored = work(conn)
            if conn.execute(_SET_COUNT_IF_OWNER, (stored, self.namespace, self._token)).rowcount != 1:
                logger.error(
                    "Mission control namespace %r of %r was taken over by another store (its fencing token "
                    "changed); not writing (results stay pending)", self.namespace, self.path,
                )
                raise StoreFenced(
                    f"namespace {self.namespace!r} of {self.where!r} was taken over by another store (its fencing "
                    "token changed); nothing written"
                )
            return value

        return self._write(fenced)

    def _check_file(self) -> None:
        """Raise :class:`StoreFenced` (logged at ERROR) unless the database path still names the
        file the store opened."""
        now = _file_id(self.path)
        if now != self._file_id:
            what = "deleted or renamed" if now is None else "replaced by another file"
            logger.error(
                "Mission control database %r was %s since the store opened it; not writing namespace %r "
                "(results stay pending)", self.path, what, self.namespace,
            )
            raise StoreFenced(f"SQLite database {self.where!r} was {what} since the store opened it; nothing written")

    def _begin(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting up to ``_LOCK_WAIT`` seconds for another writer.

        SQLite's own busy wait is not interrupted by ``Connection.interrupt()``, so the wait is
        cut into ``busy_timeout`` slices and the cancellation flag is checked between them: a
        cancelled flush stops waiting for the lock within one slice.
        """
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or self._cancel.requested or time.monotonic() >= deadline:
                    raise

    # -- Backend protocol -----------------------------------------------------------------

    async def open(self, namespace: str, max_records: int) -> int:
        """Lock ``namespace``, create or check the schema, prune to ``max_records``.

        Takes the namespace's lock, creates a missing database file (mode 0600), migrates a
        version-1 schema, and writes the store's fencing token (in a transaction of its own).
        Raises :class:`~mcstore.StoreLocked` if the namespace is open elsewhere, and
        :class:`~mcstore.StoreError` for a file that is not SQLite (left untouched), a
        read-only file or directory, a symlink at the lock file's path, a newer schema
        version, or any SQLite failure. On failure nothing stays open or locked.
        """
        return await super().open(namespace, max_records)

    def _open_sync(self, max_records: int) -> int:
        _check_is_sqlite(self.path)
        _check_writable(self.path)
        self._lock = NamespaceLock(self.path, self.namespace)
        self._lock.acquire()
        _create_private(self.path)
        self._file_id = _file_id(self.path)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a flush is exactly
            # one transaction. Every call runs in the worker thread; check_same_thread=False
            # still, for interrupt() and for inspecting the connection from the Trio thread.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn = conn
            conn.set_progress_handler(self._progress, _PROGRESS_STEPS)
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_SLICE_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            # The same file before and after the connect: so it is the one the connection opened.
            if self._file_id is None or _file_id(self.path) != self._file_id:
                raise StoreError(f"{self.where!r} was removed or replaced while it was being opened")
            self._ensure_schema(conn)
            return self._claim_and_prune(max_records)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.where!r}: {exc}") from exc

    def _claim_namespace(self) -> int:
        return self._write(self._claim)

    def _prune_at_open(self, max_records: int) -> int:
        excess = self._stored - max_records

        def prune(c: sqlite3.Connection) -> tuple[int, int]:
            pruned = self._prune(c, excess)
            return pruned, self._stored - pruned

        pruned = self._write_fenced(prune)
        self._stored -= pruned
        return pruned

    def _claim(self, conn: sqlite3.Connection) -> int:
        """Write the store's fencing token into the namespace's row; return its kept count.

        Run at open, in a transaction of its own, once the store holds the namespace lock.
        """
        row = conn.execute("SELECT stored FROM mc_namespaces WHERE namespace = ?", (self.namespace,)).fetchone()
        if row is not None:
            stored = int(row[0])
        else:
            # No count yet (a new namespace, or rows written by another tool): count once.
            stored = int(
                conn.execute("SELECT count(*) FROM mc_results WHERE namespace = ?", (self.namespace,)).fetchone()[0]
            )
        conn.execute(_CLAIM, (self.namespace, stored, self._token))
        return stored

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        """Create the tables in a new database, or migrate an older version, in one transaction."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.where!r} has mcstore schema version {version}, newer than the version "
                f"{SCHEMA_VERSION} this mcstore supports; upgrade mcstore"
            )

        def upgrade(c: sqlite3.Connection) -> None:
            # Checked again inside the write lock: another process may have just done it.
            if c.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
                return
            for statement in _SCHEMA:
                c.execute(statement)
            columns = {str(row[1]) for row in c.execute("PRAGMA table_info(mc_namespaces)")}
            if "owner" not in columns:
                for statement in _MIGRATE_1_TO_2:
                    c.execute(statement)
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

        # An older mcstore (schema version 1) names its lock files differently, so the locks
        # of the two would not exclude each other. The fencing token does not help either: an
        # older store never checks it. So the upgrade takes the older lock name too, while
        # it runs: an older mcstore that has this namespace open makes it fail (StoreLocked),
        # and one that opens later finds version 2, which it refuses. The older name's file
        # is removed again if the upgrade created it.
        legacy = NamespaceLock(self.path, self.namespace, legacy=True)
        try:
            legacy.acquire()
        except StoreLocked:
            raise StoreLocked(
                f"namespace {self.namespace!r} of {self.where!r} is open in an older mcstore (lock file "
                f"{legacy.path!r}); close it before this mcstore upgrades the database to schema version "
                f"{SCHEMA_VERSION}"
            ) from None
        try:
            self._write(upgrade)
            if legacy.created:
                with contextlib.suppress(OSError):
                    os.unlink(legacy.path)
        finally:
            legacy.release()

    def _prune(self, conn: sqlite3.Connection, excess: int) -> int:
        """Delete the ``excess`` oldest rows; return how many went. Call inside a transaction."""
        return int(conn.execute(_PRUNE, (self.namespace, excess)).rowcount)

    async def store_results(
        self, results: Sequence[PaymentResult], max_records: int
    ) -> FlushOutcome:
        """Insert ``results`` (deduplicated by key) and prune, in one transaction."""
        namespace = self.namespace

        def transaction(conn: sqlite3.Connection, flat: list[bytes]) -> tuple[FlushOutcome, int]:
            # INSERT OR IGNORE dedups against stored keys and within the batch alike (lnd's
            # storeResults stops deduplicating after the first duplicate in a batch).
            added = _insert(conn, namespace, flat)
            stored = self._stored + added
            pruned = 0
            if max_records and stored > max_records:
                pruned = self._prune(conn, stored - max_records)
                stored -= pruned
            return FlushOutcome(added, len(results) - added, pruned, stored), stored

        def work() -> FlushOutcome:
            # Encode before BEGIN, so that the write lock is held only for SQLite's own work;
            # in chunks, so that a cancelled flush stops encoding too.
            flat: list[bytes] = []
            for start in range(0, len(results), CANCEL_CHECK_ROWS):
                self._raise_if_cancelled()
                for result in results[start : start + CANCEL_CHECK_ROWS]:
                    flat += encode_result(result)
            outcome = self._write_fenced(lambda conn: transaction(conn, flat))
            self._stored = outcome.stored
            return outcome

        return await self._call(work, "flush")

    def _read_all_sync(self) -> tuple[list[PaymentResult], list[bytes]]:
        # Decoded as the cursor steps, not after a fetchall(): only the results are kept,
        # never every row's bytes beside them.
        cursor = self._connection().execute(
            "SELECT key, value FROM mc_results WHERE namespace = ? ORDER BY key",
            (self.namespace,),
        )
        try:
            return decode_stored_rows(cursor, self.namespace, self._raise_if_cancelled)
        finally:
            cursor.close()  # a cancelled read ends its read transaction here

    def _repair_sync(self, corrupted: list[bytes], count: int) -> None:
        namespace = self.namespace

        def repair(c: sqlite3.Connection) -> tuple[None, int]:
            c.executemany(
                "DELETE FROM mc_results WHERE namespace = ? AND key = ?", [(namespace, key) for key in corrupted]
            )
            return None, count

        self._write_fenced(repair)

    def _clear_sync(self) -> int:
        namespace = self.namespace

        def transaction(conn: sqlite3.Connection) -> tuple[int, int]:
            deleted = conn.execute("DELETE FROM mc_results WHERE namespace = ?", (namespace,)).rowcount
            return int(deleted), 0

        return self._write_fenced(transaction)

    def _connected(self) -> bool:
        return self._conn is not None

    def _new_snapshot(self) -> SQLiteSnapshot:
        """A snapshot on its own read-only connection and thread (see
        :class:`~mcstore.backends.sqlite_read.SQLiteSnapshot`)."""
        return SQLiteSnapshot(self.path, self.namespace, on_release=self._snapshots.discard)

    async def _release(self) -> None:
        try:
            if self._worker.alive:
                await self._run(self._close_sync)
            else:
                self._close_sync()  # never opened: nothing runs in a thread
        finally:
            await self._worker.aclose()

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        lock, self._lock = self._lock, None
        try:
            if conn is not None:
                conn.close()
        finally:
            if lock is not None:
                lock.release()
