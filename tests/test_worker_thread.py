"""The persistent worker thread (mcstore/backends/_thread.py), alone and under SQLiteBackend.

Real threads, so the real clock. Every wait between the threads is an explicit event; the
only timeouts are the budgets that turn a hang into a failure.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import trio
import trio.testing
from factories import result
from shutdown_checks import assert_nothing_running, store_threads
from test_sqlite_backend import add_slow_trigger

from mcstore import FlushError, FlushOutcome, PaymentResult, SQLiteBackend, StoreError, open_store
from mcstore.backends import _thread as thread_module
from mcstore.backends._thread import GIL_LEND_SECONDS, THREAD_NAME_PREFIX, WorkerThread, _Job, acquire_promptly

BUDGET = 30.0  # real seconds: a hang fails the test instead of stalling CI
WAIT = 10.0  # real seconds a worker-side wait may take before the test gives up


async def test_one_thread_runs_every_call_in_order_and_ends_at_aclose() -> None:
    worker = WorkerThread("test")
    assert worker.name == THREAD_NAME_PREFIX + "test"
    assert not worker.alive  # started by the first call, not before
    seen: list[tuple[int, int, str]] = []

    def call(i: int) -> int:
        seen.append((i, threading.get_ident(), threading.current_thread().name))
        return i * i

    with trio.fail_after(BUDGET):
        assert [await worker.run(lambda i=i: call(i)) for i in range(5)] == [0, 1, 4, 9, 16]
        assert worker.alive and worker.calls == 5 and worker.calls_in_flight == 0
        assert [i for i, _, _ in seen] == list(range(5))
        assert len({ident for _, ident, _ in seen}) == 1  # one thread, reused
        assert seen[0][1] != threading.get_ident()  # and not the Trio thread
        assert {name for _, _, name in seen} == {worker.name}
        assert store_threads() == [worker.name]

        with pytest.raises(ZeroDivisionError):
            await worker.run(lambda: 1 // 0)
        assert await worker.run(lambda: "still serving") == "still serving"

        await worker.aclose()
    assert not worker.alive and worker.closed
    assert store_threads() == []
    await worker.aclose()  # idempotent
    with pytest.raises(trio.ClosedResourceError, match="mcstore-test"):
        await worker.run(lambda: None)


async def test_concurrent_calls_are_serialised() -> None:
    worker = WorkerThread("serial")
    running = 0
    overlap: list[int] = []

    def call() -> None:
        nonlocal running
        running += 1
        overlap.append(running)
        threading.Event().wait(0.001)  # give another call the chance to overlap, if it could
        running -= 1

    with trio.fail_after(BUDGET):
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(worker.run, call)
        await worker.aclose()
    assert overlap == [1] * 20


async def test_aclose_works_in_a_cancelled_scope_and_without_a_call() -> None:
    never_used = WorkerThread("unused")
    with trio.CancelScope() as scope:
        scope.cancel()
        await never_used.aclose()
    assert never_used.closed and not never_used.alive

    worker = WorkerThread("cancelled-close")
    await worker.run(lambda: None)
    with trio.fail_after(BUDGET):
        with trio.CancelScope() as scope:
            scope.cancel()
            await worker.aclose()  # shielded: it still ends the thread
    assert not worker.alive and store_threads() == []


async def test_a_call_in_an_already_cancelled_scope_never_starts() -> None:
    worker = WorkerThread("precancelled")
    ran: list[bool] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        await worker.run(lambda: ran.append(True))
    assert scope.cancelled_caught and ran == [] and worker.calls == 0
    await worker.aclose()


async def test_cancel_interrupts_and_waits_for_the_call_that_then_fails() -> None:
    # The call stops because of on_cancel (as an interrupted SQLite statement does): the
    # caller sees its cancellation, and only after the call has finished in the thread.
    worker = WorkerThread("cancel-fails")
    interrupt = threading.Event()
    started = trio.Event()
    token = trio.lowlevel.current_trio_token()
    finished: list[str] = []

    def call() -> None:
        token.run_sync_soon(started.set)
        try:
            if not interrupt.wait(WAIT):
                raise AssertionError("on_cancel was never called")
            raise RuntimeError("interrupted")
        finally:
            finished.append("call")

    with trio.fail_after(BUDGET):
        async with trio.open_nursery() as nursery:
            with trio.CancelScope() as scope:
                nursery.start_soon(lambda: _cancel_when(started, scope))
                await worker.run(call, on_cancel=interrupt.set)
        assert scope.cancelled_caught  # the cancellation, not the RuntimeError
        assert finished == ["call"]  # the thread finished its work before run() returned
        assert worker.calls_in_flight == 0 and not worker.busy
        await worker.aclose()


async def test_cancel_after_the_call_committed_returns_its_value() -> None:
    # The call finishes normally although cancelled (a transaction that had committed): the
    # caller learns the value, and its cancellation hits at the next checkpoint.
    worker = WorkerThread("cancel-commits")
    cancelled = threading.Event()
    started = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def call() -> str:
        token.run_sync_soon(started.set)
        if not cancelled.wait(WAIT):
            raise AssertionError("on_cancel was never called")
        return "committed"

    got: list[str] = []
    with trio.fail_after(BUDGET):
        async with trio.open_nursery() as nursery:
            with trio.CancelScope() as scope:
                nursery.start_soon(lambda: _cancel_when(started, scope))
                got.append(await worker.run(call, on_cancel=cancelled.set))
                await trio.lowlevel.checkpoint()
                got.append("not reached")
        assert got == ["committed"] and scope.cancelled_caught
        assert worker.calls_in_flight == 0 and not worker.busy
        await worker.aclose()


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


@pytest.mark.usefixtures("default_sigint")
@pytest.mark.parametrize("restrict", [False, True], ids=["plain", "restrict_ki_to_checkpoints"])
def test_ctrl_c_during_a_call_waits_for_it_and_then_raises_keyboard_interrupt(restrict: bool) -> None:
    # A SIGINT that arrives while the main task waits for its call: the call is asked to stop
    # (on_cancel), run() still waits for it, and KeyboardInterrupt comes out of trio.run after
    # the thread finished. With Python's default SIGINT handler (the default_sigint fixture), Trio
    # installs its own, as in a program.
    worker, got, finished, _ = _ctrl_c_during_a_call("ctrl-c", lambda: "committed", restrict=restrict, checkpoint=True)
    assert got == ["committed"] and finished == ["call"]
    assert worker.calls_in_flight == 0 and not worker.alive


def _ctrl_c_during_a_call(
    name: str, end: Callable[[], object], *, restrict: bool = False, checkpoint: bool = False
) -> tuple[WorkerThread, list[object], list[str], KeyboardInterrupt]:
    """In a fresh trio.run, the main task runs a call that sends SIGINT and waits for on_cancel,
    then ends with ``end()``; then (with ``checkpoint``) one checkpoint, and aclose() in a
    finally. Returns the worker, what run() returned, the calls that ended, and the
    KeyboardInterrupt that trio.run raised (the test fails if it raised none)."""
    worker = WorkerThread(name)
    asked_to_stop = threading.Event()
    finished: list[str] = []
    got: list[object] = []

    def call() -> object:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the main task waits for this call
        try:
            if not asked_to_stop.wait(WAIT):
                raise AssertionError("on_cancel was never called")
            return end()
        finally:
            finished.append("call")

    async def main() -> None:
        try:
            got.append(await worker.run(call, on_cancel=asked_to_stop.set))
            if checkpoint:
                await trio.lowlevel.checkpoint()
        finally:
            await worker.aclose()

    with pytest.raises(KeyboardInterrupt) as raised:
        trio.run(main, restrict_keyboard_interrupt_to_checkpoints=restrict)
    return worker, got, finished, raised.value


# -- under SQLiteBackend -----------------------------------------------------------------------


async def test_sqlite_backend_uses_one_thread_for_all_its_calls(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "mc.sqlite")
    with trio.fail_after(BUDGET):
        async with open_store(backend, max_records=0, flush_interval=0.001) as store:
            assert store_threads() == [backend.worker.name]
            (thread,) = [t for t in threading.enumerate() if t.name == backend.worker.name]
            for i in range(10):
                store.add_result(result(i))
                await store.flush()
                assert len(await store.fetch_all()) == i + 1
            # open + 10 flushes + 10 fetches, all on the one thread started at open.
            assert backend.worker.calls >= 21
            assert [t for t in threading.enumerate() if t.name == backend.worker.name] == [thread]
    assert not thread.is_alive()
    assert_nothing_running(backend)


async def test_no_thread_of_the_store_is_alive_after_the_block(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"
    with trio.fail_after(BUDGET):
        for exit in ("normal", "exception", "cancelled"):
            with trio.CancelScope() as scope:
                with pytest.raises(ZeroDivisionError) if exit == "exception" else contextlib.nullcontext():
                    async with open_store(path, flush_interval=0.001) as store:
                        store.add_result(result(len(exit)))
                        await store.flush()
                        assert len(store_threads()) == 1
                        if exit == "exception":
                            1 // 0  # noqa: B018
                        if exit == "cancelled":
                            scope.cancel()
                            await trio.sleep_forever()
            assert store_threads() == [], exit
    # A failed open ends its thread too.
    (tmp_path / "not-sqlite").write_bytes(b"not a database" * 10)
    with pytest.raises(StoreError):
        async with open_store(tmp_path / "not-sqlite"):
            pass
    assert store_threads() == []


async def test_a_cancelled_flush_leaves_no_call_in_flight_and_its_thread_finished(tmp_path: Path) -> None:
    # Issue 10 §5: a worker thread abandoned on cancel was caught only by a segfault. Here the
    # caller's flush is cancelled while its statement runs (a trigger of over a second):
    # when the cancellation reaches the caller, the call is over and the thread is idle.
    path = tmp_path / "mc.sqlite"
    async with open_store(path):
        pass
    add_slow_trigger(path)
    backend = SQLiteBackend(path)
    with trio.fail_after(BUDGET), pytest.raises(FlushError, match="1 accepted results"):
        async with open_store(backend, flush_interval=60.0, shutdown_timeout=0.5) as store:
            store.add_result(result(1))
            with trio.move_on_after(0.2) as scope:
                await store.flush()
            assert scope.cancelled_caught
            assert backend.calls_in_flight == 0
            assert not backend.worker.busy  # the thread finished the interrupted statement
            assert store.stats().pending == 1  # rolled back, kept for the final flush
            assert backend.worker.alive  # and it stays, for the next call
    assert store.unpersisted == (result(1),)
    assert_nothing_running(backend)


async def test_a_busy_event_loop_lends_the_gil_so_the_thread_is_not_starved() -> None:
    """A thread that gives the GIL up and takes it back many times (as a flush does, once per
    SQLite statement) finishes within a few turns of a busy loop per hand-back, not after
    hundreds: without the lending, CPython's switch interval restarts at every ``epoll_wait(0)``
    of a busy Trio loop, and the thread starves (mcstore demo's flushes took seconds)."""
    worker = WorkerThread("gil")
    hand_backs = 100
    budget = 10 * hand_backs  # turns of the busy loop; starving takes hundreds per hand-back

    def job() -> int:
        conn = sqlite3.connect(":memory:")
        try:
            for _ in range(hand_backs):
                conn.execute("SELECT 1")  # gives the GIL up around the statement, takes it back
        finally:
            conn.close()
        return hand_backs

    turns = 0
    finished = trio.Event()

    async def busy_loop() -> None:
        # Python work between checkpoints, as a producer of results does.
        nonlocal turns
        while not finished.is_set() and turns < 2 * budget:
            sum(i * i for i in range(2000))
            turns += 1
            await trio.lowlevel.checkpoint()

    with trio.fail_after(BUDGET):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy_loop)
            await trio.lowlevel.checkpoint()  # the busy loop runs from here on
            assert await worker.run(job) == hand_backs
            finished.set()
        lent = worker.gil_lent
        await worker.aclose()
    assert turns <= budget, f"the thread needed {turns} turns of the busy loop for {hand_backs} hand-backs"
    assert lent <= turns


async def test_a_busy_event_loop_lends_the_gil_while_a_call_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lending itself (issue 17: the starvation test above passes without any, where the
    thread is not starved anyway). Once a call has been in flight for ``GIL_LEND_AFTER``, each
    turn of a busy loop sleeps ``GIL_LEND_SECONDS`` in the Trio thread; once the call is over,
    nothing is lent."""
    worker = WorkerThread("lend")
    sleeps: list[tuple[float, bool, bool]] = []

    class SpyTime:
        """The ``time`` module as ``_thread`` sees it, recording each sleep: how long, whether
        a call was in flight, and whether the sleeping thread is the Trio thread."""

        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds: float) -> None:
            sleeps.append((seconds, worker.busy, threading.current_thread() is trio_thread))
            time.sleep(seconds)

    trio_thread = threading.current_thread()
    monkeypatch.setattr(thread_module, "time", SpyTime)
    lends_wanted = 5
    release = threading.Event()
    turns = 0

    async def busy_loop() -> None:
        # Ready to run at every turn, so the loop never blocks in epoll_wait: it is busy.
        nonlocal turns
        while not release.is_set() and turns < 200_000:
            turns += 1
            if worker.gil_lent >= lends_wanted:
                release.set()  # ends the call, after the loop was seen lending
            await trio.lowlevel.checkpoint()

    with trio.fail_after(BUDGET):
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(busy_loop)
                await worker.run(lambda: release.wait(WAIT))
            assert release.is_set(), f"no lending in {turns} turns of a busy loop"
            lent = worker.gil_lent
            assert lent >= lends_wanted
            assert sleeps == [(GIL_LEND_SECONDS, True, True)] * lent
            for _ in range(100):  # busy, but no call in flight: nothing to lend
                await trio.lowlevel.checkpoint()
            assert worker.gil_lent == lent
        finally:
            await worker.aclose()


async def test_a_call_cancelled_as_the_lock_is_handed_to_it_never_runs() -> None:
    """A call waiting for the lock whose scope is cancelled after the lock was handed to it
    (trio's Lock gives it to the first waiter on release) but before it resumed: ``run`` must
    stop there, and ``fn`` never runs. (Issue 17: without the check, it ran.)"""
    worker = WorkerThread("handed")
    release = threading.Event()
    started = trio.Event()
    token = trio.lowlevel.current_trio_token()
    ran: list[str] = []
    second = trio.CancelScope()

    def first_call() -> str:
        token.run_sync_soon(started.set)
        if not release.wait(WAIT):
            raise AssertionError("never released")
        return "first"

    async def first_then_cancel_the_second() -> None:
        assert await worker.run(first_call) == "first"
        # run() released the lock, handing it to the waiting call; no checkpoint since.
        second.cancel()

    async def second_waits_for_the_lock() -> None:
        with second:
            await worker.run(lambda: ran.append("second"))

    with trio.fail_after(BUDGET):
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(first_then_cancel_the_second)
                await started.wait()
                nursery.start_soon(second_waits_for_the_lock)
                await trio.testing.wait_all_tasks_blocked()  # the second call waits for the lock
                release.set()
            assert second.cancelled_caught
            assert ran == [] and worker.calls == 1 and not worker._serial.locked()
        finally:
            await worker.aclose()


@pytest.mark.usefixtures("default_sigint")
def test_run_is_ki_protected_between_the_hand_off_and_the_wait() -> None:
    """A Ctrl-C right after the job is handed to the thread, before ``run`` waits for it:
    KI protection defers it (here, under plain ``trio.run``), so ``run`` still waits for the
    call and returns its value, and KeyboardInterrupt comes at the next checkpoint. Without
    protection it is raised there, and the task leaves a call running behind it. (Issue 17.)"""
    worker = WorkerThread("ki-hand-off")
    protected: list[bool] = []
    finished: list[str] = []
    got: list[str] = []

    class Jobs(queue.SimpleQueue):  # type: ignore[type-arg]
        def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
            super().put(item)
            if isinstance(item, _Job) and not protected:  # run()'s hand-off, in the Trio thread
                protected.append(trio.lowlevel.currently_ki_protected())
                signal.raise_signal(signal.SIGINT)  # the handler runs before this returns

    worker._jobs = Jobs()

    def call() -> str:
        finished.append("call")
        return "committed"

    async def main() -> None:
        try:
            got.append(await worker.run(call))
            await trio.lowlevel.checkpoint()
            got.append("not reached")
        finally:
            await worker.aclose()

    with pytest.raises(KeyboardInterrupt):
        trio.run(main)
    assert protected == [True]
    assert got == ["committed"] and finished == ["call"]
    assert worker.calls_in_flight == 0 and not worker.alive


async def test_a_thread_that_cannot_start_leaves_nothing_half_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the OS refuses the thread, the call raises, and the worker neither waits for a thread
    that never ran (aclose would hang) nor keeps its instrument in the run."""
    worker = WorkerThread("nostart")

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with trio.fail_after(BUDGET):
        with monkeypatch.context() as patch:
            patch.setattr(threading.Thread, "start", refuse)
            with pytest.raises(RuntimeError, match="can't start new thread"):
                await worker.run(lambda: None)
        assert not worker.alive and worker._lender is None
        assert await worker.run(lambda: "started on the second try") == "started on the second try"
        await worker.aclose()
    assert not worker.alive and worker._lender is None
    assert store_threads() == []


# -- acquire_promptly: the flush path's lock, without a turn of the scheduler when free --------


class _StepCounter(trio.abc.Instrument):
    """Counts the times ``task`` gives the scheduler back control (each ends one of its steps)."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.yields = 0

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.yields += 1


@pytest.mark.parametrize("prompt", [True, False])
async def test_acquire_promptly_takes_a_free_lock_without_a_schedule_point(prompt: bool) -> None:
    lock = trio.Lock()
    counter = _StepCounter(trio.lowlevel.current_task())
    trio.lowlevel.add_instrument(counter)
    try:
        if prompt:
            await acquire_promptly(lock)
        else:
            await lock.acquire()  # the calibration: Trio's own acquire yields once
    finally:
        trio.lowlevel.remove_instrument(counter)
    assert lock.locked()
    assert counter.yields == (0 if prompt else 1)
    lock.release()


async def test_acquire_promptly_in_a_cancelled_scope_raises_and_leaves_the_lock_free() -> None:
    lock = trio.Lock()
    with trio.CancelScope() as scope:
        scope.cancel()
        await acquire_promptly(lock)
    assert scope.cancelled_caught
    assert not lock.locked()


async def test_acquire_promptly_waits_for_a_held_lock_in_fifo_order() -> None:
    lock = trio.Lock()
    order: list[int] = []
    await lock.acquire()

    async def take(i: int, parked: trio.Event) -> None:
        parked.set()
        await acquire_promptly(lock)
        order.append(i)
        lock.release()

    with trio.fail_after(BUDGET):
        async with trio.open_nursery() as nursery:
            for i in range(3):
                parked = trio.Event()
                nursery.start_soon(take, i, parked)
                await parked.wait()
                await trio.testing.wait_all_tasks_blocked()
            assert order == []  # all three wait for the holder
            lock.release()
    assert order == [0, 1, 2]
    assert not lock.locked()


async def test_run_hands_its_call_to_the_thread_before_it_first_yields() -> None:
    """With the call lock free, run() gives the job to the thread before the task's first
    schedule point (which is its wait for the outcome), so no other task runs in between."""
    worker = WorkerThread("prompt")
    release = threading.Event()
    busy_at_first_yield: list[bool] = []

    class FirstYield(trio.abc.Instrument):
        def after_task_step(self, task: trio.lowlevel.Task) -> None:
            if task is me and not busy_at_first_yield:
                busy_at_first_yield.append(worker.busy)
                release.set()

    with trio.fail_after(BUDGET):
        await worker.run(lambda: None)  # the thread exists
        me = trio.lowlevel.current_task()
        instrument = FirstYield()
        trio.lowlevel.add_instrument(instrument)
        try:
            await worker.run(lambda: release.wait(WAIT))
        finally:
            trio.lowlevel.remove_instrument(instrument)
        await worker.aclose()
    assert busy_at_first_yield == [True]


async def test_flush_is_a_checkpoint_even_with_a_backend_that_never_yields() -> None:
    """The Backend protocol does not require store_results to yield; flush() must still be a
    schedule point, or a loop of add_result + flush() would starve the event loop (and the
    store's own deadlines)."""
    from mcstore.testing import MemoryBackend, MemoryDatabase

    class Eager(MemoryBackend):
        async def store_results(self, results: Sequence[PaymentResult], max_records: int) -> FlushOutcome:
            return FlushOutcome(len(results), 0, 0, len(results))  # no checkpoint

    with trio.fail_after(BUDGET):
        async with open_store(Eager(MemoryDatabase()), flush_interval=3600) as store:
            store.add_result(result(1))
            with trio.testing.assert_checkpoints():
                await store.flush()
            assert store.stats().pending == 0


class PassThrough:
    """A backend wrapper that adds nothing (as a caller's counting or logging wrapper)."""

    def __init__(self, inner: SQLiteBackend) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def store_results(self, results: Sequence[PaymentResult], max_records: int) -> FlushOutcome:
        return await self.inner.store_results(results, max_records)


@pytest.mark.parametrize("wrapped", [False, True], ids=["sqlite", "wrapped"])
async def test_a_flush_takes_one_turn_of_the_scheduler_its_wait_for_the_thread(tmp_path: Path, wrapped: bool) -> None:
    """With the flush lock free, flush() yields once: for the backend's worker thread (each
    turn of the scheduler adds to a small flush). Its lock used to take a turn of
    its own first. Through a wrapper too: the task's context carries the note that the
    backend's call yielded (see test_flush_is_a_checkpoint_even_with_a_backend_that_never_yields
    for a backend that does not)."""
    sqlite = SQLiteBackend(tmp_path / "steps.sqlite")
    steps: list[str] = []

    class Steps(trio.abc.Instrument):
        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            if task is me:
                steps.append("step")

    with trio.fail_after(BUDGET):
        async with open_store(PassThrough(sqlite) if wrapped else sqlite, flush_interval=3600) as store:  # type: ignore[arg-type]
            me = trio.lowlevel.current_task()
            store.add_result(result(1))
            await store.flush()  # the ticker armed, the intake idle: as every later flush
            store.add_result(result(2))
            instrument = Steps()
            trio.lowlevel.add_instrument(instrument)
            try:
                await store.flush()
            finally:
                trio.lowlevel.remove_instrument(instrument)
            assert store.stats().pending == 0
    assert steps == ["step"]  # resumed once: after the thread's answer


@pytest.mark.usefixtures("default_sigint")
def test_ctrl_c_during_a_call_that_then_fails_raises_keyboard_interrupt_after_it() -> None:
    # As the committed case above, but the call fails once asked to stop (an interrupted
    # statement): the KeyboardInterrupt is raised after the call ended, the failure its context.
    def interrupted() -> object:
        raise sqlite3.OperationalError("interrupted")

    worker, _, finished, raised = _ctrl_c_during_a_call("ctrl-c-fail", interrupted)
    assert finished == ["call"]
    assert isinstance(raised.__context__, sqlite3.OperationalError)
    assert worker.calls_in_flight == 0 and not worker.alive


@pytest.mark.usefixtures("default_sigint")
@pytest.mark.parametrize("restrict", [False, True], ids=["plain", "restrict_ki_to_checkpoints"])
def test_ctrl_c_pending_when_aclose_starts_still_closes_the_thread(restrict: bool) -> None:
    # The committed call returns, so the Ctrl-C is raised at the caller's next checkpoint, which
    # here is aclose() in a finally: the close must still end the thread.
    worker, got, _, _ = _ctrl_c_during_a_call("ctrl-c-close", lambda: "committed", restrict=restrict)
    assert got == ["committed"]
    assert worker.closed and not worker.alive


@pytest.mark.usefixtures("default_sigint")
def test_ctrl_c_during_a_call_that_raises_a_base_exception_is_not_lost() -> None:
    class Stop(BaseException):
        pass

    def stop() -> object:
        raise Stop

    worker, _, _, raised = _ctrl_c_during_a_call("ctrl-c-base", stop)
    assert isinstance(raised.__context__, Stop)
    assert not worker.alive
