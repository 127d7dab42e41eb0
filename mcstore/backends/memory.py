"""The in-Trio memory backend: a :class:`~mcstore.backends.Backend` with no threads and no I/O.

:class:`MemoryBackend` implements the protocol entirely inside Trio, so it runs under
``trio.testing.MockClock(autojump_threshold=0)`` (autojump and worker threads do not mix: trio
issue #456). It stores lnd's encoded bytes, so the codec, deduplication by key, pruning and
corrupted-row removal behave as on SQLite. A :class:`MemoryDatabase` plays the file: open
several backends on one to model a reopen, or two namespaces side by side. A flush applies its
change in one synchronous step after its last checkpoint, so a cancelled flush leaves nothing
behind: all in, or all out. It injects no faults: wrap it in
:class:`~mcstore.testing.FaultyBackend` for that. It keeps a fencing token per namespace as the
real backends do: a write by a backend whose token was replaced (another backend opened the
namespace after its lock was dropped, see :meth:`MemoryDatabase.drop_lock`) raises
:class:`~mcstore.StoreFenced` and changes nothing.

Its :class:`MemorySnapshot` copies the namespace's rows when it opens (the one departure from
the :class:`~mcstore.backends.Snapshot` contract, whose real implementations hold one batch at
a time) and hands them out in batches of the size asked for, with a checkpoint per call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from ..codec import decode_result, encode_result
from ..errors import StoreClosed, StoreError, StoreFenced, StoreLocked
from ..model import PaymentResult
from .base import FetchOutcome, FlushOutcome, Row, check_batch_size, decode_stored_rows

__all__ = ["MemoryBackend", "MemoryDatabase", "MemorySnapshot"]

logger = logging.getLogger("mcstore")


class MemoryDatabase:
    """The in-memory stand-in for a database file, shared by the backends opened on it."""

    def __init__(self) -> None:
        self.namespaces: dict[str, dict[bytes, bytes]] = {}
        """namespace -> {key: value}, lnd's encoded bytes."""
        self.locked: set[str] = set()
        """Namespaces currently open in a backend."""
        self.owners: dict[str, object] = {}
        """namespace -> the fencing token of the backend that opened it last."""
        self.transactions = 0
        """Committed write transactions, over all backends (an idle store adds none)."""

    def drop_lock(self, namespace: str = "default") -> None:
        """Release ``namespace``'s lock behind its holder's back (as deleting a lock file does):
        another backend can then open it, and the holder's writes are fenced off."""
        self.locked.discard(namespace)

    def rows(self, namespace: str = "default") -> dict[bytes, bytes]:
        """The stored rows of ``namespace`` (a live dict; empty if the namespace is new)."""
        return self.namespaces.setdefault(namespace, {})

    def results(self, namespace: str = "default") -> list[PaymentResult]:
        """The stored results of ``namespace`` in key order (raises DecodeError on bad rows)."""
        rows = self.rows(namespace)
        return [decode_result(k, rows[k]) for k in sorted(rows)]


class MemorySnapshot:
    """A :class:`~mcstore.backends.Snapshot` of a copy of one namespace's rows, taken at open."""

    def __init__(self, rows: dict[bytes, bytes], backend: MemoryBackend | None = None) -> None:
        self._rows: list[Row] = sorted(rows.items())
        self._total = len(self._rows)
        self._position = 0
        self._backend = backend
        self.closed = False
        """True once :meth:`aclose` was called."""
        self.batches: list[int] = []
        """The size of every batch handed out, in order (for tests of bounded reads)."""

    def _check_open(self) -> None:
        if self.closed:
            raise StoreClosed("snapshot is closed")

    async def next_batch(self, max_rows: int) -> list[Row]:
        """See :meth:`mcstore.backends.Snapshot.next_batch`."""
        check_batch_size(max_rows)
        await trio.lowlevel.checkpoint()
        self._check_open()
        batch = self._rows[self._position : self._position + max_rows]
        self._position += len(batch)
        self.batches.append(len(batch))
        return batch

    async def count(self) -> int:
        """See :meth:`mcstore.backends.Snapshot.count`."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        return self._total

    async def aclose(self) -> None:
        """See :meth:`mcstore.backends.Snapshot.aclose`."""
        await trio.lowlevel.cancel_shielded_checkpoint()
        if not self.closed:
            self.closed = True
            self._rows = []
            if self._backend is not None:
                self._backend._snapshots.discard(self)


class MemoryBackend:
    """A :class:`~mcstore.backends.Backend` that keeps rows in a :class:`MemoryDatabase`."""

    def __init__(self, database: MemoryDatabase | None = None) -> None:
        self.database = database if database is not None else MemoryDatabase()
        self.namespace = ""
        self.flush_calls = 0
        """Calls of ``store_results``, whatever their outcome."""
        self.calls_in_flight = 0
        self._open = False
        self._token = object()
        self._snapshots: set[MemorySnapshot] = set()

    @property
    def snapshots_open(self) -> int:
        """Snapshots opened by :meth:`open_snapshot` and not closed yet."""
        return len(self._snapshots)

    def _rows(self) -> dict[bytes, bytes]:
        if not self._open:
            raise StoreError("MemoryBackend is not open")
        return self.database.rows(self.namespace)

    def _writable_rows(self) -> dict[bytes, bytes]:
        """The rows, for a write: raises :class:`StoreFenced` if another backend took the namespace."""
        rows = self._rows()
        if self.database.owners.get(self.namespace) is not self._token:
            logger.error(
                "Mission control namespace %r was taken over by another store (its fencing token changed); "
                "not writing (results stay pending)", self.namespace,
            )
            raise StoreFenced(f"namespace {self.namespace!r} was taken over by another store; nothing written")
        return rows

    async def open(self, namespace: str, max_records: int) -> int:
        await trio.lowlevel.checkpoint()
        if namespace in self.database.locked:
            raise StoreLocked(f"namespace {namespace!r} is already open")
        self.database.locked.add(namespace)
        self.database.owners[namespace] = self._token
        self.namespace = namespace
        self._open = True
        rows = self._writable_rows()
        if max_records and len(rows) > max_records:
            self._prune(rows, max_records)
            self.database.transactions += 1
        return len(rows)

    @staticmethod
    def _prune(rows: dict[bytes, bytes], max_records: int) -> int:
        excess = len(rows) - max_records
        if max_records == 0 or excess <= 0:
            return 0
        for key in sorted(rows)[:excess]:
            del rows[key]
        return excess

    async def store_results(
        self, results: Sequence[PaymentResult], max_records: int
    ) -> FlushOutcome:
        self.flush_calls += 1
        self.calls_in_flight += 1
        try:
            encoded = [encode_result(r) for r in results]
            await trio.lowlevel.checkpoint()
            # From here on no checkpoint: the change is applied in one step.
            rows = self._writable_rows()
            added = 0
            for key, value in encoded:
                if key not in rows:
                    rows[key] = value
                    added += 1
            pruned = self._prune(rows, max_records)
            self.database.transactions += 1
            return FlushOutcome(added, len(encoded) - added, pruned, len(rows))
        finally:
            self.calls_in_flight -= 1

    async def fetch_all(self) -> FetchOutcome:
        await trio.lowlevel.checkpoint()
        rows = self._rows()
        results, corrupted = decode_stored_rows(((key, rows[key]) for key in sorted(rows)), self.namespace)
        if corrupted:
            self._writable_rows()
        for key in corrupted:
            del rows[key]
        if corrupted:
            self.database.transactions += 1
        return FetchOutcome(results, len(corrupted), len(rows))

    async def clear(self) -> int:
        await trio.lowlevel.checkpoint()
        rows = self._writable_rows()
        deleted = len(rows)
        rows.clear()
        self.database.transactions += 1
        return deleted

    async def open_snapshot(self) -> MemorySnapshot:
        await trio.lowlevel.checkpoint()
        snapshot = MemorySnapshot(self._rows(), self)
        self._snapshots.add(snapshot)
        return snapshot

    async def aclose(self) -> None:
        await trio.lowlevel.cancel_shielded_checkpoint()
        for snapshot in list(self._snapshots):
            await snapshot.aclose()
        if self._open:
            self._open = False
            if self.database.owners.get(self.namespace) is self._token:  # else the lock is another's now
                self.database.locked.discard(self.namespace)
