"""Test support: fault injection through the backend seam, an in-Trio backend, and checks.

This package is the supported extension point for testing code that uses mcstore, including
code that wraps :class:`~mcstore.MissionControlStore`. Everything here goes through public
seams (the :class:`~mcstore.backends.Backend` protocol and the store's public API); nothing
patches the store's internals.

:class:`FaultyBackend` wraps *any* backend (a :class:`~mcstore.SQLiteBackend`, a
:class:`MemoryBackend`, or your own) and injects faults into its flushes
(``store_results``): fail the next *n*, fail always, an interruptible delay, an
uninterruptible commit delay, a hang until cancelled, and an async hook that runs at the start
of every flush (to learn that a flush is in flight, or to hold it there). ::

    backend = FaultyBackend(SQLiteBackend(path), fail_next=1)
    async with open_store(backend) as store:
        ...

:class:`MemoryBackend` implements the protocol entirely inside Trio: no threads and no I/O,
so it runs under ``trio.testing.MockClock(autojump_threshold=0)`` (autojump and worker threads
do not mix: trio issue #456). It stores lnd's encoded bytes, so the codec, deduplication by
key, pruning and corrupted-row removal behave as on SQLite. A :class:`MemoryDatabase` plays
the file: open several backends on one to model a reopen, or two namespaces side by side.
It injects no faults itself: wrap it in a :class:`FaultyBackend` for that. A flush applies its
change in one synchronous step after its last checkpoint, so a cancelled flush leaves nothing
behind: all in, or all out.

:class:`StoreModel` is a plain-Python model of what a namespace must hold, and
:func:`live_store_tasks` finds the store's tasks in the running task tree, so that a test can
prove that a closed store left nothing running.

Throwaway PostgreSQL servers, for the tests and benchmarks of the PostgreSQL backend, are in
its modules :mod:`mcstore.testing.pgserver` (one server, or ``MCSTORE_PG_DSN``) and
:mod:`mcstore.testing.pgfailover` (a primary with a synchronous standby, and failovers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence

import trio

from .. import store as _store_module
from ..backends.base import Backend, FetchOutcome, FlushOutcome, Snapshot
from ..backends.memory import MemoryBackend, MemoryDatabase
from ..errors import StoreError
from ..model import PaymentResult

__all__ = [
    "FaultyBackend",
    "FlushHook",
    "InjectedFault",
    "MemoryBackend",
    "MemoryDatabase",
    "StoreModel",
    "live_store_tasks",
]

logger = logging.getLogger("mcstore")


class InjectedFault(StoreError):
    """The error a :class:`FaultyBackend` or :class:`MemoryBackend` raises for an injected
    flush failure."""


FlushHook = Callable[[Sequence[PaymentResult]], Awaitable[None]]
"""An async callable that :class:`FaultyBackend` awaits at the start of every flush, with the
batch: set an event to learn that a flush is in flight, or wait on one to hold it there."""


class FaultyBackend:
    """A :class:`~mcstore.backends.Backend` that wraps another one and injects flush faults.

    ``inner`` is any backend; every call goes to it. Faults apply to ``store_results`` (a
    flush), in this order, and can be changed at any time through the attributes of the same
    names:

    1. ``before_flush``: a :data:`FlushHook`, awaited first.
    2. ``hang``: while true, the flush waits until it is cancelled, or until ``hang`` is set
       back to false (then it goes on). A hung flush never reaches ``inner``: cancelled,
       nothing of it is applied.
    3. ``delay``: seconds the flush waits before reaching ``inner`` (a slow commit). A
       cancellation during the delay applies nothing.
    4. ``fail_next`` / ``fail_always``: the flush raises :class:`InjectedFault` without
       reaching ``inner``; ``fail_next`` counts down by one per injected failure.
    5. ``commit_delay``: seconds the flush takes *after* ``inner`` committed, shielded from
       cancellation. It models a commit that had already happened when a cancellation
       arrived: the call returns normally, and the caller sees ``Cancelled`` at its next
       checkpoint. The backend contract allows this; a store's shutdown may overrun its
       ``shutdown_timeout`` by up to this much.

    Every fault keeps the contract of :class:`~mcstore.backends.Backend`: a flush that raises
    has applied nothing. Delays use ``trio.sleep``, so they are virtual under ``MockClock``
    (with an in-Trio inner backend such as :class:`MemoryBackend`) and real otherwise.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        fail_next: int = 0,
        fail_always: bool = False,
        delay: float = 0.0,
        commit_delay: float = 0.0,
        hang: bool = False,
        before_flush: FlushHook | None = None,
    ) -> None:
        self.inner = inner
        self.fail_next = fail_next
        self.fail_always = fail_always
        self.delay = delay
        self.commit_delay = commit_delay
        self.before_flush = before_flush
        self._hang = hang
        self._unhang = trio.Event()
        self.flush_calls = 0
        """Calls of ``store_results``, whatever their outcome."""
        self.faults_injected = 0
        """Flushes that raised :class:`InjectedFault`."""
        self.flushes_committed = 0
        """Flushes that ``inner`` committed."""
        self._in_flight = 0

    @property
    def hang(self) -> bool:
        """While true, flushes wait until cancelled; setting it to false releases them."""
        return self._hang

    @hang.setter
    def hang(self, value: bool) -> None:
        self._hang = bool(value)
        if not value:
            self._unhang.set()
            self._unhang = trio.Event()

    @property
    def calls_in_flight(self) -> int:
        """Calls of this backend, of any method, that have not returned or raised yet.

        0 whenever no call is awaited: after a store's ``async with`` block it must be 0.
        """
        return self._in_flight

    @property
    def faults_active(self) -> bool:
        """True while a fault that can keep a flush from committing is set."""
        return self._hang or self.fail_always or self.fail_next > 0

    def heal(self) -> None:
        """Clear every fault and delay (releasing hung flushes); ``before_flush`` stays."""
        self.fail_next = 0
        self.fail_always = False
        self.delay = 0.0
        self.commit_delay = 0.0
        self.hang = False

    async def open(self, namespace: str, max_records: int) -> int:
        self._in_flight += 1
        try:
            return await self.inner.open(namespace, max_records)
        finally:
            self._in_flight -= 1

    async def store_results(
        self, results: Sequence[PaymentResult], max_records: int
    ) -> FlushOutcome:
        self.flush_calls += 1
        call = self.flush_calls
        self._in_flight += 1
        try:
            if self.before_flush is not None:
                await self.before_flush(results)
            while self._hang:
                await self._unhang.wait()
            if self.delay > 0:
                await trio.sleep(self.delay)
            else:
                await trio.lowlevel.checkpoint()
            if self.fail_always or self.fail_next > 0:
                self.fail_next = max(0, self.fail_next - 1)
                self.faults_injected += 1
                raise InjectedFault(f"injected flush failure (call {call}, {len(results)} results)")
            outcome = await self.inner.store_results(results, max_records)
            self.flushes_committed += 1
            if self.commit_delay > 0:
                # Committed already: a cancellation now must not make the call raise.
                with trio.CancelScope(shield=True):
                    await trio.sleep(self.commit_delay)
            return outcome
        finally:
            self._in_flight -= 1

    async def fetch_all(self) -> FetchOutcome:
        self._in_flight += 1
        try:
            return await self.inner.fetch_all()
        finally:
            self._in_flight -= 1

    async def clear(self) -> int:
        self._in_flight += 1
        try:
            return await self.inner.clear()
        finally:
            self._in_flight -= 1

    async def open_snapshot(self) -> Snapshot:
        """Delegated to ``inner``: snapshots are reads, and get no faults."""
        self._in_flight += 1
        try:
            return await self.inner.open_snapshot()
        finally:
            self._in_flight -= 1

    async def aclose(self) -> None:
        self._in_flight += 1
        try:
            await self.inner.aclose()
        finally:
            self._in_flight -= 1


class StoreModel:
    """What a store's namespace must hold, computed in plain Python from what it accepted.

    Tell it, in order, each result the store accepted (:meth:`accept`: after ``add_result``
    or ``put`` returned) and each :meth:`~mcstore.MissionControlStore.clear` that returned
    (:meth:`clear`). The store settles accepted results in acceptance order, so at any moment
    the unsettled ones are the newest ``stats().pending`` accepted since the last clear, and
    the namespace holds the ``max_records`` greatest keys (all when 0) among the others, the
    first result accepted for a key winning. Pruning is monotonic, so this is exact: a result
    older than everything stored at the cap never comes back.

    ``stored`` gives the results already in the namespace when the store opened.
    """

    def __init__(self, max_records: int, stored: Iterable[PaymentResult] = ()) -> None:
        self.max_records = max_records
        self.accepted = 0
        """Results accepted since open (compare with ``stats().accepted``)."""
        self.since_clear: list[PaymentResult] = sorted(stored, key=lambda r: r.key)
        """The stored results at open, then every result accepted since the last clear."""

    def accept(self, result: PaymentResult) -> None:
        """Record that the store accepted ``result``."""
        self.accepted += 1
        self.since_clear.append(result)

    def clear(self) -> None:
        """Record a clear that returned: everything accepted before it is settled and gone."""
        self.since_clear = []

    def expected(self, pending: int = 0) -> list[PaymentResult]:
        """The namespace's results, in key order, while the newest ``pending`` are unsettled."""
        if not 0 <= pending <= len(self.since_clear):
            raise AssertionError(
                f"{pending} results pending, but only {len(self.since_clear)} accepted since the last clear"
            )
        first: dict[bytes, PaymentResult] = {}
        for result in self.since_clear[: len(self.since_clear) - pending]:
            first.setdefault(result.key, result)
        keys = sorted(first)
        if self.max_records:
            keys = keys[-self.max_records :]
        return [first[key] for key in keys]

    def candidates(self, low_pending: int, high_pending: int) -> list[list[PaymentResult]]:
        """Every namespace state allowed while between ``low_pending`` and ``high_pending``
        results are unsettled: for a flush that may have committed without being settled yet
        (a commit seen from another connection before the store learnt of it)."""
        return [self.expected(p) for p in range(low_pending, high_pending + 1)]

    def expected_after_close(self, unpersisted: Sequence[PaymentResult]) -> list[PaymentResult]:
        """The namespace after a close that left ``unpersisted`` (``store.unpersisted``).

        Raises :class:`AssertionError` unless ``unpersisted`` is exactly the newest results
        accepted since the last clear, oldest first: nothing lost, nothing invented.
        """
        n = len(unpersisted)
        newest = self.since_clear[len(self.since_clear) - n :] if n else []
        if n > len(self.since_clear) or tuple(newest) != tuple(unpersisted):
            raise AssertionError(
                f"store.unpersisted holds {n} results that are not the newest accepted since the "
                f"last clear ({len(self.since_clear)} accepted since): {unpersisted!r}"
            )
        return self.expected(n)


_STORE_FILE = os.path.normcase(os.path.abspath(_store_module.__file__))


def _runs_store_code(task: trio.lowlevel.Task) -> bool:
    code = getattr(task.coro, "cr_code", None)
    if code is not None and os.path.normcase(os.path.abspath(code.co_filename)) == _STORE_FILE:
        return True
    # Fallback for wrapped coroutines: Trio names a task after its function.
    return task.name.startswith("mcstore.") and "._run_" in task.name


def live_store_tasks() -> list[trio.lowlevel.Task]:
    """Return every live task of the current run that runs the store's own code.

    Walks the whole task tree from ``trio.lowlevel.current_root_task()`` (no list kept by hand),
    and selects each task whose coroutine was defined in ``mcstore/store.py`` (or, for a wrapped
    coroutine, whose name is one of the store's ``mcstore.*._run_*`` tasks). Once a store's
    ``async with`` block has exited, this must be empty. Call it from inside ``trio.run``.
    """
    found: list[trio.lowlevel.Task] = []
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        if _runs_store_code(task):
            found.append(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found
