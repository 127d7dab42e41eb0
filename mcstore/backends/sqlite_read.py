"""Reading an SQLite mcstore file without writing: snapshots and the read-only reader.

:class:`SQLiteSnapshot` is the :class:`~mcstore.backends.Snapshot` of one namespace: its own
read-only connection (:func:`connect_readonly`), one deferred read transaction held from open to close
(WAL mode gives it a consistent view, and a writer commits meanwhile), and keyset pagination
(``WHERE key > last ORDER BY key LIMIT n`` on the primary key), so that it holds one batch at
a time whatever the namespace's size. :class:`SQLiteReader` is the
:class:`~mcstore.backends.Reader` of a file, for ``mcstore stats`` and ``mcstore export``: it
takes no namespace lock, and never creates, repairs or deletes anything.

Every connection has its own :class:`~mcstore.backends._thread.WorkerThread`, which runs its
SQLite calls one at a time and ends when the connection closes. Cancelling a call (or closing
the snapshot from another task) sets a flag that SQLite's progress handler reads, and calls
``Connection.interrupt()``: the statement stops, and the call has finished, its thread idle,
when the awaiting task resumes. While a snapshot is open, a WAL checkpoint cannot
go past the snapshot's view, so the ``-wal`` file may grow; close snapshots promptly.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
import time
from collections.abc import Callable
from typing import Final, TypeVar

import trio

from ._snapshot import KeysetSnapshot, OpenSnapshots, ReadConnection, SnapshotReader
from ._thread import WorkerThread
from .base import Row
from .location import LocationError, redact_location

__all__ = [
    "SQLITE_HEADER",
    "SQLiteReader",
    "SQLiteSnapshot",
    "check_mcstore_schema",
    "check_sqlite_file",
    "check_unchanged",
    "connect_readonly",
    "file_stamp",
    "is_sqlite_file",
    "open_readonly",
    "table_names",
]

T = TypeVar("T")

SQLITE_HEADER: Final = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""
_WAL_FORMAT: Final = 2
"""Bytes 18 and 19 of the header (write and read format version): 2 in WAL mode, 1 otherwise."""

_BUSY_SLICE_MS: Final = 50
_BUSY_WAIT: Final = 5.0
"""Seconds the start of a read transaction may wait while SQLite reports the file busy (WAL
recovery by another connection); checked for cancellation every ``_BUSY_SLICE_MS``."""
_PROGRESS_STEPS: Final = 1000

_FIRST: Final = "SELECT key, value FROM mc_results WHERE namespace = ? ORDER BY key LIMIT ?"
_AFTER: Final = "SELECT key, value FROM mc_results WHERE namespace = ? AND key > ? ORDER BY key LIMIT ?"
_COUNT: Final = "SELECT count(*) FROM mc_results WHERE namespace = ?"
_NAMESPACES: Final = (
    "SELECT namespace, sum(n) FROM ("
    " SELECT namespace, count(*) AS n FROM mc_results GROUP BY namespace"
    " UNION ALL SELECT namespace, 0 FROM mc_namespaces"
    ") GROUP BY namespace ORDER BY namespace"
)


def check_sqlite_file(path: str) -> bool:
    """Return whether ``path`` exists; raise :class:`~mcstore.LocationError` if it is not SQLite.

    An empty file counts as SQLite (it is what SQLite makes of a new database). Reads at most
    16 bytes and writes nothing.
    """
    try:
        with open(path, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise LocationError(path, "is a directory, not a database file") from None
    except OSError as exc:
        raise LocationError(path, f"cannot read: {exc.strerror or exc}") from None
    if header and header != SQLITE_HEADER:
        raise LocationError(path, "not an SQLite database")
    return True


def is_sqlite_file(path: str) -> bool:
    """Whether the file ``path`` starts with SQLite's header (an empty file does not). Reads at
    most 16 bytes; raises ``OSError`` if it cannot be read."""
    with open(path, "rb") as f:
        return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def _in_wal_mode(path: str) -> bool:
    """Whether the header of the SQLite file ``path`` says WAL mode (reads 20 bytes)."""
    with open(path, "rb") as f:
        header = f.read(20)
    return len(header) == 20 and header[18] == header[19] == _WAL_FORMAT


FileStamp = tuple[int, int, int, int, int]
"""What changes when a file is written: device, inode, size, modification and change time (ns)."""


def file_stamp(path: str) -> FileStamp | None:
    """The :data:`FileStamp` of ``path`` now, or None if it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _writable_here(path: str) -> bool:
    """Whether this process may write the file ``path`` and create files beside it."""
    real = os.path.realpath(path)
    return os.access(real, os.W_OK) and os.access(os.path.dirname(real) or ".", os.W_OK)


def open_readonly(
    path: str, *, immutable_if_idle: bool = False, check_same_thread: bool = True
) -> tuple[sqlite3.Connection, FileStamp | None]:
    """Open the existing SQLite file ``path`` for reading only; never create it, never write it.

    Leaves nothing behind. A WAL-mode file with no ``-wal`` beside it (no one has it open):

    * if this process may write the file and its directory, it is opened read-write with
      ``PRAGMA query_only``: SQLite then creates the ``-wal`` and ``-shm`` it needs to take its
      read locks, and removes them when the connection closes (if a writer opened the file
      meanwhile, they are the writer's, and it removes them);
    * else (a read-only file, or a directory this user cannot write) SQLite can neither make
      those files nor use them (``mode=ro`` fails, or leaves them behind), so the file is
      opened ``immutable``: no locks, nothing created. That is sound while nobody writes the
      file, and nobody is: a WAL-mode writer keeps a ``-wal`` while it has the file open, and
      there is none. A writer with more rights (the owner, root) could start during the read
      and, when it checkpoints, change the file under it; so the file's :data:`FileStamp` is
      returned, and a reader compares it after every read (see :func:`check_unchanged`).

    A file whose ``-wal`` exists (a writer has it open, or crashed) is opened ``mode=ro``,
    which uses the existing companions and never writes the file, even to recover a crashed
    writer's log. Any other file (a rollback journal) is opened ``mode=ro``, which takes its
    locks on the file itself and creates nothing.

    With ``immutable_if_idle``, any file without a ``-wal`` companion is opened ``immutable``,
    so SQLite creates nothing beside it at all; use it for files that belong to another
    program. Returns the connection, and the stamp when the file was opened ``immutable``
    (else None). The connection is in autocommit mode (``isolation_level=None``): a caller
    that wants one consistent view issues ``BEGIN`` itself. Raises :class:`~mcstore.LocationError`.
    """
    if not check_sqlite_file(path):
        raise LocationError(path, "no such file")
    uri = pathlib.Path(path).absolute().as_uri()
    stamp: FileStamp | None = None
    idle = not os.path.exists(path + "-wal")
    wal = idle and _in_wal_mode(path)
    if idle and (immutable_if_idle or (wal and not _writable_here(path))):
        uri += "?mode=ro&immutable=1"
        stamp = file_stamp(path)  # before the connect: a change from here on is seen
    elif wal:
        uri += "?mode=rw"
    else:
        uri += "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=check_same_thread)
    except sqlite3.Error as exc:
        raise LocationError(path, f"cannot open read-only: {exc}") from None
    try:
        conn.execute("PRAGMA query_only = ON")
        # The header looked right; this reads the schema, so a damaged file fails here.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise LocationError(path, f"not a readable SQLite database: {exc}") from None
    return conn, stamp


def connect_readonly(
    path: str, *, immutable_if_idle: bool = False, check_same_thread: bool = True
) -> sqlite3.Connection:
    """:func:`open_readonly`'s connection, for a caller that reads the file once and at once."""
    return open_readonly(path, immutable_if_idle=immutable_if_idle, check_same_thread=check_same_thread)[0]


def check_unchanged(path: str, stamp: FileStamp | None) -> None:
    """Raise ``sqlite3.OperationalError`` if the file opened ``immutable`` with ``stamp`` (see
    :func:`open_readonly`) has changed since: what was read from it may be inconsistent.
    Does nothing for ``stamp=None``."""
    if stamp is not None and file_stamp(path) != stamp:
        raise sqlite3.OperationalError(
            "the file changed while it was read without locks (a read-only file or directory, opened immutable, "
            "and a writer with more rights started); read it again"
        )


def table_names(conn: sqlite3.Connection) -> list[str]:
    """The names of the database's tables, sorted."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    return [str(row[0]) for row in rows]


def check_mcstore_schema(conn: sqlite3.Connection, path: str, newest: int) -> int:
    """Return the schema version of the mcstore database on ``conn``.

    Raises :class:`~mcstore.LocationError` if it has no ``mc_results`` table or a version
    newer than ``newest``.
    """
    tables = table_names(conn)
    if "mc_results" not in tables:
        found = ", ".join(tables) if tables else "none"
        raise LocationError(path, f"not an mcstore database (no mc_results table; tables: {found})")
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > newest:
        raise LocationError(path, f"schema version {version} is newer than {newest}, which this mcstore reads")
    return version


class _SQLiteConnection(ReadConnection):
    """A :class:`~mcstore.backends._snapshot.ReadConnection` on a read-only SQLite connection
    (:func:`open_readonly`), on a worker thread of its own.

    Its calls hold a lock of their own (the thread takes one job at a time), and ``aclose()``
    waits for it too, so a call that waits for its turn after ``aclose()`` began raises
    :class:`~mcstore.StoreClosed`. A file opened ``immutable`` is checked after every call
    (:func:`check_unchanged`).
    """

    DIALECT = "SQLite"
    DRIVER_ERRORS = (sqlite3.Error,)

    def __init__(self, path: str, what: str) -> None:
        where = redact_location(path)
        super().__init__(where, repr(where), what)
        self.path: Final = path
        self._thread = WorkerThread(f"read:{os.path.basename(path)}")
        self._conn: sqlite3.Connection | None = None
        self._stamp: FileStamp | None = None  # opened immutable: the file as it was (open_readonly)
        self._serial = trio.Lock()
        self._stop = False  # read by the progress handler

    def _progress(self) -> int:
        return 1 if self._stop else 0

    def _interrupt(self) -> None:
        self._stop = True
        conn = self._conn
        if conn is not None:
            conn.interrupt()

    def _turn(self) -> trio.Lock:
        return self._serial

    async def _run(self, fn: Callable[[], T]) -> T:
        self._stop = False

        def checked() -> T:
            value = fn()
            check_unchanged(self.path, self._stamp)
            return value

        return await self._thread.run(checked, on_cancel=self._interrupt)

    async def _close_connection(self) -> None:
        async with self._serial:
            try:
                if self._thread.alive:
                    await self._thread.run(self._close_sync)
            finally:
                await self._thread.aclose()

    def _connect_sync(self) -> sqlite3.Connection:
        conn, self._stamp = open_readonly(self.path, check_same_thread=False)
        self._conn = conn
        conn.set_progress_handler(self._progress, _PROGRESS_STEPS)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_SLICE_MS}")
        return conn

    def _begin_read_sync(self, probe: str, parameters: tuple[object, ...]) -> None:
        """``BEGIN`` and a first read, which fixes the transaction's view of the file."""
        conn = self._connection()
        deadline = time.monotonic() + _BUSY_WAIT
        while True:
            try:
                conn.execute("BEGIN")
                conn.execute(probe, parameters).fetchall()
                return
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or self._stop or time.monotonic() >= deadline:
                    raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("not connected")
        return self._conn

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class SQLiteSnapshot(KeysetSnapshot, _SQLiteConnection):
    """The :class:`~mcstore.backends.Snapshot` of ``namespace`` in the SQLite file ``path``.

    Create it, then ``await snapshot.start()`` (which takes the view); both the SQLite backend
    and :class:`SQLiteReader` do this for you. ``on_release`` is called once when it is closed.
    """

    def __init__(
        self, path: str, namespace: str, *, on_release: Callable[[SQLiteSnapshot], None] | None = None
    ) -> None:
        super().__init__(path, f"snapshot of namespace {namespace!r}")
        self.namespace: Final = namespace
        self._init_keyset(on_release)

    def _begin_sync(self) -> None:
        self._connect_sync()
        self._begin_read_sync("SELECT key FROM mc_results WHERE namespace = ? LIMIT 1", (self.namespace,))

    def _page_sync(self, after: bytes | None, max_rows: int) -> list[Row]:
        conn = self._connection()
        if after is None:
            return conn.execute(_FIRST, (self.namespace, max_rows)).fetchall()
        return conn.execute(_AFTER, (self.namespace, after, max_rows)).fetchall()

    def _count_sync(self) -> int:
        return int(self._connection().execute(_COUNT, (self.namespace,)).fetchone()[0])


class SQLiteReader(SnapshotReader[SQLiteSnapshot], _SQLiteConnection):
    """The :class:`~mcstore.backends.Reader` of the SQLite mcstore file ``path``.

    Open it with :meth:`open` (or :func:`mcstore.backends.open_reader`). Raises
    :class:`~mcstore.LocationError` for a missing file (never created), a file that is not
    SQLite, an SQLite file without mcstore's tables, or a newer schema version.
    """

    def __init__(self, path: str) -> None:
        super().__init__(path, "reader")
        self.location: str = self.where
        self.schema_version: int = 0
        self._snapshots: OpenSnapshots[SQLiteSnapshot] = OpenSnapshots()

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, newest_schema: int) -> SQLiteReader:
        """Open the reader of ``path``, accepting schema versions up to ``newest_schema``."""
        reader = cls(os.fspath(path))

        def work() -> None:
            conn = reader._connect_sync()
            reader.schema_version = check_mcstore_schema(conn, reader.path, newest_schema)

        await reader._start(work)
        return reader

    def _new_snapshot(self, namespace: str) -> SQLiteSnapshot:
        return SQLiteSnapshot(self.path, namespace, on_release=self._snapshots.discard)

    async def namespaces(self) -> dict[str, int]:
        """See :meth:`mcstore.backends.Reader.namespaces`."""

        def work() -> dict[str, int]:
            conn = self._connection()
            if "mc_namespaces" in table_names(conn):
                rows = conn.execute(_NAMESPACES).fetchall()
            else:  # written by a tool that kept no counts
                rows = conn.execute(
                    "SELECT namespace, count(*) FROM mc_results GROUP BY namespace ORDER BY namespace"
                ).fetchall()
            return {str(name): int(count) for name, count in rows}

        return await self._call(work)

    async def check_integrity(self) -> list[str]:
        """See :meth:`mcstore.backends.Reader.check_integrity`: ``PRAGMA quick_check``."""

        def work() -> list[str]:
            try:
                rows = self._connection().execute("PRAGMA quick_check").fetchall()
            except sqlite3.Error as exc:
                if self._stop:  # interrupted (cancelled, or closed): not a finding about the file
                    raise
                return [f"quick_check could not run: {exc}"]
            messages = [str(row[0]) for row in rows]
            return [] if messages == ["ok"] else messages

        return await self._call(work)
