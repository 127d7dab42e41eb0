"""Fault injection through the backend seam: the store stops in time and loses nothing.

Faults come from :class:`~mcstore.testing.FaultyBackend`, which wraps any backend: an in-Trio
:class:`~mcstore.testing.MemoryBackend` under virtual time (pytest-trio's ``autojump_clock``),
or a real :class:`~mcstore.SQLiteBackend` on the real clock. A commit that really hangs inside
SQLite is made with a trigger on the results table that runs a long join, so the statement is
running when the store interrupts it.

Every test has a time budget (``trio.fail_after``), so a hang fails instead of stalling CI.
"""

from __future__ import annotations

import os
import random
import sqlite3
from typing import Any

import factories
import pytest
import trio
import trio.testing
from shutdown_checks import (
    assert_nothing_running,
    record_store_log,
    sqlite_integrity,
    sqlite_results,
)

from mcstore import FlushError, SQLiteBackend, StoreBusy, StoreClosed, open_store
from mcstore.model import PaymentResult
from mcstore.testing import FaultyBackend, InjectedFault, MemoryBackend, MemoryDatabase, StoreModel

NS = 1e-9
VIRTUAL_BUDGET = 100_000.0
"""fail_after budget of a virtual-time test: generous, since an autojump clock reaches it at once."""
REAL_BUDGET = 30.0
CLOSE_SLACK = 1.0
"""Real seconds allowed on top of shutdown_timeout for a worker thread to notice an interrupt."""


class Boom(Exception):
    """The caller's own error."""


def results(first: int, count: int) -> list[PaymentResult]:
    return [factories.result(i) for i in range(first, first + count)]


def memory_store_backend(database: MemoryDatabase | None = None, **faults: Any) -> FaultyBackend:
    """A MemoryBackend on ``database`` behind a FaultyBackend with ``faults`` set."""
    return FaultyBackend(MemoryBackend(database), **faults)


# -- a flush that raises once, then succeeds ----------------------------------------------


async def test_flush_that_fails_once_is_retried_by_the_ticker(autojump_clock: trio.testing.MockClock) -> None:
    database = MemoryDatabase()
    backend = memory_store_backend(database, fail_next=1)
    batch = results(1, 5)
    with trio.fail_after(VIRTUAL_BUDGET), record_store_log() as log:
        async with open_store(backend, flush_interval=1.0) as store:
            for result in batch:
                store.add_result(result)
            await trio.sleep(1.5)  # the first tick's flush fails
            assert backend.faults_injected == 1
            assert store.stats().flush_failures == 1
            assert store.stats().pending == len(batch)
            assert database.results() == []
            await trio.sleep(2.0)  # the retry, after a backoff of 2 intervals, succeeds
            assert database.results() == batch
            assert store.stats().pending == 0
            assert store.stats().flushes == 1
        assert store.unpersisted == ()
        assert_nothing_running(backend)
    log.assert_ticker_stopped()


async def test_caller_flush_that_fails_once_raises_then_succeeds(autojump_clock: trio.testing.MockClock) -> None:
    database = MemoryDatabase()
    backend = memory_store_backend(database, fail_next=1)
    batch = results(1, 3)
    with trio.fail_after(VIRTUAL_BUDGET):
        async with open_store(backend, flush_interval=60.0) as store:
            for result in batch:
                store.add_result(result)
            with pytest.raises(FlushError) as info:
                await store.flush()
            assert isinstance(info.value.__cause__, InjectedFault)
            assert store.stats().pending == len(batch)  # kept, not lost
            await store.flush()
            assert database.results() == batch
            assert store.stats().pending == 0
        assert_nothing_running(backend)


async def test_raise_once_on_sqlite(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "mc.sqlite")
    backend = FaultyBackend(SQLiteBackend(path), fail_next=1)
    batch = results(1, 4)
    with trio.fail_after(REAL_BUDGET):
        async with open_store(backend, flush_interval=60.0) as store:
            for result in batch:
                store.add_result(result)
            with pytest.raises(FlushError):
                await store.flush()
            assert sqlite_results(path) == []
            await store.flush()
            assert sqlite_results(path) == batch
        assert_nothing_running(backend)
        async with open_store(path) as again:
            assert await again.fetch_all() == batch
    assert sqlite_integrity(path) == "ok"


# -- a flush that always raises -----------------------------------------------------------


@pytest.mark.parametrize("exit", ["normal", "exception"])
async def test_flush_that_always_fails(autojump_clock: trio.testing.MockClock, exit: str) -> None:
    """Close returns at shutdown_timeout; unpersisted holds exactly what is not durable."""
    database = MemoryDatabase()
    backend = memory_store_backend(database)
    durable, doomed = results(1, 3), results(10, 4)
    timeout = 5.0
    with trio.fail_after(VIRTUAL_BUDGET), record_store_log() as log:
        with pytest.raises(FlushError if exit == "normal" else Boom) as info:
            async with open_store(backend, flush_interval=1.0, shutdown_timeout=timeout) as store:
                for result in durable:
                    store.add_result(result)
                await store.flush()
                backend.fail_always = True
                for result in doomed:
                    store.add_result(result)
                await trio.sleep(10.0)  # several failed ticks, with backoff
                assert store.stats().flush_failures >= 2
                exited = trio.current_time()
                if exit == "exception":
                    raise Boom
        closed = trio.current_time()
        assert type(info.value) is (FlushError if exit == "normal" else Boom)  # never a group
        assert closed - exited == pytest.approx(timeout)
        assert store.unpersisted == tuple(doomed)
        assert store.stats().pending == len(doomed)
        assert database.results() == durable
        assert_nothing_running(backend)
        with pytest.raises(StoreClosed):
            store.add_result(factories.result(99))
    log.assert_ticker_stopped()


# -- a slow commit ------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [NS, 1.0, 5.0 - NS, 5.0, 5.0 + NS, 7.0])
async def test_slow_final_commit(autojump_clock: trio.testing.MockClock, delay: float) -> None:
    """A final flush that takes ``delay`` is waited for up to shutdown_timeout, then abandoned
    in full; at exactly the deadline it may go either way, but never half."""
    database = MemoryDatabase()
    backend = memory_store_backend(database, delay=delay)
    batch = results(1, 6)
    timeout = 5.0
    with trio.fail_after(VIRTUAL_BUDGET):
        try:
            async with open_store(backend, flush_interval=60.0, shutdown_timeout=timeout) as store:
                for result in batch:
                    store.add_result(result)
                exited = trio.current_time()
        except FlushError:
            pass
        elapsed = trio.current_time() - exited
        assert elapsed <= timeout + 1e-9
        if delay < timeout:
            assert store.unpersisted == ()
            assert elapsed == pytest.approx(delay)
        elif delay > timeout:
            assert store.unpersisted == tuple(batch)
        assert database.results() == ([] if store.unpersisted else batch)
        assert_nothing_running(backend)


async def test_slow_commit_in_flight_at_close(autojump_clock: trio.testing.MockClock) -> None:
    """Close waits for the ticker's slow flush, then flushes what came after it."""
    database = MemoryDatabase()
    backend = memory_store_backend(database, delay=2.0)
    first, second = results(1, 3), results(10, 3)
    with trio.fail_after(VIRTUAL_BUDGET):
        async with open_store(backend, flush_interval=1.0, shutdown_timeout=5.0) as store:
            for result in first:
                store.add_result(result)
            await trio.sleep(1.5)  # the tick's flush of `first` is in flight until t=3
            assert backend.calls_in_flight == 1
            for result in second:
                store.add_result(result)
            exited = trio.current_time()
        assert trio.current_time() - exited == pytest.approx(1.5 + 2.0)
        assert store.unpersisted == ()
        assert database.results() == first + second
        assert_nothing_running(backend)


# -- a commit that hangs until interrupted -------------------------------------------------


async def test_hung_commit_is_abandoned_at_shutdown_timeout(autojump_clock: trio.testing.MockClock) -> None:
    database = MemoryDatabase()
    backend = memory_store_backend(database)
    durable, hung = results(1, 2), results(10, 3)
    timeout = 2.5
    with trio.fail_after(VIRTUAL_BUDGET), record_store_log() as log:
        with pytest.raises(FlushError):
            async with open_store(backend, flush_interval=1.0, shutdown_timeout=timeout) as store:
                for result in durable:
                    store.add_result(result)
                await store.flush()
                backend.hang = True
                for result in hung:
                    store.add_result(result)
                await trio.sleep(3.0)  # the ticker's flush is hung inside the backend
                assert backend.calls_in_flight == 1
                exited = trio.current_time()
        assert trio.current_time() - exited == pytest.approx(timeout)
        assert store.unpersisted == tuple(hung)
        assert database.results() == durable
        assert_nothing_running(backend)
    log.assert_ticker_stopped()


def _install_trigger(path: str, rows_per_insert: int) -> None:
    """Make every insert into the results table run a join over ``rows_per_insert`` rows.

    SQLite checks for an interrupt while it runs the join, so the transaction is interruptible
    throughout, like a slow disk would not be but a long statement is. 10**9 rows take
    seconds to minutes: a commit that hangs until interrupted.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS spin(n INTEGER)")
        conn.execute("DELETE FROM spin")
        conn.executemany("INSERT INTO spin VALUES (?)", [(i,) for i in range(1000)])
        conn.execute("DROP TRIGGER IF EXISTS slow_insert")
        limit = max(1, rows_per_insert // 1_000_000)
        conn.execute(
            "CREATE TRIGGER slow_insert AFTER INSERT ON mc_results BEGIN "
            f"SELECT count(*) FROM spin a, spin b, spin c WHERE c.n < {limit}; END"
        )
    finally:
        conn.close()


def _drop_trigger(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS slow_insert")
    finally:
        conn.close()


async def _create_schema(path: str, stored: list[PaymentResult]) -> None:
    async with open_store(path) as store:
        for result in stored:
            store.add_result(result)


@pytest.mark.slow
async def test_hung_sqlite_commit_is_interrupted_and_rolled_back(tmp_path: os.PathLike[str]) -> None:
    """A transaction stuck in a statement is interrupted at shutdown_timeout and rolls back."""
    path = os.path.join(tmp_path, "mc.sqlite")
    durable, hung = results(1, 2), results(10, 2)
    await _create_schema(path, durable)
    _install_trigger(path, rows_per_insert=10**9)
    backend = SQLiteBackend(path)
    timeout = 0.3
    with trio.fail_after(REAL_BUDGET), record_store_log() as log:
        with pytest.raises(FlushError):
            async with open_store(backend, flush_interval=60.0, shutdown_timeout=timeout) as store:
                for result in hung:
                    store.add_result(result)
                exited = trio.current_time()
        assert trio.current_time() - exited <= timeout + CLOSE_SLACK
        assert store.unpersisted == tuple(hung)
        assert_nothing_running(backend)
    log.assert_ticker_stopped()
    assert sqlite_results(path) == durable  # rolled back: none of `hung` is in
    assert sqlite_integrity(path) == "ok"
    _drop_trigger(path)
    async with open_store(path) as again:  # lock released, no transaction left open
        for result in hung:
            again.add_result(result)
    assert sqlite_results(path) == durable + hung


# -- cancellation while a commit is in flight ----------------------------------------------

# The flush waits 1 s before the commit (interruptible) and 1 s after it (not interruptible):
# a cancellation lands before the change, or after it, never in the middle.
DELAY, COMMIT = 1.0, 1.0
CANCEL_AT = [0.0, NS, 0.5, DELAY - NS, DELAY, DELAY + NS, DELAY + 0.5, DELAY + COMMIT, DELAY + COMMIT + NS]


@pytest.mark.parametrize("cancel_at", CANCEL_AT)
async def test_cancelled_caller_flush_is_all_or_nothing(
    autojump_clock: trio.testing.MockClock, cancel_at: float
) -> None:
    database = MemoryDatabase()
    backend = memory_store_backend(database, delay=DELAY, commit_delay=COMMIT)
    batch = results(1, 5)
    with trio.fail_after(VIRTUAL_BUDGET):
        async with open_store(backend, flush_interval=600.0, shutdown_timeout=10.0) as store:
            for result in batch:
                store.add_result(result)
            with trio.move_on_after(cancel_at):
                await store.flush()
            pending = store.stats().pending
            assert (pending, database.results()) in [(0, batch), (len(batch), [])]
            if cancel_at < DELAY:
                assert pending == len(batch)
            elif cancel_at > DELAY:
                assert pending == 0
            backend.heal()
        assert store.unpersisted == ()
        assert database.results() == batch
        assert_nothing_running(backend)


@pytest.mark.parametrize("shutdown_after", CANCEL_AT[1:])
async def test_final_flush_cut_by_shutdown_timeout_is_all_or_nothing(
    autojump_clock: trio.testing.MockClock, shutdown_after: float
) -> None:
    database = MemoryDatabase()
    backend = memory_store_backend(database, delay=DELAY, commit_delay=COMMIT)
    batch = results(1, 5)
    with trio.fail_after(VIRTUAL_BUDGET):
        try:
            async with open_store(backend, flush_interval=600.0, shutdown_timeout=shutdown_after) as store:
                for result in batch:
                    store.add_result(result)
                exited = trio.current_time()
        except FlushError:
            assert store.unpersisted
        # The commit's uninterruptible second is the only overrun allowed.
        assert trio.current_time() - exited <= shutdown_after + COMMIT + 1e-9
        assert (store.unpersisted, database.results()) in [((), batch), (tuple(batch), [])]
        if shutdown_after < DELAY:
            assert store.unpersisted == tuple(batch)
        elif shutdown_after > DELAY:
            assert store.unpersisted == ()
        assert_nothing_running(backend)


@pytest.mark.slow
async def test_cancelled_sqlite_commit_is_all_or_nothing(tmp_path: os.PathLike[str]) -> None:
    """Interrupting a real transaction at random moments: each batch is fully in or fully out."""
    path = os.path.join(tmp_path, "mc.sqlite")
    await _create_schema(path, [])
    _install_trigger(path, rows_per_insert=5 * 10**6)  # ~50 ms per row
    backend = SQLiteBackend(path)
    model = StoreModel(max_records=1000)
    rng = random.Random(8912)
    with trio.fail_after(REAL_BUDGET):
        try:
            async with open_store(backend, flush_interval=600.0, shutdown_timeout=0.15) as store:
                for round in range(8):
                    for result in results(100 * round, 4):
                        store.add_result(result)
                        model.accept(result)
                    with trio.move_on_after(rng.uniform(0.0, 0.3)):
                        await store.flush()
                    # No call is in flight once flush() has returned or raised.
                    assert backend.calls_in_flight == 0
                    pending = store.stats().pending
                    assert pending % 4 == 0
                    assert sqlite_results(path) == model.expected(pending)
                exited = trio.current_time()
        except FlushError:
            pass
        assert trio.current_time() - exited <= 0.15 + CLOSE_SLACK
        assert sqlite_results(path) == model.expected_after_close(store.unpersisted)
        assert len(store.unpersisted) % 4 == 0
        assert_nothing_running(backend)
    assert sqlite_integrity(path) == "ok"


# -- store bugs these tests found (fixed in the store; kept as regression tests) -------------


@pytest.mark.parametrize("interruption", ["fails", "cancelled"])
async def test_interrupted_caller_flush_is_retried_by_the_ticker(
    autojump_clock: trio.testing.MockClock, interruption: str
) -> None:
    # Found here (and by the machine, thorough profile): a caller's flush() that failed or
    # was cancelled put its batch back with the ticker unarmed (when the intake task had run
    # during that flush and seen an empty batch), so the results waited for the next accepted
    # result or for close; at max_pending the store was wedged: add_result() raised StoreBusy
    # and put() never returned. Fixed by re-arming the ticker for a kept batch. Whether the
    # old bug showed depended on the order in which Trio ran the intake and the caller, so
    # try many times (30 tries all missing the bad order has probability 2**-30).
    for attempt in range(30):
        database = MemoryDatabase()
        backend = memory_store_backend(database)
        result = factories.result(attempt + 1)
        with trio.fail_after(VIRTUAL_BUDGET), record_store_log():
            async with open_store(backend, flush_interval=1.0, max_pending=1) as store:
                if interruption == "fails":
                    backend.fail_next = 1
                    store.add_result(result)
                    with pytest.raises(FlushError):
                        await store.flush()
                else:
                    backend.hang = True
                    store.add_result(result)
                    with trio.move_on_after(0.5):
                        await store.flush()
                    backend.hang = False
                await trio.sleep(1000.0)  # the backend is healthy again: the ticker retries
                assert store.stats().pending == 0, f"attempt {attempt}: result never retried"
                assert database.results() == [result]
                store.add_result(factories.result(1000 + attempt))  # not wedged at max_pending


@pytest.mark.slow
async def test_close_is_bounded_while_another_connection_holds_the_write_lock(
    tmp_path: os.PathLike[str],
) -> None:
    # Found here: SQLite's busy wait (then PRAGMA busy_timeout=5000) is not interrupted by
    # Connection.interrupt(), so while another connection held the write lock a close overran
    # shutdown_timeout by up to 5 s. Fixed by waiting for the lock in short slices, checking
    # for cancellation between them.
    path = os.path.join(tmp_path, "mc.sqlite")
    await _create_schema(path, [])
    backend = SQLiteBackend(path)
    timeout = 0.3
    other = sqlite3.connect(path, isolation_level=None)
    try:
        with trio.fail_after(REAL_BUDGET):
            with pytest.raises(FlushError):
                async with open_store(backend, flush_interval=60.0, shutdown_timeout=timeout) as store:
                    store.add_result(factories.result(1))
                    other.execute("BEGIN IMMEDIATE")  # e.g. a backup or another namespace's writer
                    exited = trio.current_time()
            elapsed = trio.current_time() - exited
            assert store.unpersisted == (factories.result(1),)
            assert_nothing_running(backend)
            assert elapsed <= timeout + CLOSE_SLACK, f"close took {elapsed:.2f} s"
    finally:
        other.close()


async def test_store_busy_is_not_a_fault(autojump_clock: trio.testing.MockClock) -> None:
    """Control for the wedge above: a healthy store at max_pending frees room by itself."""
    database = MemoryDatabase()
    backend = memory_store_backend(database)
    with trio.fail_after(VIRTUAL_BUDGET):
        async with open_store(backend, flush_interval=1.0, max_pending=1) as store:
            store.add_result(factories.result(1))
            with pytest.raises(StoreBusy):
                store.add_result(factories.result(2))
            await store.put(factories.result(2))  # waits for the tick to flush the first
            assert store.stats().accepted == 2
        assert database.results() == [factories.result(1), factories.result(2)]
