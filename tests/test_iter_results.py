"""``store.iter_results``: a consistent snapshot, read in bounded batches, released at once.

The store-level tests run on every backend kind of the shared tests (conftest's
``backend_kind``), on the real clock: nothing here sleeps, every interleaving is forced with
events.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from backend_fixtures import BackendFactory
from factories import failed, result
from hypothesis import given
from hypothesis import strategies as st
from shutdown_checks import store_threads
from strategies import payment_results

import mcstore
from mcstore import StoreClosed, StoreError, open_store
from mcstore.backends import Backend, MemoryBackend, MemoryDatabase, PostgresBackend, Row, Snapshot, SQLiteBackend
from mcstore.store import ResultIterator
from mcstore.testing import FaultyBackend

BUDGET = 30.0  # real seconds: a hang fails the test instead of stalling CI


class WatchedSnapshot:
    """A Snapshot wrapper that records every batch, and can hold a read in flight."""

    def __init__(self, inner: Snapshot, owner: WatchedBackend) -> None:
        self.inner = inner
        self.owner = owner

    async def next_batch(self, max_rows: int) -> list[Row]:
        owner = self.owner
        owner.reads += 1
        if owner.hold_read == owner.reads:
            owner.read_held.set()
            await trio.sleep_forever()  # until cancelled
        rows = await self.inner.next_batch(max_rows)
        owner.batches.append((max_rows, len(rows)))
        return rows

    async def count(self) -> int:
        return await self.inner.count()

    async def aclose(self) -> None:
        await self.inner.aclose()


class WatchedBackend(FaultyBackend):
    """A FaultyBackend whose snapshots are watched (see :class:`WatchedSnapshot`)."""

    def __init__(self, inner: Backend, reopen: Callable[[], Backend]) -> None:
        super().__init__(inner)
        self.reopen = reopen
        """A fresh backend on the same database (a reopen)."""
        self.batches: list[tuple[int, int]] = []
        """(max_rows asked, rows returned) of every batch read."""
        self.reads = 0
        self.hold_read = 0
        """Hold the read with this number (1-based) until it is cancelled; 0: never."""
        self.read_held = trio.Event()

    async def open_snapshot(self) -> Snapshot:
        return WatchedSnapshot(await super().open_snapshot(), self)

    @property
    def snapshots_open(self) -> int:
        inner = self.inner
        assert isinstance(inner, (MemoryBackend, SQLiteBackend, PostgresBackend))
        return inner.snapshots_open

    def corrupt(self, key: bytes) -> None:
        """Add an undecodable row to namespace "default" behind the store's back."""
        inner = self.inner
        if isinstance(inner, MemoryBackend):
            inner.database.rows()[key] = b"\xff\xff"
        elif isinstance(inner, SQLiteBackend):
            with contextlib.closing(sqlite3.connect(inner.path)) as conn, conn:
                conn.execute("INSERT INTO mc_results VALUES ('default', ?, x'ffff')", (key,))
        elif isinstance(inner, PostgresBackend):
            import psycopg

            with psycopg.connect(inner.dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO mc_results VALUES ('default', %s, '\\xffff'::bytea)", (key,))
        else:
            raise AssertionError(f"add a way to corrupt a row of {inner!r}")


@pytest.fixture
def backend(make_backend: BackendFactory) -> WatchedBackend:
    """A watched backend of every kind of the shared tests (conftest's ``backend_kind``)."""
    return WatchedBackend(make_backend(), make_backend)


def store_of(
    backend: WatchedBackend, **kwargs: object
) -> contextlib.AbstractAsyncContextManager[mcstore.MissionControlStore]:
    kwargs.setdefault("max_records", 0)
    return open_store(backend, **kwargs)  # type: ignore[arg-type]


def history(n: int) -> list[mcstore.PaymentResult]:
    """``n`` results, successes and failures, added out of key order."""
    made = [failed(i) if i % 3 else result(i, hops=1 + i % 4) for i in range(n)]
    return made[1::2] + made[0::2]


async def collect(results: AsyncIterator[mcstore.PaymentResult]) -> list[mcstore.PaymentResult]:
    return [r async for r in results]


# -- content, order, bounded batches ------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 60, 1000])
async def test_iter_results_yields_what_fetch_all_returns_in_batches_of_at_most_batch_size(
    backend: WatchedBackend, batch_size: int
) -> None:
    with trio.fail_after(BUDGET):
        async with store_of(backend) as store:
            for r in history(120):
                store.add_result(r)
            await store.flush()
            async with contextlib.aclosing(store.iter_results(batch_size)) as results:
                streamed = await collect(results)
            assert streamed == await store.fetch_all()
    assert [r.id for r in streamed] == list(range(120))
    assert backend.batches, "no batch was read"
    assert all(asked == batch_size and 0 <= got <= batch_size for asked, got in backend.batches)
    # 120 rows: full batches, then one short (possibly empty) batch that ends the snapshot.
    assert sum(got for _, got in backend.batches) == 120
    assert len(backend.batches) == 120 // batch_size + 1


async def test_the_snapshot_is_released_as_soon_as_the_last_batch_is_read(backend: WatchedBackend) -> None:
    with trio.fail_after(BUDGET):
        async with store_of(backend) as store:
            for i in range(15):
                store.add_result(result(i))
            await store.flush()
            async with contextlib.aclosing(store.iter_results(batch_size=10)) as results:
                assert (await results.__anext__()).id == 0
                assert backend.snapshots_open == 1
                ids = [(await results.__anext__()).id for _ in range(10)]
                # The second batch was short: the snapshot is gone, its rows are still served.
                assert backend.snapshots_open == 0
                assert not results.snapshot_open
                assert ids + [r.id for r in await collect(results)] == list(range(1, 15))


async def test_empty_namespace_yields_nothing_and_releases_the_snapshot(backend: WatchedBackend) -> None:
    with trio.fail_after(BUDGET):
        async with store_of(backend) as store:
            results = store.iter_results()
            assert await collect(results) == []
            assert not results.snapshot_open
            assert backend.snapshots_open == 0
            with pytest.raises(StopAsyncIteration):
                await results.__anext__()


@pytest.mark.parametrize(
    ("batch_size", "error", "text"),
    [
        (0, ValueError, "batch_size must be >= 1, got 0"),
        (-5, ValueError, "batch_size must be >= 1, got -5"),
        (2.5, TypeError, "batch_size must be an int, got 2.5"),
        (True, TypeError, "batch_size must be an int, got True"),
    ],
)
async def test_bad_batch_size_is_refused_naming_the_value(
    batch_size: object, error: type[Exception], text: str
) -> None:
    async with open_store(MemoryBackend()) as store:
        with pytest.raises(error, match=text):
            store.iter_results(batch_size)  # type: ignore[arg-type]


async def test_undecodable_rows_are_skipped_counted_logged_and_kept(
    backend: WatchedBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad_key = bytes(48) + b"\x01"
    async with store_of(backend) as store:
        store.add_result(result(1))
        store.add_result(result(2))
        await store.flush()
    # Corrupt the namespace behind the store's back, as a damaged file would be.
    backend.corrupt(bad_key)
    backend = WatchedBackend(backend.reopen(), backend.reopen)
    with caplog.at_level(logging.WARNING, logger="mcstore"):
        async with store_of(backend) as store:
            async with contextlib.aclosing(store.iter_results(batch_size=2)) as results:
                assert [r.id for r in await collect(results)] == [1, 2]
            assert results.skipped == 1
            assert store.stats().corrupted_removed == 0
            # Read-only: the row is still there for fetch_all to remove.
            assert [r.id for r in await store.fetch_all()] == [1, 2]
            assert store.stats().corrupted_removed == 1
    assert f"Skipping undecodable mission control result: namespace='default' key={bad_key.hex()}" in caplog.text


# -- a snapshot: consistent, and flushes go on meanwhile ---------------------------------------


async def test_flushes_and_clears_proceed_while_an_iteration_is_open_and_it_sees_its_snapshot(
    backend: WatchedBackend,
) -> None:
    with trio.fail_after(BUDGET):
        async with store_of(backend, max_records=10) as store:
            for i in range(10):
                store.add_result(result(i))
            await store.flush()
            async with contextlib.aclosing(store.iter_results(batch_size=3)) as results:
                first = await results.__anext__()
                assert results.snapshot_open
                # The snapshot is open: a flush that prunes every row it holds commits...
                for i in range(10, 20):
                    store.add_result(result(i))
                await store.flush()
                assert [r.id for r in await store.fetch_all()] == list(range(10, 20))
                # ... and so does a clear,
                await store.clear()
                assert await store.fetch_all() == []
                # while the iteration goes on seeing exactly the rows of its snapshot.
                rest = await collect(results)
            assert [first.id] + [r.id for r in rest] == list(range(10))
            assert backend.snapshots_open == 0


# -- leaving early releases the snapshot at once --------------------------------------------------


def checkpoint_completes(path: Path) -> bool:
    """Whether a TRUNCATE checkpoint of ``path`` completes: not while a reader needs the WAL."""
    with contextlib.closing(sqlite3.connect(path, timeout=0)) as conn:
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0


def read_threads() -> list[str]:
    """The live threads of SQLite snapshots."""
    return [name for name in store_threads() if name.startswith("mcstore-read:")]


async def leave(how: str, results: ResultIterator) -> None:
    async with contextlib.aclosing(results):
        if how == "cancel":
            with trio.CancelScope() as scope:
                async for _ in results:
                    scope.cancel()
                    await trio.lowlevel.checkpoint()
            return
        async for _ in results:
            if how == "break":
                break
            raise KeyError("from the loop body")


@pytest.mark.parametrize("how", ["break", "exception", "cancel"])
async def test_leaving_the_loop_early_releases_the_snapshot_at_once(
    backend: WatchedBackend, tmp_path: Path, how: str
) -> None:
    path = tmp_path / "mc.sqlite"
    real = isinstance(backend.inner, SQLiteBackend)
    with trio.fail_after(BUDGET):
        async with store_of(backend) as store:
            for i in range(50):
                store.add_result(result(i))
            await store.flush()
            results = store.iter_results(batch_size=10)
            assert [r.id async for r, _ in zip_first(results, 1)] == [0]
            assert backend.snapshots_open == 1
            # A write after the snapshot: the WAL now holds frames the snapshot must not lose.
            store.add_result(result(99))
            await store.flush()
            if real:
                assert not await trio.to_thread.run_sync(checkpoint_completes, path)
                assert len(read_threads()) == 1
            if how == "exception":
                with pytest.raises(KeyError, match="from the loop body"):
                    await leave(how, results)
            else:
                await leave(how, results)
            assert backend.snapshots_open == 0
            assert not results.snapshot_open
            if real:
                assert await trio.to_thread.run_sync(checkpoint_completes, path)
            assert read_threads() == []  # the snapshot's own thread has ended
            # The store is fine afterwards.
            assert len(await store.fetch_all()) == 51


async def zip_first(results: ResultIterator, n: int) -> AsyncIterator[tuple[mcstore.PaymentResult, int]]:
    """The first ``n`` results, without closing the iterator."""
    for i in range(n):
        yield await results.__anext__(), i


async def test_cancelled_batch_read_releases_the_snapshot(backend: WatchedBackend) -> None:
    with trio.fail_after(BUDGET):
        async with store_of(backend) as store:
            for i in range(20):
                store.add_result(result(i))
            await store.flush()
            backend.hold_read = 2
            results = store.iter_results(batch_size=10)
            async with trio.open_nursery() as nursery:

                async def iterate() -> None:
                    await collect(results)

                nursery.start_soon(iterate)
                await backend.read_held.wait()
                assert backend.snapshots_open == 1
                nursery.cancel_scope.cancel()
            assert backend.snapshots_open == 0
            with pytest.raises(StopAsyncIteration):
                await results.__anext__()


# -- closing the store ends an iteration -----------------------------------------------------------


async def test_close_ends_an_idle_iteration_with_store_closed_and_releases_its_snapshot(
    backend: WatchedBackend,
) -> None:
    with trio.fail_after(BUDGET):
        async with store_of(backend, shutdown_timeout=2.0) as store:
            for i in range(30):
                store.add_result(result(i))
            await store.flush()
            results = store.iter_results(batch_size=10)
            assert (await results.__anext__()).id == 0
            # The caller neither finishes nor closes the iteration: the close does not wait for it.
            started = trio.current_time()
        assert trio.current_time() - started < 2.0
        assert backend.snapshots_open == 0
        with pytest.raises(StoreClosed, match="iter_results"):
            await results.__anext__()
        with pytest.raises(StopAsyncIteration):
            await results.__anext__()
        with pytest.raises(StoreClosed):
            store.iter_results()


async def test_close_ends_a_batch_read_in_flight_with_store_closed_within_shutdown_timeout(
    backend: WatchedBackend,
) -> None:
    outcome: list[BaseException] = []

    async def iterate(results: ResultIterator) -> None:
        try:
            await collect(results)
        except StoreClosed as exc:
            outcome.append(exc)

    with trio.fail_after(BUDGET):
        async with trio.open_nursery() as nursery:
            async with store_of(backend, shutdown_timeout=2.0) as store:
                for i in range(30):
                    store.add_result(result(i))
                await store.flush()
                backend.hold_read = 2
                nursery.start_soon(iterate, store.iter_results(batch_size=10))
                await backend.read_held.wait()
                store.add_result(result(100))  # the close has a final flush to do too
                started = trio.current_time()
            assert trio.current_time() - started < 2.0
            assert backend.snapshots_open == 0
            assert store_threads() == []
    assert len(outcome) == 1
    assert "closing" in str(outcome[0])
    assert store.unpersisted == ()


async def test_backend_close_closes_open_snapshots(backend: WatchedBackend) -> None:
    with trio.fail_after(BUDGET):
        inner = backend.inner
        await inner.open("default", 0)
        snapshot = await inner.open_snapshot()
        assert backend.snapshots_open == 1
        await inner.aclose()
        assert backend.snapshots_open == 0
        with pytest.raises(StoreClosed):
            await snapshot.next_batch(10)
        await snapshot.aclose()  # harmless again


async def test_snapshot_rejects_a_bad_max_rows() -> None:
    backend = MemoryBackend(MemoryDatabase())
    await backend.open("default", 0)
    snapshot = await backend.open_snapshot()
    with pytest.raises(ValueError, match="max_rows must be >= 1, got 0"):
        await snapshot.next_batch(0)
    await backend.aclose()


# -- SQLite: a statement in flight is interrupted -------------------------------------------------


def slow_namespace(path: Path) -> None:
    """A file whose ``mc_results`` is a view: its first row comes at once, but reading it in key
    order walks 10^8 generated rows (many seconds) unless interrupted. Bounded on purpose: if
    interrupting broke, the test fails on its elapsed time instead of hanging."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE VIEW mc_results AS WITH RECURSIVE c(x) AS "
            "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
            "SELECT 'default' AS namespace, CAST(x AS BLOB) AS key, x'00' AS value FROM c "
            "WHERE x = 1 OR x = 100000000"
        )


@pytest.mark.parametrize("stop", ["aclose from another task", "cancel"])
async def test_sqlite_snapshot_read_in_flight_is_interrupted_promptly(tmp_path: Path, stop: str) -> None:
    from mcstore.backends.sqlite_read import SQLiteSnapshot

    path = tmp_path / "slow.sqlite"
    slow_namespace(path)
    snapshot = SQLiteSnapshot(str(path), "default")
    await snapshot.start()
    started = trio.current_time()
    outcome: list[BaseException] = []

    async def read(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            try:
                await snapshot.next_batch(10)
            except trio.Cancelled as exc:
                outcome.append(exc)
                raise
            except StoreClosed as exc:
                outcome.append(exc)

    with trio.fail_after(BUDGET):
        async with trio.open_nursery() as nursery:
            scope = await nursery.start(read)
            await trio.testing.wait_all_tasks_blocked()  # the read is running in its thread
            if stop == "cancel":
                scope.cancel()
            else:
                await snapshot.aclose()
        if stop == "cancel":
            assert isinstance(outcome[0], trio.Cancelled)
            # A cancelled read leaves the snapshot usable only for aclose.
            with pytest.raises(StoreError, match="unusable after a cancelled read"):
                await snapshot.next_batch(10)
            await snapshot.aclose()
        else:
            assert isinstance(outcome[0], StoreClosed)
            assert "closed during a read" in str(outcome[0])
    assert trio.current_time() - started < 2.0


# -- bounded memory on a large history ------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for RSS")
async def test_iter_results_memory_stays_bounded_whatever_the_history_size(tmp_path: Path) -> None:
    """100k rows would take ~33 MiB as raw rows alone, and ~150 MiB decoded: streaming holds
    one batch, so the RSS grows by far less than either."""
    import gc

    size = 100_000
    path = tmp_path / "big.sqlite"
    async with open_store(path):
        pass  # the store's own schema
    key, value = mcstore.encode_result(failed(7))
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO mc_results VALUES ('default', ?, ?)",
            ((key[:8] + i.to_bytes(8, "big") + key[16:], value) for i in range(size)),
        )
    async with open_store(path, max_records=0) as store:
        gc.collect()
        base = peak = rss_bytes()
        count = 0
        async with contextlib.aclosing(store.iter_results(batch_size=1000)) as results:
            async for streamed in results:
                assert streamed.id == count
                count += 1
                if count % 1000 == 0:
                    peak = max(peak, rss_bytes())
    assert count == size
    assert peak - base < 16 * 1024 * 1024, f"RSS grew by {(peak - base) / 2**20:.1f} MiB"


async def test_one_task_at_a_time(backend: WatchedBackend) -> None:
    with trio.fail_after(BUDGET):
        async with store_of(backend) as store:
            for i in range(20):
                store.add_result(result(i))
            await store.flush()
            backend.hold_read = 1
            async with contextlib.aclosing(store.iter_results(batch_size=10)) as results:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(results.__anext__)
                    await backend.read_held.wait()
                    with pytest.raises(trio.BusyResourceError, match="another task"):
                        await results.__anext__()
                    nursery.cancel_scope.cancel()


# -- property: the iteration is the snapshot, whatever happens meanwhile --------------------------


@given(
    st.lists(payment_results(), min_size=2, max_size=40),
    st.lists(payment_results(), max_size=20),
    st.integers(min_value=1, max_value=4),
    st.data(),
    st.sampled_from([0, 5, 25]),
    st.sampled_from(["flush", "clear", "fetch_all"]),
)
def test_iteration_yields_the_snapshot_whatever_is_written_meanwhile(
    stored: list[mcstore.PaymentResult],
    later: list[mcstore.PaymentResult],
    batch_size: int,
    data: st.DataObject,
    max_records: int,
    meanwhile: str,
) -> None:
    async def scenario() -> None:
        async with open_store(MemoryBackend(), max_records=max_records) as store:
            for r in stored:
                store.add_result(r)
            await store.flush()
            expected = await store.fetch_all()
            # Write after this many results have been yielded (0: never), mostly inside the snapshot.
            after = data.draw(st.integers(min_value=0, max_value=len(expected)), label="after")
            seen: list[mcstore.PaymentResult] = []
            async with contextlib.aclosing(store.iter_results(batch_size)) as results:
                while True:
                    if len(seen) == after and after > 0:
                        for extra in later:
                            store.add_result(extra)
                        await store.flush()
                        if meanwhile == "clear":
                            await store.clear()
                        elif meanwhile == "fetch_all":
                            await store.fetch_all()
                    try:
                        seen.append(await results.__anext__())
                    except StopAsyncIteration:
                        break
            assert seen == expected

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
