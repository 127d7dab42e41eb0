"""What the SQLite and PostgreSQL backends share: the flow of the :class:`~mcstore.backends.Backend` calls.

:class:`DatabaseBackend` is that flow, once: every call runs on the backend's worker thread, one
at a time, and reports a failure of the driver as a :class:`~mcstore.StoreError` that names the
call; ``open`` runs at most once, and on failure leaves nothing open or locked; the open claims
the namespace (writes the store's fencing token) and prunes it to ``max_records``; ``fetch_all``
repairs what it read (deletes undecodable rows, corrects the kept count); ``clear``; the
snapshots; and ``aclose``, which closes the snapshots, then the connection and its thread.

Each backend supplies its dialect's hooks: how a call runs and is cancelled (:meth:`_run`), its
transactions and their commit semantics, which stay in the backend (SQLite's ``BEGIN IMMEDIATE``
and fenced writes, PostgreSQL's retried transaction, fence ``FOR UPDATE`` and checked COMMIT),
its SQL, its flush (``store_results``), and its snapshot class.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import ClassVar, Final, Generic, TypeVar

import trio

from ..errors import StoreError
from ..model import PaymentResult
from ._snapshot import KeysetSnapshot, OpenSnapshots
from .base import FetchOutcome

__all__ = ["TOKEN_BYTES", "DatabaseBackend"]

logger = logging.getLogger("mcstore")

T = TypeVar("T")
S = TypeVar("S", bound=KeysetSnapshot)

TOKEN_BYTES: Final = 16
"""Length of a store's random fencing token."""


class DatabaseBackend(Generic[S]):
    """The flow of a :class:`~mcstore.backends.Backend` on a database, less the dialect.

    A subclass sets :attr:`DIALECT` and :attr:`DRIVER_ERRORS`, calls ``__init__`` once its own
    arguments are checked, and supplies the hooks: :meth:`_run`, :meth:`_open_sync` (which ends
    with :meth:`_claim_and_prune`), :meth:`_claim_namespace`, :meth:`_prune_at_open`,
    :meth:`_read_all_sync`, :meth:`_repair_sync`, :meth:`_clear_sync`, :meth:`_connected`,
    :meth:`_new_snapshot` and :meth:`_release`, and ``store_results``; and, if it needs them,
    :meth:`_failure`, :meth:`_before_open`, :meth:`_call_started` and :meth:`_call_ended`.
    """

    DIALECT: ClassVar[str]
    """The database's name in messages."""
    DRIVER_ERRORS: ClassVar[tuple[type[Exception], ...]]
    """What the driver raises for a failed (or interrupted) statement: reported as StoreError."""

    def __init__(self, where: str, place: str) -> None:
        self.where: Final = where
        """The location, for messages and logs (without a password)."""
        self._place = place  # the location as messages show it
        self.namespace = ""
        self._token = os.urandom(TOKEN_BYTES)
        """The fencing token this store writes at open and checks in every write."""
        self._stored = 0
        """The namespace's kept count, as of the last committed transaction."""
        self._opened = False
        self._closed = False
        self._snapshots: OpenSnapshots[S] = OpenSnapshots()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.where!r} namespace={self.namespace!r}>"

    @property
    def snapshots_open(self) -> int:
        """Snapshots opened by :meth:`open_snapshot` and not closed yet."""
        return len(self._snapshots)

    def _not_open(self) -> StoreError:
        return StoreError(f"{self.DIALECT} backend for {self._place} is not open")

    # -- hooks ----------------------------------------------------------------------------

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the worker thread and return its outcome; interrupt it on cancellation
        (a call that had committed still returns its value)."""
        raise NotImplementedError

    def _open_sync(self, max_records: int) -> int:
        """Connect, lock the namespace, check the schema, then :meth:`_claim_and_prune`."""
        raise NotImplementedError

    def _claim_namespace(self) -> int:
        """Write the store's fencing token, in a transaction of its own; return the kept count."""
        raise NotImplementedError

    def _prune_at_open(self, max_records: int) -> int:
        """Prune to ``max_records`` in one fenced transaction; set ``_stored``; return how many went."""
        raise NotImplementedError

    def _read_all_sync(self) -> tuple[list[PaymentResult], list[bytes]]:
        """Every row of the namespace in key order, decoded (``decode_stored_rows``)."""
        raise NotImplementedError

    def _repair_sync(self, corrupted: list[bytes], count: int) -> None:
        """Delete the rows of ``corrupted`` and set the kept count to ``count``, in one fenced
        transaction."""
        raise NotImplementedError

    def _clear_sync(self) -> int:
        """Delete every row of the namespace and set its count to 0, in one fenced transaction;
        return how many rows went."""
        raise NotImplementedError

    def _connected(self) -> bool:
        """Whether the open got as far as a connection (snapshots can be opened)."""
        raise NotImplementedError

    def _new_snapshot(self) -> S:
        """A snapshot of the namespace, not started, whose ``on_release`` is ``_snapshots.discard``."""
        raise NotImplementedError

    async def _release(self) -> None:
        """Close the connection (releasing the namespace's lock) and end the worker thread.
        Runs shielded, once, also after a failed open."""
        raise NotImplementedError

    def _failure(self, exc: Exception, what: str) -> StoreError:
        """The StoreError that reports the driver's ``exc``, raised by the call ``what``."""
        return StoreError(f"{self.DIALECT} {what} failed on {self._place}: {exc}")

    def _before_open(self) -> None:
        """Called as ``open`` starts, before its call (a failure closes the backend)."""

    def _call_started(self, what: str) -> None:
        """Called as each call (``open``, ``flush``, ``fetch``, ``clear``) starts."""

    def _call_ended(self) -> None:
        """Called as each call ends, however it ends."""

    # -- the flow ---------------------------------------------------------------------------

    async def _call(self, work: Callable[[], T], what: str) -> T:
        """Run ``work`` on the worker thread; report the driver's failures as StoreError."""
        self._call_started(what)
        try:
            return await self._run(work)
        except self.DRIVER_ERRORS as exc:
            raise self._failure(exc, what) from exc
        finally:
            self._call_ended()

    async def open(self, namespace: str, max_records: int) -> int:
        """See :meth:`mcstore.backends.Backend.open`. Once per backend; on failure (or
        cancellation) the backend is closed: nothing stays open or locked."""
        if self._opened or self._closed:
            raise StoreError(f"{type(self).__name__} can be opened only once")
        self._opened = True
        self.namespace = namespace
        try:
            self._before_open()
            return await self._call(lambda: self._open_sync(max_records), "open")
        except BaseException:
            await self.aclose()  # shielded
            raise

    def _claim_and_prune(self, max_records: int) -> int:
        """The end of every open: claim the namespace, then prune it to ``max_records`` (0: no
        cap) if it holds more; return the kept count."""
        self._stored = self._claim_namespace()
        if max_records and self._stored > max_records:
            pruned = self._prune_at_open(max_records)
            logger.info(
                "Pruned %d mission control results of namespace %r to max_records=%d at open",
                pruned, self.namespace, max_records,
            )
        return self._stored

    async def fetch_all(self) -> FetchOutcome:
        """Read every row in key order; delete the rows that fail to decode."""

        def work() -> FetchOutcome:
            results, corrupted = self._read_all_sync()
            # Reading every row is also the moment to correct the kept count, should another
            # tool have written to the table.
            if corrupted or len(results) != self._stored:
                self._repair_sync(corrupted, len(results))
                self._stored = len(results)
            return FetchOutcome(results, len(corrupted), self._stored)

        return await self._call(work, "fetch")

    async def clear(self) -> int:
        """Delete every row of the namespace in one transaction."""

        def work() -> int:
            deleted = self._clear_sync()
            self._stored = 0
            return deleted

        return await self._call(work, "clear")

    async def open_snapshot(self) -> S:
        """See :meth:`mcstore.backends.Backend.open_snapshot`: a snapshot on its own connection
        and thread, which never waits for a flush."""
        if self._closed or not self._connected():
            raise self._not_open()
        return await self._snapshots.start(self._new_snapshot())

    async def aclose(self) -> None:
        """Close every snapshot still open, then the connection (which releases the namespace
        lock), then the worker thread.

        Harmless if called twice. Runs shielded: closing is cleanup, and must finish even in a
        cancelled scope. When it returns, the worker thread has ended.
        """
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            try:
                await self._snapshots.close_all()
            finally:
                await self._release()
