"""The in-Trio memory backend: a :class:`~mcstore.backends.Backend` with no threads and no I/O.

:class:`MemoryBackend` implements the protocol entirely inside Trio, so it runs under
``trio.testing.MockClock(autojump_threshold=0)`` (autojump and worker threads do not mix: trio
issue #456). It stores lnd's encoded bytes, so the codec, deduplication by key, pruning and
corrupted-row removal behave as on SQLite. A :class:`MemoryDatabase` plays the file: open
several backends on one to model a reopen, or two namespaces side by side. A flush applies its
change in one synchronous step after its last checkpoint, so a cancelled flush leaves nothing
behind: all in, or all out. It injects no faults: wrap it in
:class:`~mcstore.testing.FaultyBackend` for that.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from ..codec import decode_result, encode_result
from ..errors import DecodeError, StoreError, StoreLocked
from ..model import PaymentResult
from .base import FetchOutcome, FlushOutcome

__all__ = ["MemoryBackend", "MemoryDatabase"]

logger = logging.getLogger("mcstore")


class MemoryDatabase:
    """The in-memory stand-in for a database file, shared by the backends opened on it."""

    def __init__(self) -> None:
        self.namespaces: dict[str, dict[bytes, bytes]] = {}
        """namespace -> {key: value}, lnd's encoded bytes."""
        self.locked: set[str] = set()
        """Namespaces currently open in a backend."""
        self.transactions = 0
        """Committed write transactions, over all backends (an idle store adds none)."""

    def rows(self, namespace: str = "default") -> dict[bytes, bytes]:
        """The stored rows of ``namespace`` (a live dict; empty if the namespace is new)."""
        return self.namespaces.setdefault(namespace, {})

    def results(self, namespace: str = "default") -> list[PaymentResult]:
        """The stored results of ``namespace`` in key order (raises DecodeError on bad rows)."""
        rows = self.rows(namespace)
        return [decode_result(k, rows[k]) for k in sorted(rows)]


class MemoryBackend:
    """A :class:`~mcstore.backends.Backend` that keeps rows in a :class:`MemoryDatabase`."""

    def __init__(self, database: MemoryDatabase | None = None) -> None:
        self.database = database if database is not None else MemoryDatabase()
        self.namespace = ""
        self.flush_calls = 0
        """Calls of ``store_results``, whatever their outcome."""
        self.calls_in_flight = 0
        self._open = False

    def _rows(self) -> dict[bytes, bytes]:
        if not self._open:
            raise StoreError("MemoryBackend is not open")
        return self.database.rows(self.namespace)

    async def open(self, namespace: str, max_records: int) -> int:
        await trio.lowlevel.checkpoint()
        if namespace in self.database.locked:
            raise StoreLocked(f"namespace {namespace!r} is already open")
        self.database.locked.add(namespace)
        self.namespace = namespace
        self._open = True
        rows = self._rows()
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
            rows = self._rows()
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
        results: list[PaymentResult] = []
        corrupted: list[bytes] = []
        for key in sorted(rows):
            try:
                results.append(decode_result(key, rows[key]))
            except DecodeError as exc:
                logger.warning(
                    "Removing undecodable mission control result: namespace=%r key=%s: %s",
                    self.namespace, key.hex(), exc,
                )
                corrupted.append(key)
        for key in corrupted:
            del rows[key]
        if corrupted:
            self.database.transactions += 1
        return FetchOutcome(results, len(corrupted), len(rows))

    async def clear(self) -> int:
        await trio.lowlevel.checkpoint()
        rows = self._rows()
        deleted = len(rows)
        rows.clear()
        self.database.transactions += 1
        return deleted

    async def aclose(self) -> None:
        await trio.lowlevel.cancel_shielded_checkpoint()
        if self._open:
            self._open = False
            self.database.locked.discard(self.namespace)
