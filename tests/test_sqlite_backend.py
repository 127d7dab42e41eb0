"""The store on real SQLite, on the real clock: lnd's store test scenarios, the file format,
locking, corrupted rows, and interrupting a statement that would run past the deadline.

lnd's scenario and the same-process lock run on PostgreSQL too (the ``store_place`` fixture).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
from factories import failed, result
from shutdown_checks import StorePlace

import mcstore
from mcstore import (
    FlushError,
    FlushOutcome,
    PaymentResult,
    SQLiteBackend,
    StoreError,
    StoreLocked,
    encode_result,
    open_store,
)
from mcstore.backends.sqlite import SCHEMA_VERSION

BUDGET = 30.0  # real seconds; a hang fails the test instead of stalling CI


class ObservedBackend(SQLiteBackend):
    """An SQLiteBackend that reports, through events, when a flush starts and when one ends."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.flush_started = trio.Event()
        self.flushed = trio.Event()
        self.fetch_started = trio.Event()

    async def fetch_all(self) -> mcstore.FetchOutcome:
        self.fetch_started.set()
        return await super().fetch_all()

    async def store_results(self, results: Sequence[PaymentResult], max_records: int) -> FlushOutcome:
        self.flush_started.set()
        try:
            return await super().store_results(results, max_records)
        finally:
            self.flushed.set()
            self.flushed = trio.Event()


def rows(path: Path, namespace: str = "default") -> list[tuple[bytes, bytes]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT key, value FROM mc_results WHERE namespace = ? ORDER BY key", (namespace,)
        ).fetchall()


def add_slow_trigger(path: Path) -> None:
    """Make every insert into mc_results run a query of over a second (216M rows) unless interrupted.

    64M rows (400 filler rows) once took over a second; on a faster machine it took 0.48 s, under the
    0.5 s shutdown deadlines that the tests rely on, so the final flush committed.

    Bounded on purpose: if interrupting ever broke, the tests below fail on their elapsed
    time instead of hanging CI on a thread that cannot be abandoned."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS filler(x INTEGER)")
        conn.executemany("INSERT INTO filler VALUES (?)", [(i,) for i in range(600)])
        conn.execute(
            "CREATE TRIGGER slow AFTER INSERT ON mc_results BEGIN "
            "SELECT count(*) FROM filler a, filler b, filler c; END"
        )


async def test_schema_and_bytes_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"
    with trio.fail_after(BUDGET):
        async with open_store(path) as store:
            store.add_result(failed(2))
            store.add_result(result(1))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'mc_results'").fetchone()[0]
    assert "PRIMARY KEY(namespace, key)) WITHOUT ROWID" in sql
    # lnd's key and value bytes, in key (chronological) order.
    assert rows(path) == [mcstore.encode_result(result(1)), mcstore.encode_result(failed(2))]


async def test_lnd_scenario_ordering_idempotent_add_and_pruning_across_reopen(store_place: StorePlace) -> None:
    # lnd's TestMissionControlStore, rewritten: results come back in reply-time order, adding
    # the same result twice stores it once, and the cap holds across a restart. On every real
    # backend (an SQLite file, a PostgreSQL schema).
    path = store_place.path
    with trio.fail_after(BUDGET):
        async with open_store(path, max_records=3, flush_interval=0.01) as store:
            assert await store.fetch_all() == []
            store.add_result(failed(2, reply=2_000))
            store.add_result(result(1, reply=1_000))  # replied earlier, added later
            store.add_result(result(1, reply=1_000))  # idempotent add
            await store.flush()
            assert [r.id for r in await store.fetch_all()] == [1, 2]
            assert store.stats().deduplicated == 1
        async with open_store(path, max_records=3) as store:
            assert [r.id for r in await store.fetch_all()] == [1, 2]
            store.add_result(result(3, reply=3_000))
            store.add_result(result(4, reply=4_000))
        async with open_store(path, max_records=3) as store:
            assert [r.id for r in await store.fetch_all()] == [2, 3, 4]
            assert store.stats().stored == 3
        async with open_store(path, max_records=2) as store:  # a smaller cap prunes at open
            assert [r.id for r in await store.fetch_all()] == [3, 4]


async def test_periodic_flushing(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"
    backend = ObservedBackend(path)
    with trio.fail_after(BUDGET):
        async with open_store(backend, flush_interval=0.02) as store:
            store.add_result(result(1))
            await backend.flushed.wait()  # the ticker, not flush(), made it durable
            assert [k for k, _ in rows(path)] == [result(1).key]
            store.add_result(result(2))
            await backend.flushed.wait()
            assert len(rows(path)) == 2
            assert store.stats().flushes == 2


async def test_a_flush_is_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"
    backend = SQLiteBackend(path)
    statements: list[str] = []
    async with open_store(backend, max_records=100) as store:
        assert backend._conn is not None
        backend._conn.set_trace_callback(statements.append)
        for i in range(500):
            store.add_result(result(i))
        await store.flush()
        backend._conn.set_trace_callback(None)
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert statements.count("COMMIT") == 1
    assert store.stats().pruned == 400
    assert len(rows(path)) == 100


async def test_a_flush_inserts_with_few_multi_row_statements_and_dedups_across_them(tmp_path: Path) -> None:
    """A flush runs a handful of statements whatever its size, not one per row: each statement
    gives the GIL up and must take it back, which a busy event loop makes slow. Duplicates are
    still skipped across the statements: against stored keys and within the batch."""
    path = tmp_path / "mc.sqlite"
    backend = SQLiteBackend(path)
    statements: list[str] = []
    async with open_store(backend, max_records=0) as store:
        for i in range(300):
            store.add_result(result(i))
        await store.flush()
        assert backend._conn is not None
        backend._conn.set_trace_callback(statements.append)
        batch = [result(i) for i in range(250, 1000)] + [result(i) for i in range(600, 700)] + [result(999)]
        for r in batch:
            store.add_result(r)
        await store.flush()
        backend._conn.set_trace_callback(None)
        stats = store.stats()
    inserts = [s for s in statements if s.startswith("INSERT OR IGNORE INTO mc_results")]
    # 851 rows: 3 statements of 256, then 64 + 16 + 2 + 1.
    assert len(inserts) == 7, [s[:60] for s in inserts]
    # BEGIN IMMEDIATE, the count (whose statement checks the fencing token too), COMMIT
    assert len(statements) == len(inserts) + 3, [s[:60] for s in statements if not s.startswith("INSERT OR")]
    assert stats.stored == 1000 and stats.deduplicated == 50 + 100 + 1
    assert [k for k, _ in rows(path)] == sorted(result(i).key for i in range(1000))


async def test_corrupted_rows_are_logged_deleted_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "mc.sqlite"
    async with open_store(path) as store:
        store.add_result(result(1))
        store.add_result(result(3))
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE mc_results SET value = x'0008' WHERE key = ?", (result(3).key,)
        )  # truncated TLV
        conn.execute("INSERT INTO mc_results VALUES ('default', ?, x'ff')", (b"\x00" * 49,))
    with caplog.at_level(logging.WARNING, logger="mcstore"):
        async with open_store(path) as store:  # a corrupted row never makes open fail
            assert await store.fetch_all() == [result(1)]
            assert store.stats().corrupted_removed == 2
            assert store.stats().stored == 1
            assert await store.fetch_all() == [result(1)]
            assert store.stats().corrupted_removed == 2
    assert caplog.text.count("Removing undecodable mission control result") == 2
    assert result(3).key.hex() in caplog.text
    assert [k for k, _ in rows(path)] == [result(1).key]


async def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are not the droids\n" * 40)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StoreError, match="is not an SQLite database"):
        async with open_store(path):
            pass
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert not (tmp_path / "notes.txt-wal").exists()


async def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"
    async with open_store(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade mcstore"):
        async with open_store(path):
            pass


async def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        async with open_store(tmp_path / "nope" / "mc.sqlite"):
            pass


async def test_namespace_lock_same_process(store_place: StorePlace) -> None:
    path = store_place.path
    async with open_store(path) as first:
        with pytest.raises(StoreLocked, match="already open"):
            async with open_store(path):
                pass
        async with open_store(path, namespace="other") as other:
            other.add_result(result(7))
        first.add_result(result(1))
    assert store_place.results() == [result(1)]
    assert store_place.results("other") == [result(7)]
    async with open_store(path):  # released on exit
        pass
    with pytest.raises(ZeroDivisionError):
        async with open_store(path):
            1 / 0  # noqa: B018
    async with open_store(path):  # and on an exceptional exit
        pass


async def test_hanging_commit_is_interrupted_at_the_deadline(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"
    async with open_store(path):
        pass
    add_slow_trigger(path)
    backend = SQLiteBackend(path)
    with trio.fail_after(BUDGET):
        start = trio.current_time()
        with pytest.raises(FlushError, match="2 accepted results"):
            async with open_store(backend, shutdown_timeout=0.3) as store:
                store.add_result(result(1))
                store.add_result(result(2))
        elapsed = trio.current_time() - start
    assert elapsed < 0.3 + 2.0  # the interrupted statement stops at once, not minutes later
    assert store.unpersisted == (result(1), result(2))
    assert backend.calls_in_flight == 0
    assert rows(path) == []  # the transaction rolled back
    async with open_store(path) as store:  # the lock was released; the file is healthy
        assert await store.fetch_all() == []


async def test_a_flush_cancelled_between_two_statements_stops_at_the_next_one(tmp_path: Path) -> None:
    """Cancelled after ``BEGIN IMMEDIATE``, before the slow INSERT starts: no statement runs,
    so ``Connection.interrupt()`` does nothing, and only the progress handler, which reads the
    call's sticky cancel flag, can stop the INSERT (over a second with the slow trigger).
    (Issue 17, mutant killed: a progress handler that never interrupts.)"""
    path = tmp_path / "mc.sqlite"
    async with open_store(path):
        pass
    add_slow_trigger(path)
    token = trio.lowlevel.current_trio_token()
    flush_scope = trio.CancelScope()
    cancelled = threading.Event()
    armed = False

    def cancel_the_flush() -> None:  # in the Trio thread
        flush_scope.cancel()  # the flush's abort runs now: it sets the flag, interrupt() is a no-op
        cancelled.set()

    class CancelledAfterBegin(SQLiteBackend):
        def _begin(self, conn: sqlite3.Connection) -> None:
            super()._begin(conn)
            if armed:  # in the worker thread, in the flush's transaction, between two statements
                token.run_sync_soon(cancel_the_flush)
                if not cancelled.wait(BUDGET):
                    raise AssertionError("the flush was never cancelled")

    backend = CancelledAfterBegin(path)
    with trio.fail_after(BUDGET):
        async with open_store(backend, max_records=0, flush_interval=3600.0) as store:
            store.add_result(result(1))
            armed = True
            started = time.monotonic()
            with flush_scope:
                await store.flush()
            elapsed = time.monotonic() - started
            armed = False
            assert flush_scope.cancelled_caught
            assert elapsed < 0.5, f"the cancelled INSERT ran for {elapsed:.2f} s"
            assert store.stats().pending == 1 and rows(path) == []  # rolled back, kept
            with sqlite3.connect(path) as conn:
                conn.execute("DROP TRIGGER slow")  # so that the final flush is quick
    assert store.unpersisted == ()
    assert [key for key, _ in rows(path)] == [encode_result(result(1))[0]]


async def test_outer_cancel_during_a_long_flush_interrupts_it_and_hands_results_back(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"
    async with open_store(path):
        pass
    add_slow_trigger(path)
    backend = ObservedBackend(path)
    with trio.fail_after(BUDGET):
        with trio.move_on_after(5) as outer:
            async with open_store(backend, flush_interval=0.001, shutdown_timeout=0.3) as store:
                store.add_result(result(1))
                await backend.flush_started.wait()
                start = trio.current_time()
                outer.cancel()
                await trio.sleep_forever()
    assert trio.current_time() - start < 0.3 + 1.0  # not the 1.4 s the statement would take
    # The cancellation came out as itself (caught by its scope), not as a FlushError.
    assert outer.cancelled_caught
    assert store.unpersisted == (result(1),)
    assert rows(path) == []
    assert backend.calls_in_flight == 0


async def test_synchronous_mode_is_applied(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "mc.sqlite", synchronous="normal")
    async with open_store(backend):
        assert backend._conn is not None
        assert backend._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


async def test_a_symlink_to_the_database_shares_its_lock(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"
    link = tmp_path / "link.sqlite"
    async with open_store(path):
        link.symlink_to(path)
        with pytest.raises(StoreLocked):
            async with open_store(link):
                pass


async def test_close_stops_a_long_fetch_all_at_once(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"
    async with open_store(path, max_records=0) as store:
        for i in range(30_000):
            store.add_result(result(i))
    errors: list[BaseException] = []
    backend = ObservedBackend(path)
    with trio.fail_after(BUDGET):
        async with trio.open_nursery() as outer:
            async with open_store(backend, max_records=0, shutdown_timeout=0.5) as store:

                async def fetch() -> None:
                    try:
                        await store.fetch_all()
                    except StoreError as exc:
                        errors.append(exc)

                outer.start_soon(fetch)
                await backend.fetch_started.wait()  # decoding 30k rows takes far longer than 0.5 s
                store.add_result(result(10**6))
                start = trio.current_time()
            elapsed = trio.current_time() - start
    assert len(errors) == 1 and "closing" in str(errors[0])
    assert elapsed < 0.5
    assert store.unpersisted == ()
    assert result(10**6).key in [k for k, _ in rows(path)]
