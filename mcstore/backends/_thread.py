"""One persistent worker thread per backend, and the KI-safe hand-off from Trio to it.

A backend whose driver blocks (``sqlite3``, a synchronous PostgreSQL connection) runs every call
in its own :class:`WorkerThread`: one OS thread, started by the first call (the backend's
``open``) and ended, joined, by :meth:`WorkerThread.aclose`. One long-lived thread instead of
one thread-cache round trip per call, and every call of a connection on the same thread.

The contract of :meth:`WorkerThread.run` is that of ``trio.to_thread.run_sync(fn,
abandon_on_cancel=False)``, plus one thing that the public API cannot do: cancelling the
awaiting task calls the backend's ``on_cancel()`` (which interrupts the statement) and then
still waits for ``fn``'s own outcome, so the caller always learns whether a transaction
committed. Nothing is ever abandoned: when ``run`` returns or raises, ``fn`` has finished and the
thread is idle.

The hand-off is protected from ``KeyboardInterrupt`` (``trio.lowlevel.enable_ki_protection``): a
Ctrl-C can never make the awaiting task leave while its call still runs in the thread (the
thread would later reschedule a task that had exited: a ``TrioInternalError``). Trio delivers
the interrupt to the main task at its next checkpoint instead, after the call.

**Lending the GIL.** The thread gives up the GIL around every blocking call of its driver
(each SQLite statement, each wait on a socket) and must take it back afterwards. While the Trio
thread is busy in Python, CPython lets the waiting thread ask for the GIL only after it has
waited ``sys.getswitchinterval()`` (5 ms) *without anyone taking the GIL in between*; but a busy
Trio loop drops and retakes the GIL at every ``epoll_wait(0)``, which restarts that wait. So the
thread starved: under ``mcstore demo`` a flush of 200 rows took longer than 20 seconds. Once a
call has been in flight for :data:`GIL_LEND_AFTER`, each turn of a busy event loop (one with
tasks ready to run) therefore sleeps for :data:`GIL_LEND_SECONDS`, long enough for the waiting
thread to take the GIL. An idle loop (one about to block in ``epoll_wait``) lends nothing: it
gives the GIL up anyway.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Final, Generic, TypeVar

import outcome
import trio

__all__ = ["GIL_LEND_SECONDS", "THREAD_NAME_PREFIX", "WorkerThread", "acquire_promptly", "note_yields", "yielded"]

logger = logging.getLogger("mcstore")

T = TypeVar("T")

THREAD_NAME_PREFIX: Final = "mcstore-"
"""Every worker thread's name starts with this, so that a test can find them with
``threading.enumerate()``."""


async def acquire_promptly(lock: trio.Lock) -> None:
    """``await lock.acquire()``, but without a schedule point when ``lock`` is free.

    Trio's ``Lock.acquire`` yields to the scheduler even when the lock is free: in
    :meth:`WorkerThread.run` that turn let the store's other tasks run before the hand-off to
    the thread. The caller must reach a schedule point on every path after it, as ``run`` does
    when it waits for the thread. (It also has no schedule point at all when the lock is free,
    which :meth:`WorkerThread.aclose` relies on: a Ctrl-C cannot come between taking the lock
    and closing.)

    Same contract otherwise: raises ``Cancelled`` without acquiring if the scope is cancelled;
    a contended lock is waited for in FIFO order. (A free ``trio.Lock`` has no waiters: a
    release hands it straight to the first of them, so taking a free one jumps no queue.)
    """
    if lock.locked():
        await lock.acquire()
        return
    await trio.lowlevel.checkpoint_if_cancelled()
    lock.acquire_nowait()


_YIELDED: Final[contextvars.ContextVar[bool]] = contextvars.ContextVar("mcstore_worker_yielded", default=False)
"""Set in the calling task's context when :meth:`WorkerThread.run` is about to yield (see :func:`note_yields`)."""


def note_yields() -> contextvars.Token[bool]:
    """Start noting whether the calling task reaches a schedule point of :meth:`WorkerThread.run`
    (its wait for the thread, or the turn it takes when closed); give the token to :func:`yielded`.

    The note is carried by the task's context, so it goes through any wrapper of a backend: a
    caller that must be a schedule point (the store's ``flush()``) can skip a turn of the
    scheduler of its own when the backend's call took one, and take one when it did not.
    """
    return _YIELDED.set(False)


def yielded(token: contextvars.Token[bool]) -> bool:
    """Whether the calling task reached a schedule point of :meth:`WorkerThread.run` since
    :func:`note_yields` gave ``token``; stops noting (call it once, in the same task)."""
    seen = _YIELDED.get()
    _YIELDED.reset(token)
    return seen


class _Job(Generic[T]):
    """One call handed to the thread: what to run, and how to hand its outcome back to Trio."""

    __slots__ = ("fn", "deliver")

    def __init__(self, fn: Callable[[], T], deliver: Callable[[outcome.Outcome[T]], None]) -> None:
        self.fn = fn
        self.deliver = deliver


GIL_LEND_SECONDS: Final = 50e-6
"""How long a busy event loop sleeps, once per turn, while a call is in flight: the time the
waiting thread needs to wake and take the GIL, with a margin, yet short enough that the loop's
own work (the demo's throughput) is not slowed by it."""

GIL_LEND_AFTER: Final = 1e-3
"""A call lends nothing during its first millisecond: most calls end sooner, and a sleep would
only delay them (Linux's timer slack stretches a 50 us sleep to about 100 us)."""


class _LendTheGil(trio.abc.Instrument):
    """Installed in the Trio run for the thread's lifetime: see "Lending the GIL" above."""

    __slots__ = ("_worker",)

    def __init__(self, worker: WorkerThread) -> None:
        self._worker = worker

    def before_io_wait(self, timeout: float) -> None:
        # timeout 0: tasks are ready, so the loop would not block and give the GIL up. Only
        # while fn runs: not in the turn that resumes the caller once the outcome is delivered.
        worker = self._worker
        if timeout <= 0 and worker.busy and time.monotonic() - worker._handed_at >= GIL_LEND_AFTER:
            worker.gil_lent += 1
            time.sleep(GIL_LEND_SECONDS)


# Put in the queue by aclose(): the thread delivers it, then ends.
_STOP: Final = object()


class WorkerThread:
    """A dedicated OS thread that runs blocking calls one at a time, for one backend.

    ``name`` names the thread (prefixed with ``"mcstore-"``, for ``threading.enumerate()``). The
    thread starts at the first :meth:`run` and ends at :meth:`aclose`. Use it from one Trio run.
    """

    def __init__(self, name: str) -> None:
        self.name: Final = name if name.startswith(THREAD_NAME_PREFIX) else THREAD_NAME_PREFIX + name
        self._jobs: queue.SimpleQueue[_Job[object] | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lender: _LendTheGil | None = None
        self._serial = trio.Lock()
        self._closed = False
        self._busy = False
        self._handed_at = 0.0
        self.calls_in_flight = 0
        """Calls handed to the thread and not finished yet: 0 whenever no :meth:`run` is awaited."""
        self.calls = 0
        """Calls run since the thread started (for tests: one thread serves them all)."""
        self.gil_lent = 0
        """Turns of a busy event loop that slept to let this thread take the GIL (see the
        module's "Lending the GIL"); for tests and diagnostics."""

    @property
    def alive(self) -> bool:
        """True while the OS thread exists: from the first :meth:`run` until :meth:`aclose`."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def busy(self) -> bool:
        """True from the hand-off of a call until its ``fn`` has finished in the thread: always
        False once :meth:`run` has returned or raised (nothing is abandoned)."""
        return self._busy

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has begun; :meth:`run` then raises."""
        return self._closed

    def _serve(self) -> None:
        """The thread's loop: run each job, hand its outcome back, until ``_STOP``."""
        while True:
            job = self._jobs.get()
            if isinstance(job, _Job):
                # _busy was set by whoever handed the job over (run() or aclose()).
                try:
                    result = outcome.capture(job.fn)
                finally:
                    self._busy = False
                job.deliver(result)
                continue
            assert job is _STOP
            return

    @trio.lowlevel.enable_ki_protection
    async def run(self, fn: Callable[[], T], *, on_cancel: Callable[[], None] | None = None) -> T:
        """Run ``fn()`` in the thread and return its value (or raise its exception).

        Calls are serialised: one runs at a time, in the order they were awaited.

        Cancellation: if the calling scope is already cancelled, raises ``Cancelled`` before
        ``fn`` starts. If the task is cancelled (or a deferred ``KeyboardInterrupt`` reaches it)
        while ``fn`` runs or waits for the thread, ``on_cancel()`` is called at once, from the
        Trio thread (it should make ``fn`` stop soon, e.g. ``sqlite3.Connection.interrupt()``),
        and ``run`` keeps waiting for ``fn``'s own outcome: nothing is abandoned. Then, if ``fn``
        returned, its value is returned (say, a committed transaction) and the cancellation is
        raised at the caller's next checkpoint; if ``fn`` raised an ``Exception`` (say, because
        it was interrupted), the cancellation is raised instead of it. ``on_cancel`` must be
        quick, must not raise, and may be called more than once.

        Raises ``trio.ClosedResourceError`` once :meth:`aclose` has begun.
        """
        # Promptly: the wait for the thread below is this call's schedule point.
        await acquire_promptly(self._serial)
        try:
            # Cancelled while it waited for a held lock, after the lock was handed over: stop
            # here, before fn starts (no schedule point unless cancelled).
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._closed:
                _YIELDED.set(True)
                await trio.lowlevel.cancel_shielded_checkpoint()  # still a schedule point
                raise trio.ClosedResourceError(f"worker thread {self.name} is closed")
            if self._thread is None:
                thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                thread.start()  # if this raises, nothing is left half set up
                self._thread = thread
                self._lender = _LendTheGil(self)
                trio.lowlevel.add_instrument(self._lender)
            task = trio.lowlevel.current_task()
            token = trio.lowlevel.current_trio_token()
            cancel_requested = False

            def deliver(result: outcome.Outcome[T]) -> None:
                # In the worker thread. The task is waiting for certain (its abort always
                # fails), and the run outlives it, so this cannot meet a finished task or run.
                token.run_sync_soon(trio.lowlevel.reschedule, task, result)

            def abort(_: object) -> trio.lowlevel.Abort:
                nonlocal cancel_requested
                cancel_requested = True
                if on_cancel is not None:
                    on_cancel()
                # FAILED: keep waiting for the thread, so that nothing outlives this call.
                return trio.lowlevel.Abort.FAILED

            self.calls_in_flight += 1
            self.calls += 1
            try:
                # No checkpoint between handing the job over and waiting for its outcome; and
                # KI protection keeps a KeyboardInterrupt from being raised in between.
                self._busy = True  # here, not in the thread: the thread may wait for the GIL
                _YIELDED.set(True)  # the wait below always yields
                self._handed_at = time.monotonic()
                self._jobs.put(_Job(fn, deliver))
                try:
                    value: T = await trio.lowlevel.wait_task_rescheduled(abort)
                except Exception:
                    if cancel_requested:
                        # The failure comes from our own interrupt: report the cancellation.
                        await trio.lowlevel.checkpoint()
                    raise
                return value
            finally:
                self.calls_in_flight -= 1
        finally:
            self._serial.release()

    @trio.lowlevel.enable_ki_protection
    async def aclose(self) -> None:
        """End the thread after the call in progress (if any), and join it. Idempotent.

        Shielded from cancellation: closing is cleanup, and must finish in a cancelled scope.
        When it returns, the OS thread has ended. Later :meth:`run` calls raise
        ``trio.ClosedResourceError``.
        """
        with trio.CancelScope(shield=True):
            # A Ctrl-C that Trio delivers to this task while it waits for the lock (a call in
            # progress) must not stop the close: it is kept, and raised once the thread has ended.
            interrupt: BaseException | None = None
            while True:
                try:
                    await acquire_promptly(self._serial)
                    break
                except KeyboardInterrupt as exc:  # raised before the lock was taken: try again
                    interrupt = interrupt or exc
            try:
                await self._close_locked()
            finally:
                self._serial.release()
            if interrupt is not None:
                raise interrupt

    async def _close_locked(self) -> None:
        """aclose() with the lock held."""
        if self._closed:
            return
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is None:
            return
        task = trio.lowlevel.current_task()
        token = trio.lowlevel.current_trio_token()

        def deliver(result: outcome.Outcome[None]) -> None:
            token.run_sync_soon(trio.lowlevel.reschedule, task, result)

        # The thread hands back this no-op, then reaches _STOP and returns. It needs the
        # GIL for that too: busy, so that a busy loop lends it (see "Lending the GIL").
        self._busy = True
        self._handed_at = time.monotonic()
        self._jobs.put(_Job(lambda: None, deliver))
        self._jobs.put(_STOP)
        await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
        # The thread has run its last job and is returning: the join is immediate.
        thread.join()
        lender, self._lender = self._lender, None
        if lender is not None:
            try:
                trio.lowlevel.remove_instrument(lender)
            except KeyError:  # pragma: no cover - Trio dropped it (it raised), or another run
                pass
