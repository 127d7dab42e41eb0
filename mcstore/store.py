"""The Trio store: accepts results without blocking and makes them durable in batches.

:func:`open_store` is the entry point. It owns a nursery with the store's three background
tasks, and nothing the store starts outlives its ``async with`` block:

* the **result intake** moves accepted results from the intake queue into the pending batch
  and encodes them, a chunk at a time, while they wait for their flush;
* the **flush ticker** sleeps ``flush_interval`` once armed (by the first result accepted
  after a tick), then asks for a flush; it is armed only while results are pending, as in
  lnd, so an idle store does nothing;
* the **persistence worker** runs each requested flush: one backend transaction.

Invariants (checked by the property tests in ``tests/``):

1. Every accepted result is, at any moment, in exactly one of: the intake queue, the pending
   batch, a flush in flight, or *settled* (stored, deduplicated, pruned, or discarded by
   :meth:`MissionControlStore.clear`). After close, whatever is not settled is in
   :attr:`MissionControlStore.unpersisted`: nothing is dropped silently.
2. After every successful flush the namespace holds exactly the ``max_records`` distinct
   results with the greatest keys among all accepted since the last clear (all of them when
   ``max_records`` is 0).
3. Flushes, clears and fetches never overlap: one lock serialises them, so each sees and
   leaves the namespace in a state that some sequential order explains.
4. ``pending`` never exceeds ``max_pending``.

Ctrl-C: every entry point, background task and the close run under Trio's KI protection
(``trio.lowlevel.enable_ki_protection``), so a ``KeyboardInterrupt`` is never raised in the
middle of the store's bookkeeping, whatever flag the program passes to ``trio.run``: Trio
delivers it to the main task at its next checkpoint, and it leaves the block as itself after
the usual close (see :func:`open_store`).
"""

from __future__ import annotations

import collections
import enum
import logging
import math
import os
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, TypeVar

import outcome
import trio

from .backends import Backend, FlushOutcome, Row, Snapshot, backend_for_path
from .backends._thread import acquire_promptly, note_yields, yielded
from .backends.base import check_batch_size
from .codec import decode_result, encode_result
from .errors import DecodeError, FlushError, StoreBusy, StoreClosed, StoreError, StoreFenced
from .model import PaymentResult

__all__ = [
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "MAX_RECORDS",
    "MAX_RETRY_BACKOFF",
    "MissionControlStore",
    "ResultIterator",
    "StoreState",
    "StoreStats",
    "check_namespace",
    "open_store",
]

logger = logging.getLogger("mcstore")

DEFAULT_MAX_RECORDS: Final = 1000
"""lnd's ``MaxMcHistory`` default. 0 means no cap."""
MAX_RECORDS: Final = 2**63 - 1
"""The largest ``max_records`` a store accepts, on every backend: the kept count is a signed
64-bit integer in both databases (PostgreSQL's ``bigint``, SQLite's ``INTEGER``)."""
DEFAULT_FLUSH_INTERVAL: Final = 1.0
"""lnd's ``McFlushInterval`` default, in seconds."""
DEFAULT_SHUTDOWN_TIMEOUT: Final = 5.0
"""How long, in seconds, closing may spend on the final flush."""
DEFAULT_MAX_PENDING: Final = 100_000
"""How many accepted results may wait for a flush before :meth:`~MissionControlStore.add_result`
raises :class:`~mcstore.StoreBusy`."""
MAX_RETRY_BACKOFF: Final = 30.0
"""The longest wait, in seconds, before retrying a failed flush (also when ``flush_interval`` is longer)."""

_ENCODE_CHUNK: Final = 256  # results encoded between two checkpoints of the intake: a short stretch without one

T = TypeVar("T")

_ki_protected = trio.lowlevel.enable_ki_protection

STOPPING_MESSAGE: Final = "Stopping mission control store ticker"
STOPPED_MESSAGE: Final = "Mission control store ticker stopped"


class StoreState(enum.Enum):
    """The life cycle of a store: ``OPEN`` -> ``CLOSING`` -> ``CLOSED``, never backwards."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_OPEN: Final = StoreState.OPEN
"""``StoreState.OPEN``, for the state checks (some run per result or per flush): an enum's class
attribute is looked up through its metaclass's ``__getattr__`` hook, a costly step (Python 3.11)."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A snapshot of a store's counters, from :meth:`MissionControlStore.stats`."""

    state: StoreState
    pending: int
    """Accepted results not yet settled (waiting, or in a flush in flight)."""
    stored: int
    """Results in the namespace, as of the last flush, clear or fetch."""
    accepted: int
    """Results accepted by ``add_result`` and ``put`` since open."""
    deduplicated: int
    """Accepted results not inserted because their key was already stored or in the batch."""
    pruned: int
    """Rows deleted by flushes to respect ``max_records``, counting accepted results older than all
    stored. (Rows pruned at open, after a reopen with a smaller cap, are logged at INFO instead.)"""
    flushes: int
    """Successful flush transactions."""
    flush_failures: int
    """Flush attempts that failed (their results were kept and retried)."""
    corrupted_removed: int
    """Undecodable rows deleted by ``fetch_all``."""
    last_flush_seconds: float | None
    """Duration of the last successful flush, or ``None`` before the first."""


class MissionControlStore:
    """A durable, batched store of payment-attempt results for one namespace.

    Get one from :func:`open_store`; it is valid inside that ``async with`` block only.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        namespace: str,
        max_records: int,
        flush_interval: float,
        shutdown_timeout: float,
        max_pending: int,
        stored: int,
    ) -> None:
        self._backend = backend
        self.namespace: Final = namespace
        self.max_records: Final = max_records
        self.flush_interval: Final = flush_interval
        self.shutdown_timeout: Final = shutdown_timeout
        self.max_pending: Final = max_pending
        self._state = StoreState.OPEN
        # Accepted results not yet moved to the batch, oldest first. A plain deque, not a Trio
        # memory channel: nothing ever waits on it (the intake is woken by _intake_ready), and
        # a channel's send_nowait would make add_result, the caller's hot path, markedly slower.
        # Touched only from the Trio thread.
        self._intake: collections.deque[PaymentResult] = collections.deque()
        # Results moved out of the intake queue and not yet in a flush, oldest first.
        self._batch: list[PaymentResult] = []
        self._intake_ready = trio.Event()
        self._flush_lock = trio.Lock()
        self._room = trio.Event()  # set (and replaced) whenever pending drops or state changes
        self._room_awaited = False  # a put() waits on _room (else a flush need not replace it)
        self._wake_ticker = trio.Event()
        self._ticker_armed = False
        self._flush_due = trio.Event()
        self._consecutive_failures = 0
        self._ticker_scope = trio.CancelScope()
        self._tick = trio.CancelScope()  # the ticker's current wait (see _run_ticker)
        self._worker_scope = trio.CancelScope()
        self._tasks_running = 0
        self._tasks_stopped = trio.Event()
        self._closed_event = trio.Event()
        # Callers' operations in progress (see _operation), by when closing cancels them.
        self._closing_cancels: set[trio.CancelScope] = set()
        self._deadline_cancels: set[trio.CancelScope] = set()
        self._flush_generation = 0  # counts batches taken by flushes (see _run_intake)
        self._iterations: set[ResultIterator] = set()  # holding a snapshot (see iter_results)
        self._unpersisted: tuple[PaymentResult, ...] = ()
        # Counters.
        self._pending = 0
        self._stored = stored
        self._accepted = 0
        self._deduplicated = 0
        self._pruned = 0
        self._flushes = 0
        self._flush_failures = 0
        self._corrupted_removed = 0
        self._last_flush_seconds: float | None = None

    # -- public API --------------------------------------------------------------------

    @property
    def state(self) -> StoreState:
        """Where the store is in its life cycle."""
        return self._state

    @property
    def closed(self) -> bool:
        """True once the store is fully closed."""
        return self._state is StoreState.CLOSED

    @property
    def unpersisted(self) -> tuple[PaymentResult, ...]:
        """Accepted results that could not be made durable, oldest first.

        Empty while the store is open, and after a healthy close. After a close whose final
        flush failed or ran out of ``shutdown_timeout``, it holds every accepted result that
        is not in the database, so that the caller can retry them elsewhere. It also holds a
        batch whose commit was not confirmed (the connection dropped during COMMIT, or on
        PostgreSQL a wait for a synchronous standby was cancelled): such results may be in the
        database already; storing them there again keeps each once.
        """
        return self._unpersisted

    @_ki_protected
    def add_result(self, result: PaymentResult) -> None:
        """Accept ``result`` for the next flush. O(1); never blocks, never does I/O.

        When it raises, the result was not accepted.

        Args:
            result: The :class:`~mcstore.PaymentResult` to keep.

        Raises:
            TypeError: ``result`` is not a :class:`~mcstore.PaymentResult`.
            StoreClosed: Closing has begun.
            StoreBusy: ``max_pending`` results are waiting; :meth:`put` waits instead.
        """
        if not isinstance(result, PaymentResult):
            raise TypeError(f"add_result() expects a PaymentResult, got {type(result).__name__}: {result!r}")
        if self._state is not _OPEN:
            raise StoreClosed(
                f"mission control store is {self._state.value}; the result with id {result.id} was not accepted"
            )
        if self._pending >= self.max_pending:
            raise StoreBusy(
                f"{self._pending} results are waiting to be flushed (max_pending={self.max_pending}); "
                f"the result with id {result.id} was not accepted"
            )
        # Accepted. pending counts everything in the intake queue.
        intake = self._intake
        intake.append(result)
        self._pending += 1
        self._accepted += 1
        if not self._ticker_armed:
            self._arm_ticker()
        if len(intake) == _ENCODE_CHUNK:
            # A chunk worth encoding ahead of the flush (see _run_intake). Not for each result:
            # waking the intake cost every small flush a task step (a flush drains the queue).
            self._intake_ready.set()

    @_ki_protected
    async def put(self, result: PaymentResult) -> None:
        """Like :meth:`add_result`, but wait for room instead of raising :class:`~mcstore.StoreBusy`.

        If cancelled, the result was not accepted.

        Args:
            result: The :class:`~mcstore.PaymentResult` to keep.

        Raises:
            TypeError: ``result`` is not a :class:`~mcstore.PaymentResult`.
            StoreClosed: The store is closing, or closes while this call waits.
        """
        if not isinstance(result, PaymentResult):
            raise TypeError(f"put() expects a PaymentResult, got {type(result).__name__}: {result!r}")
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._state is not _OPEN:
                raise StoreClosed(
                    f"mission control store is {self._state.value}; the result with id {result.id} was not accepted"
                )
            if self._pending < self.max_pending:
                self.add_result(result)  # accepts it: every check passes
                break
            self._room_awaited = True
            await self._room.wait()
        await trio.lowlevel.cancel_shielded_checkpoint()

    @_ki_protected
    async def flush(self) -> None:
        """Return once every result accepted before this call is durable (or settled).

        Flushes at once, without waiting for the ticker; returns at once if there is nothing
        to flush. If the store starts closing while this call waits or flushes, it waits for
        the close: it returns if the final flush made the results durable. If cancelled, the
        results stay pending, or were flushed; none is lost.

        Raises:
            FlushError: The flush failed (the results stay pending and are retried; its
                ``__cause__`` says why, :class:`~mcstore.StoreFenced` for a store fenced off),
                or the store closed and the results ended in :attr:`unpersisted`.
            StoreClosed: The store was already closing.
        """
        self._check_open("flush")
        target = self._accepted
        if self._settled_count() >= target:  # nothing pending: no lock, no backend call
            await trio.lowlevel.checkpoint()
            return
        with self._operation(cancel_when_closing=False):
            # A free lock is taken without a turn of the scheduler (Trio's acquire takes one):
            # the backend's call takes one, a WorkerThread's wait for its thread, and flush()
            # takes its own only where none was taken (a custom backend need not yield, and
            # flush() must be a checkpoint whatever the backend does). A turn less per flush.
            await acquire_promptly(self._flush_lock)
            noted = note_yields()
            try:
                if self._settled_count() >= target:
                    return
                if self._state is _OPEN:
                    await self._flush_locked()
                    return
            finally:
                self._flush_lock.release()
                if not yielded(noted):
                    await trio.lowlevel.cancel_shielded_checkpoint()
        # The close began first, or cancelled this flush at its deadline: its final flush
        # decides where the results end.
        await self._closed_event.wait()
        if self._settled_count() < target:
            raise FlushError("mission control store closed before these results were durable; see store.unpersisted")

    @_ki_protected
    async def fetch_all(self) -> list[PaymentResult]:
        """Return the namespace's durable results, oldest first (key order).

        These are what a restart would see: pending results are not included. Rows that fail
        to decode are logged at WARNING, deleted, counted in ``corrupted_removed``, and skipped.

        Raises:
            StoreClosed: The store is closing or closed, or starts closing during the call
                (which then stops at once).
            StoreError: The backend failed to read.
        """
        self._check_open("fetch_all")
        with self._operation(cancel_when_closing=True) as scope:
            async with self._flush_lock:
                self._check_open("fetch_all")
                outcome = await self._backend.fetch_all()
                self._corrupted_removed += outcome.corrupted_removed
                self._stored = outcome.stored
                return outcome.results
        assert scope.cancelled_caught
        raise StoreClosed("fetch_all() stopped: the mission control store is closing")

    @_ki_protected
    async def clear(self) -> None:
        """Delete every result of the namespace, pending ones included, in one transaction.

        Atomic with respect to flushes: results accepted before the call are gone, results
        accepted after it are kept. If it fails or is cancelled, nothing is deleted and the
        pending results stay pending. (lnd's ``clear()`` left its in-memory key index stale;
        there is none here.)

        Raises:
            StoreClosed: Closing has begun (a clear in progress is then stopped, and deletes
                nothing).
            StoreError: The backend failed (for example :class:`~mcstore.StoreFenced`); nothing
                was deleted.
        """
        self._check_open("clear")
        target = self._accepted
        with self._operation(cancel_when_closing=True) as scope:
            async with self._flush_lock:
                self._check_open("clear")
                self._drain_intake()
                # Settled results are a prefix of the acceptance order, so the results
                # accepted before this call are the first `cut` of the batch; the ones that
                # arrived while we waited for the lock stay.
                cut = max(0, target - self._settled_count())
                dropped, self._batch = self._batch[:cut], self._batch[cut:]
                try:
                    await self._backend.clear()
                except BaseException:
                    self._batch = dropped + self._batch
                    raise
                self._settle(len(dropped))
                self._stored = 0
                logger.info("Cleared mission control store namespace %r", self.namespace)
                return
        assert scope.cancelled_caught
        raise StoreClosed("clear() stopped: the mission control store is closing; nothing was deleted")

    def iter_results(self, batch_size: int = 1000) -> ResultIterator:
        """Iterate over the namespace's durable results, oldest first (key order), in bounded memory.

        ::

            async with contextlib.aclosing(store.iter_results()) as results:
                async for result in results:
                    ...

        The first step takes one consistent snapshot of the namespace (see
        :class:`~mcstore.backends.Snapshot`) on its own read connection, and the iteration
        sees exactly the results durable at that moment, whatever is flushed, pruned or
        cleared meanwhile: flushes are not blocked while the caller iterates. Rows are read
        ``batch_size`` at a time and decoded one by one, so memory stays bounded by
        ``batch_size`` whatever the history size; each batch read is a checkpoint.

        Rows that fail to decode are logged at WARNING, counted in the iterator's ``skipped``,
        and skipped; unlike :meth:`fetch_all`, the iteration is read-only and deletes nothing
        (the next ``fetch_all`` removes them).

        The snapshot is released as soon as the iteration ends, or is closed: leaving the
        loop early (``break``, an exception, cancellation) releases it at once when the
        iterator is closed, which ``contextlib.aclosing`` does; otherwise it is released when
        the store closes. Closing the store ends an iteration in progress: its next step (or
        a batch read in progress) raises :class:`~mcstore.StoreClosed`; the close never waits
        for the caller.

        Args:
            batch_size: Rows read at a time, an int >= 1.

        Raises:
            TypeError: ``batch_size`` is not an int.
            ValueError: ``batch_size`` is less than 1.
            StoreClosed: The store is closing or closed (also from a step of the iteration).
        """
        check_batch_size(batch_size, "batch_size")
        self._check_open("iter_results")
        return ResultIterator(self, batch_size)

    def stats(self) -> StoreStats:
        """Return a snapshot of the store's counters. Never blocks; works in every state."""
        return StoreStats(
            state=self._state,
            pending=self._pending,
            stored=self._stored,
            accepted=self._accepted,
            deduplicated=self._deduplicated,
            pruned=self._pruned,
            flushes=self._flushes,
            flush_failures=self._flush_failures,
            corrupted_removed=self._corrupted_removed,
            last_flush_seconds=self._last_flush_seconds,
        )

    def __repr__(self) -> str:
        return (
            f"<MissionControlStore namespace={self.namespace!r} state={self._state.value} "
            f"pending={self._pending} stored={self._stored} backend={self._backend!r}>"
        )

    # -- bookkeeping -------------------------------------------------------------------

    def _operation(self, *, cancel_when_closing: bool) -> _Operation:
        """Scope a caller's flush, clear or fetch, so that closing can cancel it.

        A caller's task may live outside the store's block (in an outer nursery): when the
        store closes, such an operation must not keep using the backend behind the close's
        back. Fetches and clears are cancelled as soon as closing begins (their answer no
        longer matters, and the final flush needs the lock); flushes only when the final
        flush's deadline passes, since their work counts.
        """
        return _Operation(self._closing_cancels if cancel_when_closing else self._deadline_cancels)

    def _check_open(self, what: str) -> None:
        if self._state is not _OPEN:
            raise StoreClosed(f"{what}() on a {self._state.value} mission control store")

    def _settled_count(self) -> int:
        return self._accepted - self._pending

    def _settle(self, count: int) -> None:
        if count:
            self._pending -= count
            self._notify_room()

    def _notify_room(self) -> None:
        if self._room_awaited or self._state is not _OPEN:
            self._room_awaited = False
            self._room.set()
            self._room = trio.Event()

    def _drain_intake(self) -> list[PaymentResult]:
        """Move every result waiting in the intake queue to the batch; return them. Never blocks."""
        moved = list(self._intake)
        self._intake.clear()
        self._batch.extend(moved)
        return moved

    def _arm_ticker(self) -> None:
        # A no-op while armed: the coming tick's flush takes everything pending by then.
        if not self._ticker_armed and self._state is _OPEN:
            self._ticker_armed = True
            self._wake_ticker.set()

    def _retry_delay(self) -> float:
        if not self._consecutive_failures:
            return self.flush_interval
        # Doubled with each failure in a row, and capped: a bulk writer's day-long interval
        # (mcstore import) must not put off the retry of a failed flush by a day.
        return min(self.flush_interval * 2.0 ** min(self._consecutive_failures, 64), MAX_RETRY_BACKOFF)

    # -- flushing ----------------------------------------------------------------------

    async def _flush_locked(self) -> None:
        """Flush everything pending in one backend transaction. Call with the flush lock held.

        On failure the batch goes back to the front of the queue, in order, and
        :class:`FlushError` is raised; on cancellation the same, and ``Cancelled`` propagates.
        """
        self._drain_intake()
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        self._flush_generation += 1
        started = trio.current_time()
        try:
            outcome = await self._backend.store_results(batch, self.max_records)
        except BaseException as exc:
            self._batch = batch + self._batch
            # The kept batch needs a tick even if none is armed (the tick that ran this flush
            # disarmed it): otherwise it would wait for the next accepted result, or for close.
            self._arm_ticker()
            if not isinstance(exc, Exception) or trio.current_effective_deadline() == -math.inf:
                # Cancelled (our scope or the backend's interrupted statement): not a failure
                # of the backend, and the caller's cancellation must propagate.
                await trio.lowlevel.checkpoint_if_cancelled()
                raise
            self._flush_failures += 1
            self._consecutive_failures += 1
            # A ticker already waiting out a longer flush_interval retries within the backoff.
            self._tick.deadline = min(self._tick.deadline, trio.current_time() + self._retry_delay())
            logger.error(
                "Mission control store flush failed (attempt %d): %d results kept for retry in %.3g s: %s",
                self._consecutive_failures, len(self._batch), self._retry_delay(), exc,
            )
            raise FlushError(f"flush of {len(batch)} results failed: {exc}") from exc
        self._record_flush(outcome, len(batch), trio.current_time() - started)

    def _record_flush(self, outcome: FlushOutcome, count: int, seconds: float) -> None:
        self._consecutive_failures = 0
        self._flushes += 1
        self._deduplicated += outcome.deduplicated
        self._pruned += outcome.pruned
        self._stored = outcome.stored
        self._last_flush_seconds = seconds
        self._settle(count)
        logger.debug(
            "Stored mission control results: %d added, %d deleted", outcome.added, outcome.pruned
        )

    # -- background tasks ----------------------------------------------------------------

    async def _start(self, nursery: trio.Nursery) -> None:
        # Ordered start-up: each task is running before the next starts, and before the
        # caller gets the store.
        for task in (self._run_intake, self._run_worker, self._run_ticker):
            await nursery.start(self._supervised, task, name=f"mcstore.{task.__name__}")

    @_ki_protected
    async def _supervised(
        self,
        task: Callable[[], Awaitable[None]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run one background task, counting it, so that closing can wait for all of them."""
        self._tasks_running += 1
        task_status.started()
        try:
            await task()
        finally:
            self._tasks_running -= 1
            if not self._tasks_running:
                self._tasks_stopped.set()

    async def _run_intake(self) -> None:
        """Result intake: move accepted results into the batch and encode them ahead of the flush.

        Woken each time the intake queue reaches ``_ENCODE_CHUNK`` results (and at close): a
        backlog is then mostly encoded by the time its flush comes, so that the flush, the
        final one above all, has little more than SQL to do. Fewer results wait in the queue
        for the flush, whose worker thread encodes them. Nothing is ever handed straight to
        this task (it could sit in no buffer until the task runs, and a flush would miss it):
        results stay in the intake queue until ``_drain_intake`` moves them, here or in a
        flush. Ends once closing has begun and the queue is drained.
        """
        while True:
            await self._intake_ready.wait()
            self._intake_ready = trio.Event()
            moved = self._drain_intake()
            if self._state is not _OPEN:
                return
            # Encode while the store waits for its tick, so that the flush has only SQL left
            # to do. In chunks, with a checkpoint between them, to keep the event loop lively;
            # once a flush has taken the batch, its worker thread encodes the rest instead.
            generation = self._flush_generation
            for start in range(0, len(moved), _ENCODE_CHUNK):
                if self._flush_generation != generation:
                    break
                for result in moved[start : start + _ENCODE_CHUNK]:
                    encode_result(result)
                await trio.lowlevel.checkpoint()

    async def _run_ticker(self) -> None:
        """Flush ticker: once armed, wait one interval (or the retry backoff), then ask for a flush.

        Trio's events cannot lose a wake-up (lnd #8912 lost a ``sync.Cond`` signal sent before
        the ``Wait``): ``_arm_ticker`` sets a flag and an event, and the ticker checks both.
        Stopped by cancelling its own scope, which ends any sleep at once.
        """
        with self._ticker_scope:
            while True:
                await self._wake_ticker.wait()
                self._wake_ticker = trio.Event()
                # A scope, not trio.sleep: a failed flush may bring its deadline closer.
                with trio.CancelScope(deadline=trio.current_time() + self._retry_delay()) as self._tick:
                    await trio.sleep_forever()
                self._ticker_armed = False
                self._flush_due.set()

    async def _run_worker(self) -> None:
        """Persistence worker: runs each flush the ticker asks for.

        Results that arrive during a flush re-arm the ticker through the intake; a failed
        flush re-arms it in ``_flush_locked``.

        Stopped by cancelling its own scope; a flush in flight is then interrupted and rolls
        back, and its results stay pending (see :class:`~mcstore.backends.Backend`).
        """
        with self._worker_scope:
            while True:
                await self._flush_due.wait()
                self._flush_due = trio.Event()
                async with self._flush_lock:
                    try:
                        await self._flush_locked()
                    except FlushError:
                        pass  # counted and logged; the batch is kept, and the ticker re-armed

    # -- closing -------------------------------------------------------------------------

    @_ki_protected
    async def aclose(self) -> None:
        """Close the store now, as leaving the ``async with`` block does.

        Refuses new results, drains the intake, runs the final flush (shielded, bounded by
        ``shutdown_timeout``), stops the background tasks and closes the backend. Harmless if
        the store is already closing or closed: it then waits for that close to finish, and
        returns.

        Raises:
            FlushError: Some accepted results could not be persisted; they are in
                :attr:`unpersisted`.
        """
        if not await self._close():
            await self._closed_event.wait()
            return
        if self._unpersisted:
            raise FlushError(
                f"{len(self._unpersisted)} accepted results could not be persisted before closing; "
                "they are in store.unpersisted"
            )

    @_ki_protected
    async def _close(self) -> bool:
        """Run the shutdown sequence; return False if closing had already begun.

        The sequence: refuse new results; drain the intake; stop the ticker; run the final
        flush, shielded and bounded by ``shutdown_timeout`` (a statement still running at the
        deadline is interrupted, and rolls back); stop the worker; wait until every task has
        ended; close the backend; log that the ticker stopped. Runs in full even when the
        caller is cancelled, or interrupted by Ctrl-C (see :func:`_uninterrupted`).
        """
        if self._state is not _OPEN:
            return False
        logger.debug(STOPPING_MESSAGE)
        self._state = StoreState.CLOSING
        self._intake_ready.set()  # the intake drains what is buffered and ends
        self._notify_room()  # put() waiters see CLOSING and raise StoreClosed
        for operation in self._closing_cancels:
            operation.cancel()
        await _uninterrupted(self._close_sequence)
        return True

    @_ki_protected
    async def _close_sequence(self) -> None:
        with trio.move_on_after(self.shutdown_timeout, shield=True) as scope:
            self._ticker_scope.cancel()
            async with self._flush_lock:
                await self._final_flush()
        if scope.cancelled_caught:
            logger.error(
                "Mission control store final flush did not finish within shutdown_timeout=%s s",
                self.shutdown_timeout,
            )
        self._worker_scope.cancel()
        for operation in self._deadline_cancels:
            operation.cancel()
        with trio.CancelScope(shield=True):
            # No deadline needed: every task and caller's operation is cancelled or returning,
            # and a backend call ends promptly on cancellation (the Backend contract). Taking
            # the flush lock waits for the last backend call; operations queued behind it see
            # CLOSING and touch nothing.
            async with self._flush_lock:
                pass
            if self._tasks_running:
                await self._tasks_stopped.wait()
            # Iterations in progress: their read in flight was cancelled when closing began;
            # release their snapshots (prompt, and never waits for the iterating caller).
            for iteration in list(self._iterations):
                await iteration._release()
            await self._backend.aclose()
        self._finish()

    async def _final_flush(self) -> None:
        # Retry a failing final flush with the usual backoff until the deadline: a transient
        # error at close must not cost the caller its results (lnd drops them all on stop).
        while True:
            try:
                await self._flush_locked()
                return
            except FlushError as exc:
                if isinstance(exc.__cause__, StoreFenced):
                    return  # for good: the results go to unpersisted now, not at the deadline
                await trio.sleep(self._retry_delay())

    def _finish(self) -> None:
        """Mark the store closed, collect what could not be persisted, log the stop."""
        if self._state is StoreState.CLOSED:
            return
        self._state = StoreState.CLOSED
        self._drain_intake()
        self._unpersisted = tuple(self._batch)
        self._batch = []
        self._notify_room()
        if self._unpersisted:
            logger.error(
                "Mission control store closed with %d accepted results not persisted",
                len(self._unpersisted),
            )
        logger.debug(STOPPED_MESSAGE)
        self._closed_event.set()


class _Operation:
    """``with`` a new cancel scope, registered in ``operations`` while it is entered (see
    :meth:`MissionControlStore._operation`). A class, not a ``contextmanager`` generator: it is
    on every flush's path, where a generator's machinery (a frame, ``next`` and ``throw``) costs
    more than the scope's own entry and exit."""

    __slots__ = ("_operations", "_scope")

    def __init__(self, operations: set[trio.CancelScope]) -> None:
        self._operations = operations
        self._scope = trio.CancelScope()

    def __enter__(self) -> trio.CancelScope:
        self._operations.add(self._scope)
        try:
            return self._scope.__enter__()
        except BaseException:
            self._operations.discard(self._scope)
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> bool:
        try:
            return self._scope.__exit__(exc_type, exc, tb)
        finally:
            self._operations.discard(self._scope)


class ResultIterator:
    """The async iterator of :meth:`MissionControlStore.iter_results` (see there).

    Close it with :meth:`aclose` (``contextlib.aclosing`` does) to release its snapshot as
    soon as the caller stops iterating. Once it has ended (exhausted, closed, or after raising)
    it raises ``StopAsyncIteration``. One task at a time: a step taken while another task's
    step is reading a batch raises ``trio.BusyResourceError``.
    """

    def __init__(self, store: MissionControlStore, batch_size: int) -> None:
        self._store = store
        self.batch_size: Final = batch_size
        self._snapshot: Snapshot | None = None
        self._rows: list[Row] = []
        self._index = 0
        self._exhausted = False  # the last batch has been read (the snapshot is released)
        self._done = False  # ended: exhausted and drained, closed, or failed
        self._reading = False
        self.skipped = 0
        """Rows that failed to decode and were skipped (each logged at WARNING)."""

    @property
    def snapshot_open(self) -> bool:
        """True while the iterator holds a snapshot (from its first step to its last batch)."""
        return self._snapshot is not None

    def __aiter__(self) -> ResultIterator:
        return self

    async def __anext__(self) -> PaymentResult:
        store = self._store
        while True:
            if self._done:
                raise StopAsyncIteration
            if store._state is not _OPEN:
                await self._end()
                raise StoreClosed(f"iter_results() on a {store._state.value} mission control store")
            if self._index < len(self._rows):
                key, value = self._rows[self._index]
                self._index += 1
                try:
                    return decode_result(key, value)
                except DecodeError as exc:
                    self.skipped += 1
                    logger.warning(
                        "Skipping undecodable mission control result: namespace=%r key=%s: %s",
                        store.namespace, bytes(key).hex(), exc,
                    )
                    continue
            self._rows, self._index = [], 0  # let the previous batch go before reading the next
            if self._exhausted:
                await self._end()
                raise StopAsyncIteration
            await self._read_batch()

    async def _read_batch(self) -> None:
        if self._reading:
            raise trio.BusyResourceError("another task is already reading this iter_results() iterator")
        self._reading = True
        try:
            await self._read_batch_now()
        finally:
            self._reading = False

    async def _read_batch_now(self) -> None:
        store = self._store
        with store._operation(cancel_when_closing=True) as scope:
            try:
                if self._snapshot is None:
                    store._iterations.add(self)
                    self._snapshot = await store._backend.open_snapshot()
                rows = await self._snapshot.next_batch(self.batch_size)
            except BaseException:
                await self._end()
                raise
            self._rows = rows
            if len(rows) < self.batch_size:  # the snapshot is exhausted: release it now
                self._exhausted = True
                await self._release()
            return
        assert scope.cancelled_caught
        raise StoreClosed("iter_results() stopped: the mission control store is closing")

    async def _end(self) -> None:
        self._done = True
        self._rows, self._index = [], 0
        await self._release()

    async def _release(self) -> None:
        """Release the snapshot, shielded and promptly."""
        snapshot, self._snapshot = self._snapshot, None
        try:
            if snapshot is not None:
                with trio.CancelScope(shield=True):
                    await snapshot.aclose()
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self._store._iterations.discard(self)

    async def aclose(self) -> None:
        """Stop iterating and release the snapshot at once. Harmless if called again; never
        raises, also in a cancelled scope (so that ``aclosing`` never hides the caller's error)."""
        await self._end()


def check_namespace(namespace: object) -> str:
    """Return ``namespace`` if it can name a namespace on every backend; else raise
    ``ValueError`` naming it (escaped, so that the message itself is printable).

    A namespace is a non-empty ``str`` that encodes as UTF-8 (no lone surrogate) and holds no
    NUL character (PostgreSQL's text cannot).
    """
    if not isinstance(namespace, str) or not namespace:
        raise ValueError(f"namespace must be a non-empty str, got {ascii(namespace)}")
    try:
        namespace.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"namespace must be encodable as UTF-8, got {ascii(namespace)} ({exc.reason} at index {exc.start})"
        ) from None
    if "\0" in namespace:
        raise ValueError(f"namespace must not hold a NUL character, got {ascii(namespace)}")
    return namespace


def _check_arguments(
    namespace: str, max_records: int, flush_interval: float, shutdown_timeout: float, max_pending: int
) -> None:
    check_namespace(namespace)
    for name, value in (("max_records", max_records), ("max_pending", max_pending)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if not 0 <= max_records <= MAX_RECORDS:
        raise ValueError(f"max_records must be >= 0 (0 means no cap) and < 2**63, got {max_records!r}")
    if max_pending < 1:
        raise ValueError(f"max_pending must be >= 1, got {max_pending!r}")
    for name, seconds in (("flush_interval", flush_interval), ("shutdown_timeout", shutdown_timeout)):
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise TypeError(f"{name} must be a number of seconds, got {seconds!r}")
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"{name} must be a finite number of seconds > 0, got {seconds!r}")


@_ki_protected
async def _uninterrupted(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``await fn()`` to its end, shielded from cancellation and from ``KeyboardInterrupt``.

    Cleanup that must finish (the close, releasing the backend) runs here. Shielding is not
    enough: Trio delivers a deferred ``KeyboardInterrupt`` to the main task at its next
    checkpoint even inside a shielded scope. So ``fn`` runs in a child task, which never gets
    one, while this task waits for it; a ``KeyboardInterrupt`` delivered meanwhile is kept and
    raised once ``fn`` has finished (a close is bounded by ``shutdown_timeout``). Otherwise
    returns ``fn``'s value or raises its exception.
    """
    result: outcome.Outcome[T] | None = None
    done = trio.Event()

    @_ki_protected  # a new task does not inherit its spawner's protection
    async def run() -> None:
        nonlocal result
        result = await outcome.acapture(fn)
        done.set()  # the last step: the task has ended when the waiter resumes

    interrupt: BaseException | None = None
    with trio.CancelScope(shield=True):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, name=f"mcstore._uninterrupted({getattr(fn, '__qualname__', fn)})")
            while not done.is_set():
                try:
                    await done.wait()
                except KeyboardInterrupt as exc:
                    interrupt = exc
    assert result is not None
    if interrupt is not None:
        if isinstance(result, outcome.Error):
            interrupt.__context__ = result.error
        raise interrupt
    return result.unwrap()


def _not_an_error(exc: BaseException) -> bool:
    """A leaf that is not an error of the store: ``KeyboardInterrupt``, ``SystemExit``, ...

    Never to be wrapped in :class:`~mcstore.StoreError`: the caller's ``except
    KeyboardInterrupt`` must see it, and its ``except Exception`` must not swallow it.
    """
    return not isinstance(exc, (Exception, BaseExceptionGroup, trio.Cancelled))


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _leaf_cancelled(group: BaseExceptionGroup[trio.Cancelled]) -> trio.Cancelled:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    assert isinstance(exc, trio.Cancelled)
    return exc


@asynccontextmanager
@_ki_protected
async def open_store(
    path: str | os.PathLike[str] | Backend,
    *,
    namespace: str = "default",
    max_records: int = DEFAULT_MAX_RECORDS,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    max_pending: int = DEFAULT_MAX_PENDING,
    synchronous: str = "FULL",
) -> AsyncIterator[MissionControlStore]:
    """Open the mission control store of ``namespace`` in the SQLite file ``path``.

    ``async with open_store(path) as store:`` yields a :class:`MissionControlStore` that owns a
    nursery with the store's background tasks. ``path`` may also be a ``postgresql://`` (or
    ``postgres://``) URL, for a :class:`~mcstore.PostgresBackend` on that server, or a
    :class:`~mcstore.backends.Backend` (for example :class:`~mcstore.testing.MemoryBackend`); then
    ``synchronous`` is ignored.

    Leaving the block, in any way, closes the store: it refuses new results, drains the
    intake, and runs a final flush of everything accepted, shielded from cancellation and
    bounded by ``shutdown_timeout``. Then every task and SQLite call of the store has ended,
    and the namespace is unlocked. An exception from the block propagates as itself (never
    wrapped in an ``ExceptionGroup``); if results could not be persisted it is logged at ERROR.
    On a normal exit, results that could not be persisted make it raise
    :class:`~mcstore.FlushError`; either way they are in :attr:`~MissionControlStore.unpersisted`.
    A failure of the store's own tasks surfaces as :class:`~mcstore.StoreError`.

    Ctrl-C: ``trio.run`` needs no special flag. A ``KeyboardInterrupt`` during the block leaves
    it as itself, never as :class:`~mcstore.StoreError` or inside a group, after the usual
    close: on a healthy database every accepted result is durable, otherwise the rest is in
    :attr:`~MissionControlStore.unpersisted`. A further Ctrl-C while the close runs does not
    cut it short (it is bounded by ``shutdown_timeout``); it is raised when the close ends.

    Args:
        path: An SQLite file, a ``postgresql://`` URL, or a :class:`~mcstore.backends.Backend`.
        namespace: Whose results: a non-empty str that encodes as UTF-8 and holds no NUL
            (:func:`check_namespace`). One store at a time per namespace.
        max_records: Keep at most this many results, the newest (lnd's ``MaxMcHistory``);
            0 keeps all. At most :data:`MAX_RECORDS` (``2**63 - 1``), on every backend.
        flush_interval: Seconds from the first pending result to its flush.
        shutdown_timeout: Seconds the close may spend on its final flush.
        max_pending: Results that may wait for a flush before :meth:`~MissionControlStore.add_result`
            raises :class:`~mcstore.StoreBusy`.
        synchronous: SQLite's ``PRAGMA synchronous``, one of ``OFF``, ``NORMAL``, ``FULL``
            (every flush durable on power loss) or ``EXTRA``; ignored for other backends.

    Raises:
        StoreLocked: At once, if the namespace is open in another store (in any process).
        StoreError: A file that is not SQLite (left untouched), or of a newer schema; a file or
            directory the process may not write; a server that refuses the connection or the
            privileges the store needs. No error or log line shows a password of ``path``.
        ValueError: A bad argument, before anything is opened, naming the value: a location
            that is not durable storage (``''``, ``':memory:'``, a ``file:`` URI; see
            :func:`~mcstore.backends.classify_location`), a bad ``namespace``, a ``max_records``
            outside ``0 ..`` :data:`MAX_RECORDS`, a negative or non-finite time.
        TypeError: An argument of the wrong type, naming the value.
        FlushError: Leaving the block normally while results could not be persisted.
    """
    _check_arguments(namespace, max_records, flush_interval, shutdown_timeout, max_pending)
    backend = backend_for_path(path, synchronous=synchronous)
    try:
        stored = await backend.open(namespace, max_records)
    except BaseException:
        await _uninterrupted(backend.aclose)
        raise
    store = MissionControlStore(
        backend,
        namespace=namespace,
        max_records=max_records,
        flush_interval=flush_interval,
        shutdown_timeout=shutdown_timeout,
        max_pending=max_pending,
        stored=stored,
    )
    logger.info(
        "Opened mission control store: namespace=%r stored=%d max_records=%d flush_interval=%s",
        namespace, stored, max_records, flush_interval,
    )
    body_exc: BaseException | None = None
    internal: BaseException | None = None
    closed_here = False
    try:
        async with trio.open_nursery() as nursery:
            await store._start(nursery)
            try:
                yield store
            except BaseException as exc:
                # Kept aside and re-raised below, outside the nursery, so that it comes out
                # as itself rather than inside an ExceptionGroup.
                body_exc = exc
            closed_here = await store._close()
            if not closed_here:
                # Another task's aclose() is closing the store: let it finish its final
                # flush before the block tears the tasks and the backend down.
                await _uninterrupted(store._closed_event.wait)
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        _, internal = group.split(trio.Cancelled)
        if internal is None and body_exc is None:
            # Only cancellation, from outside, while closing: let it through unwrapped.
            raise _leaf_cancelled(group) from None
    finally:
        if not store.closed:
            # Start-up failed, or a task crashed before the close could run.
            await _uninterrupted(backend.aclose)
            store._finish()
    if internal is not None:
        if body_exc is not None and not isinstance(body_exc, trio.Cancelled):
            logger.error("Mission control store task failed", exc_info=internal)
            raise body_exc
        assert isinstance(internal, BaseExceptionGroup)
        fatal, _ = internal.split(_not_an_error)
        if fatal is not None:
            # A KeyboardInterrupt (or SystemExit) that reached the nursery: never wrapped.
            raise _first_leaf(fatal) from None
        raise StoreError("mission control store background task failed") from internal
    if body_exc is not None:
        raise body_exc
    if closed_here and store.unpersisted:
        raise FlushError(
            f"{len(store.unpersisted)} accepted results could not be persisted before closing; "
            "they are in store.unpersisted"
        )
