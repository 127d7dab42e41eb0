"""What the SQLite and PostgreSQL snapshots and readers share: their read connection, keyset
paging over one namespace, and the set of snapshots a backend or reader has open.

:class:`ReadConnection` is the flow of one read-only connection of either database: one call at
a time, a call that failed or was cancelled leaves it usable only for closing, and ``aclose()``
from any task interrupts the call in progress (which then raises :class:`~mcstore.StoreClosed`).
Each database supplies its hooks (how a call runs on its thread, how it is interrupted, how the
connection closes) in its own module (``sqlite_read.py``, ``postgres_read.py``).

A snapshot reads its namespace in key order, one page at a time, with ``WHERE key > last ORDER
BY key LIMIT n`` on the primary key, inside one read transaction that fixes its view. So it
holds one page at a time whatever the namespace's size, and never reads a row twice or skips
one. :class:`KeysetSnapshot` is that logic, once; each backend's snapshot class supplies the
two reads in its own SQL (:meth:`KeysetSnapshot._page_sync`, :meth:`KeysetSnapshot._count_sync`)
and how it takes its view (:meth:`KeysetSnapshot._begin_sync`). :class:`OpenSnapshots` is the
bookkeeping of the backends and readers that open them: every snapshot they opened and that is
not closed yet, so that closing them closes it too; :class:`SnapshotReader` is what a reader
adds to its connection to open and close them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar

import trio

from ..errors import StoreClosed, StoreError
from .base import Row, check_batch_size

__all__ = ["KeysetSnapshot", "OpenSnapshots", "ReadConnection", "SnapshotReader"]

T = TypeVar("T")


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


S = TypeVar("S", bound=_Startable)


class ReadConnection:
    """One read-only connection, used from its own thread one call at a time, interruptible.

    ``aclose()`` may come from any task at any time: it interrupts the call in progress, which
    then raises :class:`~mcstore.StoreClosed`, and returns once the connection is closed and
    its thread has ended. A call that raised (an error of the driver, or a cancellation) leaves
    the connection usable only for ``aclose()``: its read transaction is gone.

    A subclass (one per database) sets :attr:`DIALECT` and :attr:`DRIVER_ERRORS` and supplies
    :meth:`_run`, :meth:`_interrupt` and :meth:`_close_connection` (and :meth:`_turn`, if its
    calls need a lock of their own).
    """

    DIALECT: ClassVar[str]
    """The database's name in messages."""
    DRIVER_ERRORS: ClassVar[tuple[type[Exception], ...]]
    """What the driver raises for a failed statement (and for an interrupted one)."""

    def __init__(self, where: str, place: str, what: str) -> None:
        self.where: Final = where
        """The location, for messages (without a password)."""
        self._place = place  # the location as messages show it
        self._what = what
        self._closing = False
        self._released = trio.Event()
        self._broken: str | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.where!r}>"

    def _closed_message(self) -> str:
        return f"{self._what} of {self._place} is closed"

    def _turn(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Held around each call and around closing (none by default: :meth:`_run` serialises)."""
        return contextlib.nullcontext()

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the connection's thread; interrupt it on cancellation."""
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Stop the call in progress, from any thread (harmless when none runs)."""
        raise NotImplementedError

    async def _close_connection(self) -> None:
        """Close the connection on its thread and end the thread (runs shielded, once)."""
        raise NotImplementedError

    async def _call(self, fn: Callable[[], T]) -> T:
        async with self._turn():
            if self._closing:
                raise StoreClosed(self._closed_message())
            if self._broken is not None:
                raise StoreError(f"{self._what} of {self._place} is unusable after {self._broken}; close it")
            try:
                return await self._run(fn)
            except self.DRIVER_ERRORS as exc:
                self._broken = "an error"
                if self._closing:
                    raise StoreClosed(f"{self._what} of {self._place} was closed during a read") from None
                raise StoreError(f"{self.DIALECT} read failed on {self._place}: {exc}") from exc
            except BaseException:
                self._broken = "a cancelled read"
                raise

    async def _start(self, fn: Callable[[], object]) -> None:
        """The first call, which connects: on failure (or cancellation) close again."""
        try:
            await self._call(fn)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Interrupt any call in progress, close the connection; see the class docstring."""
        with trio.CancelScope(shield=True):
            if self._closing:
                await self._released.wait()
                return
            self._closing = True
            try:
                self._interrupt()
                await self._close_connection()
            finally:
                self._released.set()
                self._on_released()

    def _on_released(self) -> None:
        """Hook for subclasses: called once, when ``aclose`` has released everything."""


class KeysetSnapshot(ReadConnection):
    """:meth:`next_batch` and :meth:`count` of a :class:`~mcstore.backends.Snapshot` by keyset
    pagination, :meth:`start`, and the ``on_release`` callback.

    Put it first in the bases, before the database's :class:`ReadConnection`; call
    :meth:`_init_keyset` from ``__init__``. Invariant: ``_after`` is the greatest key returned
    so far (None before the first page), and once a page comes back shorter than asked
    (``_exhausted``), no more reads are made.
    """

    def _init_keyset(self, on_release: Callable[[Any], None] | None) -> None:
        self._on_release = on_release
        self._after: bytes | None = None
        self._exhausted = False

    async def start(self) -> None:
        """Connect and begin the read transaction; on failure (or cancellation) close again."""
        await self._start(self._begin_sync)

    def _begin_sync(self) -> None:
        """Connect, begin the read transaction and fix its view. Runs on the connection's thread."""
        raise NotImplementedError

    def _page_sync(self, after: bytes | None, max_rows: int) -> list[Row]:
        """The first ``max_rows`` rows with a key greater than ``after`` (all keys if None), in
        key order, as ``(bytes, bytes)``. Runs on the connection's thread."""
        raise NotImplementedError

    def _count_sync(self) -> int:
        """The namespace's row count in this snapshot's view. Runs on the connection's thread."""
        raise NotImplementedError

    async def next_batch(self, max_rows: int) -> list[Row]:
        """See :meth:`mcstore.backends.Snapshot.next_batch`."""
        check_batch_size(max_rows)
        if self._exhausted:
            await trio.lowlevel.checkpoint()
            if self._closing:
                raise StoreClosed(self._closed_message())
            return []
        after = self._after
        rows = await self._call(lambda: self._page_sync(after, max_rows))
        if rows:
            self._after = rows[-1][0]
        if len(rows) < max_rows:
            self._exhausted = True
        return rows

    async def count(self) -> int:
        """See :meth:`mcstore.backends.Snapshot.count`."""
        return await self._call(self._count_sync)

    def _on_released(self) -> None:
        if self._on_release is not None:
            self._on_release(self)


class OpenSnapshots(Generic[S]):
    """The snapshots a backend or reader opened and has not seen closed.

    Create each snapshot with ``on_release=open_snapshots.discard``, then ``await
    open_snapshots.start(snapshot)``. Invariant: a snapshot is in the set from just before its
    ``start()`` until its release, whether ``start()`` succeeds or not.
    """

    def __init__(self) -> None:
        self._open: set[S] = set()

    def __len__(self) -> int:
        return len(self._open)

    def discard(self, snapshot: S) -> None:
        """Forget ``snapshot`` (its ``on_release`` callback); harmless if it is not in the set."""
        self._open.discard(snapshot)

    async def start(self, snapshot: S) -> S:
        """Add ``snapshot``, take its view (``await snapshot.start()``), and return it."""
        self._open.add(snapshot)
        await snapshot.start()
        return snapshot

    async def close_all(self) -> None:
        """Close every snapshot still open, shielded: closing is cleanup."""
        with trio.CancelScope(shield=True):
            for snapshot in list(self._open):
                await snapshot.aclose()


class SnapshotReader(ReadConnection, Generic[S]):
    """What a :class:`~mcstore.backends.Reader` adds to its connection: the snapshots it opens
    (each on a connection of its own), closed before its own connection is.

    Put it first in the bases, before the database's :class:`ReadConnection`; set
    ``_snapshots`` in ``__init__`` and supply :meth:`_new_snapshot`.
    """

    _snapshots: OpenSnapshots[S]
    _refusing: bool = False
    """Set as :meth:`aclose` begins: no snapshot opens while the open ones are being closed."""

    @property
    def snapshots_open(self) -> int:
        """Snapshots opened by :meth:`open_snapshot` and not closed yet."""
        return len(self._snapshots)

    def _new_snapshot(self, namespace: str) -> S:
        """A snapshot of ``namespace``, not started, whose ``on_release`` is ``_snapshots.discard``."""
        raise NotImplementedError

    async def open_snapshot(self, namespace: str) -> S:
        """See :meth:`mcstore.backends.Reader.open_snapshot`."""
        if self._closing or self._refusing:
            raise StoreClosed(f"reader of {self._place} is closed")
        return await self._snapshots.start(self._new_snapshot(namespace))

    async def aclose(self) -> None:
        """See :meth:`mcstore.backends.Reader.aclose`."""
        # Refuse new snapshots first: one opened while close_all() awaits would outlive it.
        self._refusing = True
        with trio.CancelScope(shield=True):
            await self._snapshots.close_all()
            await super().aclose()
