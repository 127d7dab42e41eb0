"""The Trio store's semantics, in virtual time, through the in-Trio MemoryBackend.

Each rule of the store is one test. Time-based behaviour runs under pytest-trio's
``autojump_clock`` (a ``MockClock(autojump_threshold=0)``), so it is exact and fast; the
MemoryBackend has no threads, so autojump is safe (trio issue #456).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator

import pytest
import trio
import trio.testing
from backend_fixtures import BackendFactory
from factories import failed, result
from shutdown_checks import StorePlace

import mcstore
from mcstore import FlushError, StoreBusy, StoreClosed, StoreError, StoreLocked, StoreState, open_store
from mcstore.backends import backend_for_path
from mcstore.store import STOPPED_MESSAGE, STOPPING_MESSAGE
from mcstore.testing import FaultyBackend, MemoryBackend, MemoryDatabase

INTERVAL = 1.0
BUDGET = 60.0  # virtual seconds: a hang fails the test instead of stalling CI


def store_tasks() -> list[trio.lowlevel.Task]:
    """Every live task that the store started, found by walking the whole task tree."""
    found: list[trio.lowlevel.Task] = []

    def walk(task: trio.lowlevel.Task) -> None:
        if task.name.startswith("mcstore."):
            found.append(task)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return found


def open_memory(db: MemoryDatabase | None = None, **kwargs: object) -> tuple[FaultyBackend, object]:
    """A MemoryBackend on ``db`` behind a FaultyBackend (for fault knobs), and its open_store()."""
    backend = FaultyBackend(MemoryBackend(db))
    kwargs.setdefault("flush_interval", INTERVAL)
    return backend, open_store(backend, **kwargs)  # type: ignore[arg-type]


# -- accepting results ----------------------------------------------------------------------


async def test_add_result_rejects_other_types(autojump_clock: trio.testing.MockClock) -> None:
    backend, cm = open_memory()
    async with cm as store:  # type: ignore[attr-defined]
        with pytest.raises(TypeError, match="got dict"):
            store.add_result({"id": 1})
        with pytest.raises(TypeError, match="got int"):
            await store.put(7)
        assert store.stats().accepted == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"max_records": -1}, ValueError, "max_records must be >= 0.*-1"),
        ({"max_records": 1.5}, TypeError, "max_records must be an int.*1.5"),
        ({"max_pending": 0}, ValueError, "max_pending must be >= 1.*0"),
        ({"flush_interval": 0}, ValueError, "flush_interval.*> 0.*0"),
        ({"flush_interval": float("nan")}, ValueError, "flush_interval.*nan"),
        ({"shutdown_timeout": -2.0}, ValueError, "shutdown_timeout.*-2.0"),
        ({"namespace": ""}, ValueError, "namespace must be a non-empty str"),
        ({"synchronous": "SOMETIMES"}, ValueError, "synchronous must be one of.*SOMETIMES"),
    ],
)
async def test_open_store_rejects_bad_arguments(
    tmp_path: object, kwargs: dict[str, object], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        async with open_store(f"{tmp_path}/mc.sqlite", **kwargs):  # type: ignore[arg-type]
            pass


async def test_add_result_is_not_io_and_put_waits_for_room(autojump_clock: trio.testing.MockClock) -> None:
    backend, cm = open_memory(max_pending=2)
    async with cm as store:  # type: ignore[attr-defined]
        store.add_result(result(1))
        store.add_result(result(2))
        assert backend.flush_calls == 0
        with pytest.raises(StoreBusy, match=r"max_pending=2.*the result with id 3 was not accepted"):
            store.add_result(result(3))
        assert store.stats().pending == 2

        put_done = trio.Event()

        async def putter() -> None:
            await store.put(result(3))
            put_done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(putter)
            await trio.testing.wait_all_tasks_blocked()
            assert not put_done.is_set()  # waiting for room, not dropped, not raised
            await store.flush()
            await put_done.wait()
        assert store.stats().accepted == 3
        assert store.stats().pending <= 2


async def test_cancelled_put_accepts_nothing(autojump_clock: trio.testing.MockClock) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db, max_pending=1)
    async with cm as store:  # type: ignore[attr-defined]
        store.add_result(result(1))
        with trio.move_on_after(5 * INTERVAL / 10):
            await store.put(result(2))
        assert store.stats().accepted == 1
    assert [r.id for r in db.results()] == [1]


async def test_put_raises_store_closed_when_the_store_closes(autojump_clock: trio.testing.MockClock) -> None:
    backend, cm = open_memory(max_pending=1)
    backend.hang = True  # keep the one pending result pending
    errors: list[BaseException] = []
    with trio.fail_after(BUDGET):
        async with cm as store:  # type: ignore[attr-defined]
            store.add_result(result(1))

            async def putter() -> None:
                try:
                    await store.put(result(2))
                except StoreClosed as exc:
                    errors.append(exc)

            async def closer() -> None:
                with pytest.raises(FlushError):  # the hung flush never persisted result 1
                    await store.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(putter)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(closer)
    assert len(errors) == 1
    assert store.unpersisted == (result(1),)


# -- the flush ticker -----------------------------------------------------------------------


async def test_idle_store_does_no_work(autojump_clock: trio.testing.MockClock) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db)
    async with cm:
        await trio.sleep(1000 * INTERVAL)
    assert db.transactions == 0
    assert backend.flush_calls == 0


async def test_first_result_after_idle_is_flushed_one_interval_later_with_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db)
    async with cm as store:  # type: ignore[attr-defined]
        await trio.sleep(10 * INTERVAL)  # idle
        start = trio.current_time()
        store.add_result(result(1))
        await trio.sleep(INTERVAL / 2)
        store.add_result(result(2))  # arrives meanwhile: same flush, timer not reset
        await trio.sleep(INTERVAL / 2 - 1e-9)
        assert db.transactions == 0
        await trio.sleep(2e-9)
        assert db.transactions == 1
        assert store.stats().last_flush_seconds == 0
        assert [r.id for r in db.results()] == [1, 2]
        assert trio.current_time() - start == pytest.approx(INTERVAL + 1e-9)
        # And then the ticker is disarmed again.
        await trio.sleep(100 * INTERVAL)
        assert db.transactions == 1


async def test_one_nanosecond_interval_flushes_everything(autojump_clock: trio.testing.MockClock) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db, flush_interval=1e-9, max_records=0)
    async with cm as store:  # type: ignore[attr-defined]
        for i in range(50):
            store.add_result(result(i))
            if i % 7 == 0:
                await trio.sleep(1e-9)
        await trio.sleep(1e-6)
        assert store.stats().pending == 0
    assert len(db.results()) == 50


async def test_flush_is_one_transaction_and_returns_when_durable(autojump_clock: trio.testing.MockClock) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db, max_records=0)
    async with cm as store:  # type: ignore[attr-defined]
        for i in range(500):
            store.add_result(result(i))
        await store.flush()
        assert db.transactions == 1
        assert len(db.rows()) == 500
        assert store.stats().pending == 0
        await store.flush()  # nothing pending: no transaction
        assert db.transactions == 1


# -- dedup and the cap ----------------------------------------------------------------------


# These run on every backend kind (conftest.BACKEND_KINDS): lnd's dedup and pruning bugs were
# backend bugs.


async def test_dedup_within_the_batch_and_against_stored(
    make_backend: BackendFactory, store_clock: trio.testing.MockClock | None
) -> None:
    async with open_store(make_backend(), max_records=0, flush_interval=INTERVAL) as store:
        # lnd's storeResults stops deduplicating after the first duplicate in a batch:
        # three duplicates in one batch must all go.
        for r in (result(1), result(1), result(2), result(1), result(2), result(3)):
            store.add_result(r)
        await store.flush()
        assert store.stats().deduplicated == 3
        # And lnd never added stored keys to its dedup map: a later duplicate must go too.
        store.add_result(result(2))
        store.add_result(result(4))
        await store.flush()
        stats = store.stats()
    assert stats.deduplicated == 4
    assert stats.stored == 4
    assert stats.accepted == 8
    async with open_store(make_backend(), max_records=0) as store:
        assert [r.id for r in await store.fetch_all()] == [1, 2, 3, 4]
        store.add_result(result(3))  # stored before the reopen: still a duplicate
        await store.flush()
        assert store.stats().deduplicated == 1
        assert store.stats().stored == 4


async def test_cap_keeps_the_newest_and_counts_older_arrivals_as_pruned(
    make_backend: BackendFactory, store_clock: trio.testing.MockClock | None
) -> None:
    async with open_store(make_backend(), max_records=3, flush_interval=INTERVAL) as store:
        for i in (5, 1, 4, 2, 3):
            store.add_result(result(i))
        await store.flush()
        assert [r.id for r in await store.fetch_all()] == [3, 4, 5]
        assert store.stats().pruned == 2
        store.add_result(result(0))  # older than everything stored, at the cap
        await store.flush()
        assert [r.id for r in await store.fetch_all()] == [3, 4, 5]
        stats = store.stats()
    assert stats.pruned == 3
    assert stats.stored == 3


async def test_reopen_with_a_smaller_cap_prunes_at_open(
    make_backend: BackendFactory, store_clock: trio.testing.MockClock | None
) -> None:
    async with open_store(make_backend(), max_records=0) as store:
        for i in range(10):
            store.add_result(result(i))
    async with open_store(make_backend(), max_records=4) as store:
        assert store.stats().stored == 4
        assert [r.id for r in await store.fetch_all()] == [6, 7, 8, 9]


async def test_a_database_backend_opens_once_and_snapshots_only_while_open(store_place: StorePlace) -> None:
    # The flow both database backends share (backends/_database.py), on each of them.
    backend = backend_for_path(store_place.path)
    with pytest.raises(StoreError, match="is not open"):
        await backend.open_snapshot()
    assert await backend.open("default", 0) == 0
    with pytest.raises(StoreError, match="can be opened only once"):
        await backend.open("default", 0)
    snapshot = await backend.open_snapshot()
    assert await snapshot.next_batch(10) == []
    await backend.aclose()  # closes the snapshot first
    with pytest.raises(StoreClosed):
        await snapshot.next_batch(10)
    with pytest.raises(StoreError, match="is not open"):
        await backend.open_snapshot()
    with pytest.raises(StoreError, match="can be opened only once"):
        await backend.open("default", 0)
    await backend.aclose()  # harmless twice


# -- clear and fetch_all --------------------------------------------------------------------


async def test_clear_drops_stored_and_pending_but_keeps_later_results(
    autojump_clock: trio.testing.MockClock,
) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db, max_records=0)
    async with cm as store:  # type: ignore[attr-defined]
        store.add_result(result(1))
        await store.flush()
        store.add_result(result(2))  # pending
        await store.clear()
        assert store.stats().pending == 0
        assert store.stats().stored == 0
        assert await store.fetch_all() == []
        store.add_result(result(1))  # accepted after the clear: kept, not deduplicated
        await store.flush()
        assert [r.id for r in await store.fetch_all()] == [1]
    assert store.unpersisted == ()


async def test_fetch_all_removes_corrupted_rows(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    db = MemoryDatabase()
    good = mcstore.encode_result(result(2))
    db.rows()[good[0]] = good[1]
    db.rows()[bytes(49)] = b"\xff\xff"  # not a TLV stream
    backend, cm = open_memory(db)
    with caplog.at_level(logging.WARNING, logger="mcstore"):
        async with cm as store:  # type: ignore[attr-defined]
            assert await store.fetch_all() == [result(2)]
            assert store.stats().corrupted_removed == 1
            assert store.stats().stored == 1
    assert "Removing undecodable mission control result" in caplog.text
    assert bytes(49) not in db.rows()


@pytest.fixture
def collector_state() -> Iterator[None]:
    """Put the cyclic collector back as it was, whatever the test did to it."""
    was = gc.isenabled()
    try:
        yield
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()


def _progress_at_collections(action: Callable[[], object], progress: Callable[[], int]) -> list[int]:
    """``progress()`` at the start of each collection of the cyclic collector while ``action`` ran."""
    seen: list[int] = []
    gc.collect()  # start from empty young generations

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(progress())

    gc.callbacks.append(record)
    try:
        action()
    finally:
        gc.callbacks.remove(record)
    return seen


@pytest.mark.parametrize("enabled_before", [True, False])
def test_decode_rows_runs_with_the_collector_paused_and_restores_it(
    collector_state: None, enabled_before: bool
) -> None:
    from mcstore.codec import decode_rows

    n = 2000
    rows: list[tuple[object, object]] = [mcstore.encode_result(result(i)) for i in range(n)]
    rows.insert(5, (bytes(49), b"\xff"))  # a corrupted row: reported, not raised
    gc.enable()
    unpaused: list[mcstore.PaymentResult] = []
    # Calibration: thousands of tracked objects, so unpaused the collector runs mid-way.
    seen = _progress_at_collections(lambda: decode_rows(rows, unpaused, False), lambda: len(unpaused))
    assert any(0 < done < n for done in seen)
    if not enabled_before:
        gc.disable()
    results: list[mcstore.PaymentResult] = []
    failed: list[tuple[object, mcstore.DecodeError]] = []
    seen = _progress_at_collections(lambda: failed.extend(decode_rows(rows, results, True)), lambda: len(results))
    assert all(done in (0, n) for done in seen)  # never with a row decoded and another to go
    assert gc.isenabled() is enabled_before  # restored as it was, never turned on
    assert results == unpaused and [r.id for r in results] == list(range(n))
    assert [key for key, _ in failed] == [bytes(49)]
    assert isinstance(failed[0][1], mcstore.DecodeError)


def test_an_error_while_decoding_rows_turns_the_collector_back_on(collector_state: None) -> None:
    from mcstore.codec import decode_rows

    gc.enable()
    results: list[mcstore.PaymentResult] = []
    rows: list[tuple[object, object]] = [mcstore.encode_result(result(1)), (b"not", 7)]
    with pytest.raises(TypeError):  # not bytes: a programming error, not a corrupted row
        decode_rows(rows, results, True)
    assert gc.isenabled()
    assert [r.id for r in results] == [1]


def test_decoding_stored_rows_never_lets_another_thread_see_the_collector_off(collector_state: None) -> None:
    """The collector is process-wide: while fetch_all decodes, another thread that reads or
    switches it must find it as the application left it. On the compiled core the pause is
    held by compiled code that keeps the GIL; the pure path does not pause."""
    import sys
    import threading

    from mcstore.backends import base

    rows = [mcstore.encode_result(result(i)) for i in range(8 * base.CANCEL_CHECK_ROWS)]
    for i in range(0, len(rows), 7):  # corrupted rows too: the DecodeError path runs paused
        rows[i] = (rows[i][0], b"\xff")
    gc.enable()
    watching, done = threading.Event(), threading.Event()
    seen_off: list[int] = []
    looks: list[int] = [0]

    def watch() -> None:
        watching.set()
        while not done.is_set():
            looks[0] += 1
            if not gc.isenabled():
                seen_off.append(looks[0])

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over as often as CPython will
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert watching.wait(10)
        checks: list[bool] = []
        results, corrupted = base.decode_stored_rows(rows, "default", lambda: checks.append(gc.isenabled()))
    finally:
        done.set()
        watcher.join()
        sys.setswitchinterval(interval)
    assert seen_off == []
    assert len(results) + len(corrupted) == len(rows) and len(corrupted) == len(range(0, len(rows), 7))
    assert checks == [True] * 8  # the cancellation check runs between chunks, collector on


class _SlowBytes(bytes):
    """A bytes subclass: decode_result converts it with bytes(), which runs interpreted code."""

    def __bytes__(self) -> bytes:
        return bytes(memoryview(self))


def test_rows_that_are_not_exact_bytes_are_decoded_without_a_pause(collector_state: None) -> None:
    """decode_rows pauses the collector only for rows of exact bytes: converting anything else
    may run interpreted code (a __bytes__, a __class__ property), which gives the GIL away."""
    import sys
    import threading

    from mcstore.backends import base

    rows = [(_SlowBytes(k), _SlowBytes(v)) for k, v in (mcstore.encode_result(result(i)) for i in range(4096))]
    gc.enable()
    watching, done = threading.Event(), threading.Event()
    seen_off: list[bool] = []

    def watch() -> None:
        watching.set()
        while not done.is_set():
            if not gc.isenabled():
                seen_off.append(True)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert watching.wait(10)
        results, corrupted = base.decode_stored_rows(rows, "default")
    finally:
        done.set()
        watcher.join()
        sys.setswitchinterval(interval)
    assert seen_off == []
    assert [r.id for r in results] == list(range(4096)) and corrupted == []


# -- failures -------------------------------------------------------------------------------


async def test_failed_flush_keeps_its_batch_and_retries_with_backoff(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db)
    backend.fail_next = 2
    with caplog.at_level(logging.ERROR, logger="mcstore"):
        async with cm as store:  # type: ignore[attr-defined]
            store.add_result(result(1))
            # tick at 1 (fails), retry 2 later (fails), retry 4 later: succeeds at t=7.
            await trio.sleep(7 * INTERVAL - 1e-6)
            assert store.stats().flushes == 0
            assert store.stats().flush_failures == 2
            await trio.sleep(2e-6)
            stats = store.stats()
    assert stats.flush_failures == 2
    assert stats.pending == 0
    assert [r.id for r in db.results()] == [1]
    assert caplog.text.count("Mission control store flush failed") == 2


async def test_flush_raises_flush_error_and_keeps_results(autojump_clock: trio.testing.MockClock) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db)
    backend.fail_next = 1
    async with cm as store:  # type: ignore[attr-defined]
        store.add_result(result(1))
        with pytest.raises(FlushError, match="injected"):
            await store.flush()
        assert store.stats().pending == 1
        await store.flush()
        assert store.stats().pending == 0
    assert [r.id for r in db.results()] == [1]


# -- states and closing ---------------------------------------------------------------------


async def test_normal_close_flushes_everything_and_logs_lnds_lines(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db)
    with caplog.at_level(logging.DEBUG, logger="mcstore"):
        async with cm as store:  # type: ignore[attr-defined]
            assert store.state is StoreState.OPEN
            store.add_result(result(1))
            store.add_result(failed(2))
            tasks = store_tasks()
            assert len(tasks) == 3
        assert store.state is StoreState.CLOSED
        assert store_tasks() == []
    assert [r.id for r in db.results()] == [1, 2]
    assert store.unpersisted == ()
    messages = [r.getMessage() for r in caplog.records]
    stopping, stopped = messages.index(STOPPING_MESSAGE), messages.index(STOPPED_MESSAGE)
    assert stopping < messages.index("Stored mission control results: 2 added, 0 deleted") < stopped
    assert db.locked == set()


async def test_closed_store_refuses_work_and_closing_twice_is_harmless(
    autojump_clock: trio.testing.MockClock,
) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db)
    async with cm as store:  # type: ignore[attr-defined]
        store.add_result(result(1))
        await store.aclose()
        await store.aclose()
        assert store.closed
        with pytest.raises(StoreClosed, match="closed"):
            store.add_result(result(2))
        with pytest.raises(StoreClosed):
            await store.put(result(2))
        for method in (store.flush, store.fetch_all, store.clear):
            with pytest.raises(StoreClosed):
                await method()
    assert [r.id for r in db.results()] == [1]
    assert store.stats().state is StoreState.CLOSED


async def test_an_exception_from_the_block_propagates_unwrapped_after_the_final_flush(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Boom(Exception):
        pass

    db = MemoryDatabase()
    backend, cm = open_memory(db)
    with pytest.raises(Boom) as info:
        async with cm as store:  # type: ignore[attr-defined]
            store.add_result(result(1))
            raise Boom("mine")
    assert type(info.value) is Boom
    assert [r.id for r in db.results()] == [1]
    assert store_tasks() == []


async def test_outer_cancellation_still_runs_the_final_flush(autojump_clock: trio.testing.MockClock) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db, max_records=0)
    with trio.move_on_after(INTERVAL / 2) as scope:
        async with cm as store:  # type: ignore[attr-defined]
            for i in range(100):
                store.add_result(result(i))
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert len(db.results()) == 100
    assert store.unpersisted == ()
    assert store_tasks() == []


async def test_cancellation_during_an_inflight_flush_loses_nothing(autojump_clock: trio.testing.MockClock) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db, max_records=0)
    backend.delay = 3 * INTERVAL
    with trio.move_on_after(INTERVAL * 2) as scope:  # the tick's flush is then in flight
        async with cm as store:  # type: ignore[attr-defined]
            for i in range(10):
                store.add_result(result(i))
            await trio.sleep_forever()
    assert scope.cancelled_caught
    # The in-flight flush was cancelled (all out); the final flush (shielded) stored it all.
    assert len(db.results()) == 10
    assert store.unpersisted == ()


async def test_hanging_backend_close_returns_at_the_deadline_with_results_handed_back(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db, shutdown_timeout=2.0)
    backend.hang = True
    with caplog.at_level(logging.ERROR, logger="mcstore"):
        with pytest.raises(FlushError, match="2 accepted results could not be persisted"):
            async with cm as store:  # type: ignore[attr-defined]
                store.add_result(result(1))
                store.add_result(result(2))
                start = trio.current_time()
    assert trio.current_time() - start == pytest.approx(2.0)
    assert store.unpersisted == (result(1), result(2))
    assert db.results() == []
    assert backend.calls_in_flight == 0
    assert store_tasks() == []
    assert "did not finish within shutdown_timeout" in caplog.text


async def test_failing_backend_on_exceptional_exit_logs_and_raises_the_callers_error(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db, shutdown_timeout=3.0)
    backend.fail_always = True
    with caplog.at_level(logging.ERROR, logger="mcstore"):
        with pytest.raises(KeyError):
            async with cm as store:  # type: ignore[attr-defined]
                store.add_result(result(1))
                raise KeyError("mine")
    assert store.unpersisted == (result(1),)
    assert "1 accepted results not persisted" in caplog.text


async def test_transient_failure_of_the_final_flush_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    db = MemoryDatabase()
    backend, cm = open_memory(db)
    backend.fail_next = 1
    async with cm as store:  # type: ignore[attr-defined]
        store.add_result(result(1))
    assert [r.id for r in db.results()] == [1]
    assert store.unpersisted == ()


async def test_namespace_is_locked_while_open(autojump_clock: trio.testing.MockClock) -> None:
    db = MemoryDatabase()
    _, first = open_memory(db)
    async with first:
        with pytest.raises(StoreLocked):
            async with open_memory(db)[1]:
                pass
        async with open_memory(db, namespace="other")[1]:
            pass
    async with open_memory(db)[1]:
        pass


async def test_a_crashing_store_task_surfaces_as_store_error(autojump_clock: trio.testing.MockClock) -> None:
    class Broken(MemoryBackend):
        async def store_results(self, results: object, max_records: int) -> mcstore.FlushOutcome:
            await trio.lowlevel.checkpoint()
            return None  # type: ignore[return-value]  # a bug: the worker crashes on it

    db = MemoryDatabase()
    with pytest.raises(StoreError, match="background task failed") as info:
        async with open_store(Broken(db), flush_interval=INTERVAL) as store:
            store.add_result(result(1))
            await trio.sleep_forever()
    assert isinstance(info.value.__cause__, BaseExceptionGroup)
    assert store.closed
    assert store_tasks() == []


@pytest.mark.parametrize("fatal", [KeyboardInterrupt, SystemExit, BaseException])
async def test_a_non_exception_from_a_store_task_is_never_wrapped(
    autojump_clock: trio.testing.MockClock, fatal: type[BaseException]
) -> None:
    # Issue 10 §1: a KeyboardInterrupt inside a store task came out as StoreError, which a
    # caller's `except KeyboardInterrupt` misses and its `except Exception` swallows.
    class Broken(MemoryBackend):
        async def store_results(self, results: object, max_records: int) -> mcstore.FlushOutcome:
            raise fatal("not an Exception")

    db = MemoryDatabase()
    with pytest.raises(fatal, match="not an Exception") as info:
        async with open_store(Broken(db), flush_interval=INTERVAL) as store:
            store.add_result(result(1))
            await trio.sleep_forever()
    assert info.type is fatal  # itself: neither StoreError nor a group
    assert store.closed
    assert store.unpersisted == (result(1),)
    assert store_tasks() == []


# -- regressions found in review ------------------------------------------------------------


async def test_clear_keeps_results_accepted_while_it_waited_for_the_lock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    memory = MemoryBackend()
    backend = FaultyBackend(memory)
    release = trio.Event()
    entered = trio.Event()

    async def hold(batch: object) -> None:
        entered.set()
        await release.wait()

    async with open_store(backend, flush_interval=INTERVAL, max_records=0) as store:
        store.add_result(result(1))
        backend.before_flush = hold
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.flush)  # holds the flush lock
            await entered.wait()
            nursery.start_soon(store.clear)  # called now: waits for the lock
            await trio.testing.wait_all_tasks_blocked()
            store.add_result(result(2))  # accepted after clear() was called: must survive
            backend.before_flush = None
            release.set()
        await store.flush()
        assert [r.id for r in await store.fetch_all()] == [2]


async def test_block_exit_waits_for_a_concurrent_aclose(autojump_clock: trio.testing.MockClock) -> None:
    memory = MemoryBackend()
    backend = FaultyBackend(memory, delay=0.5)
    outcomes: list[str] = []

    async def closer(store: mcstore.MissionControlStore) -> None:
        await store.aclose()
        outcomes.append("closed")

    async with trio.open_nursery() as outer:
        async with open_store(backend, flush_interval=INTERVAL) as store:
            for i in range(3):
                store.add_result(result(i))
            outer.start_soon(closer, store)
            await trio.sleep(0.1)  # the other task's final flush is in flight
        assert store.closed
        assert backend.calls_in_flight == 0
    assert outcomes == ["closed"]
    assert [r.id for r in memory.database.results()] == [0, 1, 2]
    assert store.unpersisted == ()


async def test_flush_queued_ahead_of_the_close_returns_when_the_final_flush_persists(
    autojump_clock: trio.testing.MockClock,
) -> None:
    memory = MemoryBackend()
    backend = FaultyBackend(memory)
    outcomes: list[str] = []
    async with open_store(backend, flush_interval=INTERVAL) as store:
        store.add_result(result(1))
        backend.delay = 0.5
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.flush)  # holds the lock for 0.5 s

            async def caller_flush() -> None:
                await store.flush()
                outcomes.append("flushed")

            await trio.sleep(0.1)
            store.add_result(result(2))
            nursery.start_soon(caller_flush)  # queued on the lock
            await trio.sleep(0.1)
            nursery.start_soon(store.aclose)  # queued behind it
    assert outcomes == ["flushed"]
    assert [r.id for r in memory.database.results()] == [1, 2]
