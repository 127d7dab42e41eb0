"""The persistence seam: what the Trio store needs from a place to keep results.

:class:`~mcstore.MissionControlStore` talks to storage only through the :class:`Backend`
protocol. mcstore ships three implementations: :class:`~mcstore.backends.SQLiteBackend` (a
file), :class:`~mcstore.backends.PostgresBackend` (a server) and
:class:`~mcstore.backends.MemoryBackend` (in Trio, for virtual-time tests and fault injection;
also :class:`mcstore.testing.MemoryBackend`). A wrapper that implements the same protocol can
inject faults, count calls or add latency without touching the store.

Contract of every backend (the store relies on each point):

* Calls are never concurrent: the store serialises them. The one exception is reading
  through a :class:`Snapshot` (see :meth:`Backend.open_snapshot`), which may run at any time,
  alongside any other call.
* :meth:`Backend.store_results` and :meth:`Backend.clear` are atomic. When one returns, its
  change is durable in full; when one raises (an error, or ``trio.Cancelled``), nothing of it
  was applied. A cancelled call may still return normally if its change had already been
  committed when the cancellation arrived; the store then counts it as done.
* Cancellation is prompt: a running statement is interrupted, not waited out, so a deadline
  on the store's shutdown holds.
* No call leaves work running (a thread, a task, an open transaction) after it returns or
  raises.
* Fencing: once another store has opened the namespace (after this backend's lock was lost
  behind its back), or its storage was replaced, every write (:meth:`Backend.store_results`,
  :meth:`Backend.clear`, the repair in :meth:`Backend.fetch_all`) raises
  :class:`~mcstore.StoreFenced` and changes nothing. The store keeps the results of such a
  flush pending and, at close, hands them back at once instead of retrying until its deadline.

Reading without blocking writers: :meth:`Backend.open_snapshot` (for the store's
``iter_results``) and :class:`Reader` (for read-only tools such as ``mcstore export``) both
hand out a :class:`Snapshot`, one consistent view of a namespace read in bounded batches.
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias, cast, runtime_checkable

from .._select import COMPILED
from ..codec import decode_rows
from ..model import PaymentResult

__all__ = [
    "CANCEL_CHECK_ROWS",
    "DEFAULT_LOCK_TIMEOUT",
    "Backend",
    "FetchOutcome",
    "FlushOutcome",
    "Reader",
    "Row",
    "Snapshot",
    "check_batch_size",
    "decode_stored_rows",
]

logger = logging.getLogger("mcstore")

CANCEL_CHECK_ROWS: Final = 1024
"""How many rows a backend's worker thread encodes or decodes between two looks at its cancel flag."""

DEFAULT_LOCK_TIMEOUT: Final = 5.0
"""Seconds a backend's statement waits for a lock that another connection holds before it
fails: SQLite's wait for the write lock, and PostgreSQL's ``lock_timeout`` (the
``lock_timeout`` keyword of :class:`~mcstore.backends.PostgresBackend`). An open that runs out
of it fails; a flush that does is retried, as any failed flush."""

Row: TypeAlias = tuple[bytes, bytes]
"""One stored result as lnd's bytes: ``(key, value)``."""


def check_batch_size(value: object, name: str = "max_rows") -> int:
    """Return ``value`` if it is an int >= 1; else raise ``TypeError``/``ValueError`` naming
    ``name`` and the value."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return value


# The pause is safe only where compiled code keeps the GIL (see codec.decode_rows): not on the
# pure path, and not on a free-threaded build without a GIL.
_PAUSE_COLLECTOR: Final = COMPILED and getattr(sys, "_is_gil_enabled", lambda: True)()


def decode_stored_rows(
    rows: Iterable[tuple[bytes, bytes]], namespace: str, check: Callable[[], None] | None = None
) -> tuple[list[PaymentResult], list[bytes]]:
    """Decode the stored ``rows`` of ``namespace``, in their order, for ``fetch_all``.

    Returns the results and the keys of the rows that fail to decode, each logged as a warning:
    the backend deletes those, as lnd >= 0.20.1 does (PR #10383), and goes on. ``check`` (a
    backend's cancellation check, which raises) is called before every ``CANCEL_CHECK_ROWS`` rows.

    On the compiled core each chunk is decoded with the cyclic garbage collector paused
    (:func:`mcstore.codec.decode_rows`, which states why that is safe there and only there):
    otherwise the collector would run again and again over the young objects of a large
    ``fetch_all`` (the benchmarks' ``scale`` case shows the cost). The collector runs between
    chunks as usual.
    """
    results: list[PaymentResult] = []
    corrupted: list[bytes] = []
    remaining = iter(rows)
    while True:
        chunk: list[tuple[object, object]] = list(itertools.islice(remaining, CANCEL_CHECK_ROWS))
        if not chunk:
            break
        if check is not None:
            check()
        for key, exc in decode_rows(chunk, results, _PAUSE_COLLECTOR):
            bad = bytes(cast(bytes, key))
            logger.warning(
                "Removing undecodable mission control result: namespace=%r key=%s: %s", namespace, bad.hex(), exc
            )
            corrupted.append(bad)
    return results, corrupted


@dataclass(frozen=True, slots=True)
class FlushOutcome:
    """What one :meth:`Backend.store_results` transaction did.

    ``added + deduplicated == len(results)``; a result inserted and then pruned in the same
    transaction counts in both ``added`` and ``pruned``.
    """

    added: int
    """Rows inserted."""
    deduplicated: int
    """Results not inserted because their key was stored already, or repeated in the batch."""
    pruned: int
    """Rows deleted to keep the namespace at ``max_records``."""
    stored: int
    """Rows in the namespace after the transaction."""


@dataclass(frozen=True, slots=True)
class FetchOutcome:
    """What :meth:`Backend.fetch_all` read."""

    results: list[PaymentResult]
    """The namespace's results in key order (oldest reply first)."""
    corrupted_removed: int
    """Rows that failed to decode, and were deleted."""
    stored: int
    """Rows in the namespace after the corrupted ones were removed."""


@runtime_checkable
class Snapshot(Protocol):
    """One consistent, read-only view of one namespace's rows, read in bounded batches.

    Got from :meth:`Backend.open_snapshot` or :meth:`Reader.open_snapshot`. Contract of every
    implementation:

    * **Consistent.** Every batch comes from the same view of the namespace: the state as
      of one moment between the start and the return of the call that opened the snapshot.
      Writes committed after that moment are not seen; nothing is seen twice or skipped.
    * **Never blocks writers.** The snapshot reads on its own connection (SQLite WAL: its own
      read transaction; PostgreSQL: a ``REPEATABLE READ READ ONLY`` transaction); a flush,
      a clear or another process's write commits while the snapshot is open. It takes no
      namespace lock, writes nothing and never deletes a row, decodable or not.
    * **Bounded memory.** The implementation holds O(``max_rows``) rows at a time (keyset
      pagination or a server-side cursor), whatever the namespace's size. (The in-Trio
      :class:`~mcstore.backends.MemoryBackend` copies the namespace at open: it is a fake.)
    * **Calls are sequential**, except :meth:`aclose`, which may be called at any time from
      any task, also while :meth:`next_batch` or :meth:`count` runs in another one.
    * **Cancellation is prompt**, as for :class:`Backend` calls: a running statement is
      interrupted, nothing is left running. A :meth:`next_batch` or :meth:`count` that
      raised (cancelled or failed) leaves the snapshot usable only for :meth:`aclose`.
    * **Released at once.** :meth:`aclose` ends the read transaction and frees the
      connection and its thread before it returns, so that, for example, an SQLite WAL
      checkpoint can complete again. A snapshot must always be closed: use
      ``async with contextlib.aclosing(snapshot)`` or ``try``/``finally``.
    """

    async def next_batch(self, max_rows: int) -> list[Row]:
        """The next at most ``max_rows`` (>= 1) rows, ``(key, value)``, in ascending bytewise key order.

        Continues after the last row returned. A batch shorter than ``max_rows`` means the
        snapshot is exhausted: every later call returns ``[]``. Raises ``ValueError`` for
        ``max_rows < 1`` (see :func:`check_batch_size`), :class:`~mcstore.StoreClosed` once
        :meth:`aclose` has begun (also when it interrupts this call from another task), and
        :class:`~mcstore.StoreError` if reading fails.
        """
        ...

    async def count(self) -> int:
        """How many rows the snapshot holds in all (read and unread). May cost a scan of the
        namespace's keys; raises as :meth:`next_batch` does."""
        ...

    async def aclose(self) -> None:
        """Release the snapshot: end its read transaction, close its connection and thread.

        Interrupts a call in progress in another task (which then raises
        :class:`~mcstore.StoreClosed`) and returns once everything is released. Runs to the end
        even in a cancelled scope, and promptly. Harmless if called again, or concurrently:
        every call returns once the snapshot is released.
        """
        ...


@runtime_checkable
class Reader(Protocol):
    """Read-only access to every namespace at a location, for tools such as ``mcstore export``.

    Opened by :func:`mcstore.backends.open_reader`. It takes no namespace lock (a store may be
    writing meanwhile), and creates, repairs and deletes nothing: a location that does not
    hold an mcstore database is an error, not a database to create.
    """

    location: str
    """Where the database is, as given to :func:`~mcstore.backends.open_reader` (no password)."""
    schema_version: int
    """The mcstore schema version found at the location (at most the one this mcstore writes)."""

    async def namespaces(self) -> Mapping[str, int]:
        """Every namespace that has rows or a recorded count, sorted by name, with its number
        of rows (decodable or not) at the moment of the call."""
        ...

    async def open_snapshot(self, namespace: str) -> Snapshot:
        """Open a :class:`Snapshot` of ``namespace`` (empty if the namespace holds no rows).

        Any number may be open at once, each on its own connection. :meth:`aclose` closes
        those still open.
        """
        ...

    async def check_integrity(self) -> list[str]:
        """What a check of the stored pages finds wrong: empty when they are sound.

        SQLite runs ``PRAGMA quick_check`` (it reads every page once, and writes nothing); an
        error that stops the check itself is its one complaint. A PostgreSQL server checks its
        own pages, so its reader has nothing to add and returns an empty list.
        """
        ...

    async def aclose(self) -> None:
        """Close every snapshot still open, then the reader's own connection. Harmless if
        called twice; runs to the end even in a cancelled scope."""
        ...


@runtime_checkable
class Backend(Protocol):
    """Durable storage of one namespace of lnd-format mission control results."""

    async def open(self, namespace: str, max_records: int) -> int:
        """Lock ``namespace`` and make it ready; prune it to ``max_records`` (0: no cap).

        On failure nothing stays open or locked.

        Args:
            namespace: The namespace to open (checked by the store before).
            max_records: Keep at most this many results, the greatest keys; 0: no cap.

        Returns:
            The number of results stored.

        Raises:
            StoreLocked: The namespace is open elsewhere.
            StoreError: The storage is unusable.
        """
        ...

    async def store_results(
        self, results: Sequence[PaymentResult], max_records: int
    ) -> FlushOutcome:
        """Insert ``results`` and prune to ``max_records``, in one atomic transaction.

        Results whose key is already stored, or repeated earlier in ``results``, are skipped.
        Pruning deletes the results with the smallest keys until at most ``max_records`` remain.

        Args:
            results: The batch, in the order it was accepted.
            max_records: The cap (0: no cap).

        Raises:
            StoreError: The transaction failed, having applied nothing
                (:class:`~mcstore.StoreFenced` when another store took the namespace over).
        """
        ...

    async def fetch_all(self) -> FetchOutcome:
        """Return every stored result in key order, deleting (and counting) rows that fail
        to decode."""
        ...

    async def clear(self) -> int:
        """Delete every result of the namespace atomically; return how many were deleted."""
        ...

    async def open_snapshot(self) -> Snapshot:
        """Open a :class:`Snapshot` of the namespace's durable rows (see its contract).

        May be called while the backend is open, at any time: also while another call (a
        flush) runs, and while other snapshots are open; each snapshot has its own connection,
        so it neither waits for the other calls nor delays them. Raises
        :class:`~mcstore.StoreError` if the backend is not open or the snapshot cannot be
        opened; on failure nothing stays open.
        """
        ...

    async def aclose(self) -> None:
        """Release the namespace and every resource, first closing every :class:`Snapshot`
        still open (their calls then raise :class:`~mcstore.StoreClosed`). Harmless if
        called twice."""
        ...
