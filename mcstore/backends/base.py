"""The persistence seam: what the Trio store needs from a place to keep results.

:class:`~mcstore.MissionControlStore` talks to storage only through the :class:`Backend`
protocol. mcstore ships two implementations: :class:`~mcstore.backends.SQLiteBackend`
(the real one) and :class:`~mcstore.testing.MemoryBackend` (in-Trio, for virtual-time tests and
fault injection). A wrapper that implements the same protocol can inject faults, count calls
or add latency without touching the store.

Contract of every backend (the store relies on each point):

* Calls are never concurrent: the store serialises them.
* :meth:`Backend.store_results` and :meth:`Backend.clear` are atomic. When one returns, its
  change is durable in full; when one raises (an error, or ``trio.Cancelled``), nothing of it
  was applied. A cancelled call may still return normally if its change had already been
  committed when the cancellation arrived; the store then counts it as done.
* Cancellation is prompt: a running statement is interrupted, not waited out, so a deadline
  on the store's shutdown holds.
* No call leaves work running (a thread, a task, an open transaction) after it returns or
  raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..model import PaymentResult

__all__ = ["Backend", "FetchOutcome", "FlushOutcome"]


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
class Backend(Protocol):
    """Durable storage of one namespace of lnd-format mission control results."""

    async def open(self, namespace: str, max_records: int) -> int:
        """Lock ``namespace`` and make it ready; prune it to ``max_records`` (0: no cap).

        Returns the number of results stored. Raises :class:`~mcstore.StoreLocked` if the
        namespace is open elsewhere, and :class:`~mcstore.StoreError` if the storage is unusable.
        On failure nothing stays open or locked.
        """
        ...

    async def store_results(
        self, results: Sequence[PaymentResult], max_records: int
    ) -> FlushOutcome:
        """Insert ``results`` and prune to ``max_records``, in one atomic transaction.

        Results whose key is already stored, or repeated earlier in ``results``, are skipped.
        Pruning deletes the results with the smallest keys until at most ``max_records`` remain
        (0: no cap). Raises on failure, having applied nothing.
        """
        ...

    async def fetch_all(self) -> FetchOutcome:
        """Return every stored result in key order, deleting (and counting) rows that fail
        to decode."""
        ...

    async def clear(self) -> int:
        """Delete every result of the namespace atomically; return how many were deleted."""
        ...

    async def aclose(self) -> None:
        """Release the namespace and every resource. Harmless if called twice."""
        ...
