"""The PostgreSQL backend on a real server: schema and bytes, the namespace lock, durability
settings, and faults (a terminated connection, a server restart, a table locked by another
session, a lost commit acknowledgement), plus a load test of 8 writer processes.

The server comes from the session fixture in ``conftest.py`` (a throwaway one, or
``MCSTORE_PG_DSN``); every test gets a fresh schema. Real clock, real threads: every wait on the
server's state is an explicit poll of that state with a deadline, never a bare sleep.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg
import pytest
import trio
from factories import failed, result, result_for
from shutdown_checks import StorePlace, pg_integrity, pg_results
from test_crash import Writer, check_after_crash

import mcstore
from mcstore import (
    FlushError,
    FlushOutcome,
    LocationError,
    PaymentResult,
    PostgresBackend,
    StoreError,
    StoreLocked,
    open_store,
)
from mcstore.backends import SQLiteBackend, backend_for_path, open_reader
from mcstore.backends.postgres import SCHEMA_VERSION, namespace_lock_key
from mcstore.testing import FaultyBackend, MemoryBackend
from mcstore.testing.pgserver import PostgresServer, scratch_schema

BUDGET = 60.0  # real seconds: a hang fails the test instead of stalling CI


def admin(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    """A separate autocommit session on the test's schema, as another client would have."""
    return psycopg.connect(dsn, autocommit=True)


def store_pids(conn: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    """Server pids of the sessions that mcstore opened (its ``application_name``)."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'mcstore' AND pid <> pg_backend_pid()"
    ).fetchall()
    return [int(pid) for (pid,) in rows]  # type: ignore[call-overload]


async def wait_for(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    """Poll ``condition()`` (run in a thread) until it is true; fail after ``seconds``.

    For states of the server (a session waiting on a lock, a reloaded setting), which nothing
    in this process can signal."""
    with trio.move_on_after(seconds):
        while not await trio.to_thread.run_sync(condition):  # noqa: ASYNC110 - the server's state
            await trio.sleep(0.005)
        return
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


def terminate(conn: psycopg.Connection[tuple[object, ...]], pid: int) -> None:
    """``pg_terminate_backend``, waiting (up to 10 s) until the session has ended."""
    assert conn.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone() == (True,)


def lock_table(blocker: psycopg.Connection[tuple[object, ...]]) -> None:
    """Hold ``mc_results`` in ACCESS EXCLUSIVE mode on ``blocker`` until it commits or rolls back.

    The server ends the blocker's session after 10 s idle in its transaction, so that a store
    that failed to cancel its waiting statement makes the test fail on its timing, not hang."""
    blocker.execute("SET idle_in_transaction_session_timeout = 10000")
    blocker.execute("BEGIN")
    blocker.execute("LOCK TABLE mc_results IN ACCESS EXCLUSIVE MODE")


def no_cancel_helper_alive() -> bool:
    return not [t for t in threading.enumerate() if t.name == "mcstore-pg-cancel"]


# -- selection, packaging ------------------------------------------------------------------------


def test_urls_select_postgres_and_everything_else_is_a_file() -> None:
    assert isinstance(backend_for_path("postgresql://u@h:5432/db"), PostgresBackend)
    assert isinstance(backend_for_path("POSTGRES://u@h/db"), PostgresBackend)
    assert isinstance(backend_for_path("postgresql-notes.sqlite"), SQLiteBackend)
    backend = PostgresBackend("postgresql://u:secret@h:5/db?sslmode=disable")
    assert backend_for_path(backend) is backend
    assert backend.where == "postgresql://u@h:5/db?sslmode=disable"  # never the password
    assert mcstore.PostgresBackend is PostgresBackend


async def test_without_psycopg_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    with pytest.raises(StoreError, match=r"'postgres' extra.*mcstore\[postgres\]"):
        PostgresBackend("postgresql://u@h/db")
    with pytest.raises(StoreError, match="'postgres' extra"):
        async with open_store("postgresql://u@h/db"):
            pass
    async with open_store(MemoryBackend()):  # the core works without it
        pass


# -- schema, bytes, order ------------------------------------------------------------------------


async def test_schema_bytes_and_bytewise_key_order(pg_dsn: str) -> None:
    low = result(1, reply=0x7F << 56)
    high = failed(2, reply=0x80 << 56)  # greater unsigned, smaller as a signed integer
    with trio.fail_after(BUDGET):
        async with open_store(pg_dsn, max_records=0) as store:
            store.add_result(high)
            store.add_result(low)
            await store.flush()
            assert await store.fetch_all() == [low, high]
        async with open_store(pg_dsn, max_records=1) as store:  # the cap keeps the greatest key
            assert await store.fetch_all() == [high]
    with admin(pg_dsn) as conn:
        assert conn.execute("SELECT version FROM mc_schema").fetchall() == [(SCHEMA_VERSION,)]
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, collation_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name IN ('mc_results', 'mc_namespaces') "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
        rows = conn.execute("SELECT namespace, key, value FROM mc_results").fetchall()
        counts = conn.execute("SELECT namespace, stored FROM mc_namespaces").fetchall()
    assert columns == [
        ("mc_namespaces", "namespace", "text", "C"),
        ("mc_namespaces", "stored", "bigint", None),
        ("mc_namespaces", "owner", "bytea", None),
        ("mc_results", "namespace", "text", "C"),
        ("mc_results", "key", "bytea", None),
        ("mc_results", "value", "bytea", None),
    ]
    assert rows == [("default", *mcstore.encode_result(high))]  # lnd's bytes
    assert counts == [("default", 1)]


async def test_a_newer_schema_version_is_refused(pg_dsn: str) -> None:
    async with open_store(pg_dsn):
        pass
    with admin(pg_dsn) as conn:
        conn.execute("UPDATE mc_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade mcstore"):
        async with open_store(pg_dsn):
            pass


async def test_an_unreachable_server_is_a_store_error_within_the_connect_timeout() -> None:
    with socket_closed_port() as port:
        started = time.monotonic()
        with pytest.raises(StoreError, match=f"PostgreSQL open failed on postgresql://x@127.0.0.1:{port}/db"):
            async with open_store(f"postgresql://x:pw@127.0.0.1:{port}/db"):
                pass
    assert time.monotonic() - started < 5.0


class socket_closed_port:
    """A loopback port with nothing listening on it."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        pass


# -- the namespace lock --------------------------------------------------------------------------


async def test_namespace_lock_is_an_advisory_lock_on_the_documented_key(pg_server: PostgresServer, pg_dsn: str) -> None:
    backend = PostgresBackend(pg_dsn)
    async with open_store(backend) as first:
        key = namespace_lock_key(backend.schema, "default")
        with admin(pg_dsn) as conn:
            held = conn.execute(
                "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
                "WHERE locktype = 'advisory' AND objsubid = 1 AND granted"
            ).fetchall()
        assert held == [(key,)]
        started = time.monotonic()
        with pytest.raises(StoreLocked, match="'default' is already open"):
            async with open_store(pg_dsn):
                pass
        assert time.monotonic() - started < 1.0
        async with open_store(pg_dsn, namespace="other") as other:  # another namespace: free
            other.add_result(result(7))
        with scratch_schema(pg_server.dsn) as elsewhere:  # the same namespace in another schema: free
            async with open_store(elsewhere):
                pass
        first.add_result(result(1))
    assert pg_results(pg_dsn) == [result(1)]
    assert pg_results(pg_dsn, "other") == [result(7)]
    async with open_store(pg_dsn):  # released on close, at once
        pass


async def test_reconnect_after_the_lock_was_taken_fails_loudly_and_keeps_results(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = PostgresBackend(pg_dsn)
    with trio.fail_after(BUDGET), admin(pg_dsn) as conn:
        async with open_store(backend, flush_interval=3600) as store:
            key = namespace_lock_key(backend.schema, "default")
            [pid] = store_pids(conn)
            terminate(conn, pid)
            assert conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone() == (True,)
            store.add_result(result(1))
            with caplog.at_level(logging.ERROR, logger="mcstore"), pytest.raises(FlushError, match="taken by another"):
                await store.flush()
            assert "was locked by another session" in caplog.text
            assert store.stats().pending == 1
            assert pg_results(pg_dsn) == []
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            await store.flush()  # the other session let go: re-locked, written
            assert backend.reconnects == 1
    assert pg_results(pg_dsn) == [result(1)]
    assert pg_integrity(pg_dsn) == "ok"


# -- durability settings -------------------------------------------------------------------------


async def test_synchronous_commit_is_on_whatever_the_session_default(pg_dsn: str) -> None:
    dsn = pg_dsn + "%20-csynchronous_commit%3Doff"  # the session default is off
    with admin(dsn) as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
    backend = PostgresBackend(dsn)
    async with open_store(backend):
        assert backend._conn is not None
        assert backend._conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert backend._conn.execute("SHOW tcp_keepalives_idle").fetchone() is not None


async def test_fsync_off_on_the_server_is_warned_about(
    pg_server: PostgresServer, pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    if not pg_server.can_restart:
        pytest.skip("changes the server's configuration: only on the throwaway server")
    with admin(pg_dsn) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("SELECT pg_reload_conf()")
        try:
            await wait_for(lambda: conn.execute("SHOW fsync").fetchone() == ("off",), "reload")
            with caplog.at_level(logging.WARNING, logger="mcstore"):
                async with open_store(pg_dsn):
                    pass
        finally:
            conn.execute("ALTER SYSTEM RESET fsync")
            conn.execute("SELECT pg_reload_conf()")
            await wait_for(lambda: conn.execute("SHOW fsync").fetchone() == ("on",), "reload")
    assert "runs with fsync=off" in caplog.text


# -- faults ----------------------------------------------------------------------------------------


class LostAcknowledgement(FaultyBackend):
    """Wraps a PostgresBackend: the first flush commits, then its connection is terminated and
    the flush reports a failure, as when the connection drops during COMMIT: the backend is put
    back to the count it had before (it never saw COMMIT's answer), and the store keeps the batch."""

    def __init__(self, inner: PostgresBackend, dsn: str) -> None:
        super().__init__(inner)
        self.dsn = dsn
        self.lost = 0

    async def store_results(self, results: Sequence[PaymentResult], max_records: int) -> FlushOutcome:
        inner = self.inner
        assert isinstance(inner, PostgresBackend)
        before = inner._stored
        outcome = await super().store_results(results, max_records)
        if self.lost == 0:
            self.lost += 1
            inner._stored = before
            with admin(self.dsn) as conn:
                for pid in store_pids(conn):
                    terminate(conn, pid)
            raise StoreError("connection lost during COMMIT (outcome unknown)")
        return outcome


async def test_a_commit_whose_outcome_was_unknown_is_retried_without_double_counting(pg_dsn: str) -> None:
    inner = PostgresBackend(pg_dsn)
    backend = LostAcknowledgement(inner, pg_dsn)
    batch = [result(i) for i in range(1, 6)]
    with trio.fail_after(BUDGET):
        async with open_store(backend, max_records=4, flush_interval=3600) as store:
            for r in batch:
                store.add_result(r)
            with pytest.raises(FlushError, match="outcome unknown"):
                await store.flush()
            assert store.stats().pending == 5  # committed, but the store cannot know it
            await store.flush()  # the retry: reconnects, re-locks, inserts nothing twice
            stats = store.stats()
            # 2..5 are stored already; 1, pruned by the first commit, comes back and is pruned again.
            assert (stats.pending, stats.deduplicated, stats.stored) == (0, 4, 4)
            assert inner.reconnects == 1
    assert pg_results(pg_dsn) == batch[1:]
    assert pg_integrity(pg_dsn) == "ok"  # the kept count is 4, not 8 or 9
    async with open_store(pg_dsn, max_records=4) as store:
        assert store.stats().stored == 4


async def test_a_flush_that_rolls_back_leaves_the_cached_count_as_it_was(pg_dsn: str) -> None:
    """A flush whose last round trip fails (the count update, sent with the COMMIT in one
    pipeline, fails on the server, so the server skips the COMMIT) rolls its transaction back
    before it returns: nothing stored, the cached count as it was, and no transaction left open
    holding the namespace's row (another session updates it without waiting)."""
    backend = PostgresBackend(pg_dsn)
    with trio.fail_after(BUDGET), admin(pg_dsn) as conn:
        async with open_store(backend, max_records=10, flush_interval=3600):
            await backend.store_results([result(1), result(2)], 10)
            assert backend._stored == 2
            conn.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$BEGIN RAISE EXCEPTION 'injected failure of the count update'; END$$"
            )
            conn.execute("CREATE TRIGGER refuse BEFORE UPDATE ON mc_namespaces FOR EACH ROW EXECUTE FUNCTION refuse()")
            with pytest.raises(StoreError, match="injected failure of the count update"):
                await backend.store_results([result(3), result(4)], 10)
            assert backend._stored == 2
            store_conn = backend._conn
            assert store_conn is not None
            assert store_conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            conn.execute("SET lock_timeout = '2s'")
            conn.execute("DROP TRIGGER refuse ON mc_namespaces")  # would wait for a lock still held
            assert [r.id for r in (await backend.fetch_all()).results] == [1, 2]
    assert pg_integrity(pg_dsn) == "ok"


async def test_a_flush_is_one_round_trip_whatever_its_size(pg_dsn: str, tmp_path: Path) -> None:
    """A flush sends all its statements in one pipeline and waits for the server once (in libpq's
    trace, one run of messages to the server, then the answers): every round trip adds the
    network's latency to the flush. 2500 results take three INSERTs (backends/postgres.py's
    _INSERT_CHUNK), and duplicates within the batch, across those statements, are counted once."""
    backend = PostgresBackend(pg_dsn)
    trace = tmp_path / "libpq.trace"
    with trio.fail_after(BUDGET):
        async with open_store(backend, max_records=0, flush_interval=3600) as store:
            store.add_result(result(0))
            await store.flush()  # connected
            assert backend._conn is not None
            for r in [result(i) for i in range(1, 2501)] + [result(999), result(2001)]:
                store.add_result(r)
            with trace.open("w") as f:
                backend._conn.pgconn.trace(f.fileno())
                try:
                    await store.flush()
                finally:
                    backend._conn.pgconn.untrace()
            stats = store.stats()
    directions = [line.split("\t")[1] for line in trace.read_text().splitlines()]  # F: to the server, B: back
    turns = [d for i, d in enumerate(directions) if d == "B" and directions[i - 1] == "F"]
    assert len(turns) == 1, directions
    assert (stats.stored, stats.deduplicated) == (2501, 2)
    assert pg_integrity(pg_dsn) == "ok"


async def test_idle_connection_terminated_is_replaced_transparently(pg_dsn: str) -> None:
    backend = PostgresBackend(pg_dsn)
    with trio.fail_after(BUDGET), admin(pg_dsn) as conn:
        async with open_store(backend, flush_interval=3600) as store:
            [pid] = store_pids(conn)
            terminate(conn, pid)
            store.add_result(result(1))
            await store.flush()
            assert store.stats().flush_failures == 0
            assert backend.reconnects == 1
            assert store_pids(conn) != [pid]
    assert pg_results(pg_dsn) == [result(1)]


async def test_connection_terminated_during_an_inflight_flush_loses_and_duplicates_nothing(pg_dsn: str) -> None:
    backend = PostgresBackend(pg_dsn)
    first = [result(i) for i in range(1, 4)]
    second = [result(i) for i in range(4, 7)]
    with trio.fail_after(BUDGET), admin(pg_dsn) as blocker, admin(pg_dsn) as conn:
        async with open_store(backend, max_records=0, flush_interval=3600) as store:
            for r in first:
                store.add_result(r)
            await store.flush()
            for r in [*first[1:], *second]:  # some already stored: deduplicated, not doubled
                store.add_result(r)
            lock_table(blocker)

            def waiting_pid() -> list[int]:
                return [int(pid) for (pid,) in conn.execute(  # type: ignore[call-overload]
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'mcstore' "
                    "AND wait_event_type = 'Lock'").fetchall()]

            async with trio.open_nursery() as nursery:
                nursery.start_soon(store.flush)
                await wait_for(lambda: bool(waiting_pid()), "the flush to wait on the table lock")
                [pid] = waiting_pid()  # in flight: inside its INSERT
                terminate(conn, pid)
                # The flush reconnects, re-locks and retries; it then waits on the table again.
                await wait_for(lambda: bool(waiting_pid()) and waiting_pid() != [pid], "the retry")
                blocker.execute("COMMIT")
            stats = store.stats()
            assert (stats.pending, stats.stored) == (0, 6)
            assert backend.reconnects == 1
    assert pg_results(pg_dsn) == first + second  # every acknowledged result, exactly once
    assert pg_integrity(pg_dsn) == "ok"


async def test_server_restart_in_the_middle_of_a_run_loses_nothing(pg_server: PostgresServer, pg_dsn: str) -> None:
    if not pg_server.can_restart:
        pytest.skip(f"needs a server started by the tests to restart it, not {mcstore.testing.pgserver.DSN_ENV}")
    backend = PostgresBackend(pg_dsn)
    acknowledged: list[int] = []
    failures = 0
    restarted = trio.Event()
    writing = trio.Event()
    with trio.fail_after(BUDGET):
        async with open_store(backend, max_records=0, flush_interval=0.005) as store:

            async def write() -> None:
                nonlocal failures
                next_id = 1
                while not restarted.is_set() or len(acknowledged) < 20:
                    for _ in range(5):
                        store.add_result(result_for(next_id))
                        next_id += 1
                    try:
                        await store.flush()
                        acknowledged.append(next_id - 1)
                        if len(acknowledged) == 10:
                            writing.set()
                    except FlushError:
                        failures += 1
                        await trio.sleep(0.01)

            async def restart() -> None:
                await writing.wait()
                await trio.to_thread.run_sync(pg_server.restart)
                acknowledged.clear()
                restarted.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(write)
                nursery.start_soon(restart)
            written = store.stats().accepted
    assert store.unpersisted == ()
    assert backend.reconnects >= 1
    ids = [r.id for r in pg_results(pg_dsn)]
    assert ids == list(range(1, written + 1))  # everything, acknowledged or not, exactly once
    assert pg_results(pg_dsn) == [result_for(i) for i in ids]
    assert pg_integrity(pg_dsn) == "ok"


async def test_close_returns_within_shutdown_timeout_while_another_session_locks_the_table(pg_dsn: str) -> None:
    async with open_store(pg_dsn):
        pass  # create the tables
    backend = PostgresBackend(pg_dsn)
    with trio.fail_after(BUDGET), admin(pg_dsn) as blocker:
        lock_table(blocker)
        started = trio.current_time()
        with pytest.raises(FlushError, match="2 accepted results"):
            async with open_store(backend, shutdown_timeout=0.3) as store:
                store.add_result(result(1))
                store.add_result(result(2))
                started = trio.current_time()
        elapsed = trio.current_time() - started
        with contextlib.suppress(psycopg.OperationalError):  # ended by the server after 10 s
            blocker.execute("ROLLBACK")
    assert elapsed < 0.3 + 0.5, elapsed  # the waiting INSERT was cancelled at the deadline
    assert store.unpersisted == (result(1), result(2))
    assert backend.calls_in_flight == 0 and no_cancel_helper_alive()
    assert pg_results(pg_dsn) == []
    async with open_store(pg_dsn) as store:  # unlocked; nothing half-written
        assert await store.fetch_all() == []


async def test_outer_cancellation_during_a_blocked_flush_hands_results_back(pg_dsn: str) -> None:
    async with open_store(pg_dsn):
        pass
    backend = PostgresBackend(pg_dsn)
    with trio.fail_after(BUDGET), admin(pg_dsn) as blocker, admin(pg_dsn) as conn:
        lock_table(blocker)
        with trio.CancelScope() as outer:
            async with open_store(backend, flush_interval=0.001, shutdown_timeout=0.2) as store:
                store.add_result(result(1))
                await wait_for(
                    lambda: conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mcstore' "
                                         "AND wait_event_type = 'Lock'").fetchone() == (1,),
                    "the flush to block",
                )
                start = trio.current_time()
                outer.cancel()
                await trio.sleep_forever()
        with contextlib.suppress(psycopg.OperationalError):  # ended by the server after 10 s
            blocker.execute("ROLLBACK")
    assert outer.cancelled_caught
    assert trio.current_time() - start < 0.2 + 0.5
    assert store.unpersisted == (result(1),)
    assert backend.calls_in_flight == 0 and no_cancel_helper_alive()
    assert pg_results(pg_dsn) == []


# -- load ------------------------------------------------------------------------------------------

LOAD_WRITERS = 8
LOAD_SECONDS = 30.0


@pytest.mark.slow
async def test_load_8_writer_processes_for_30_seconds_lose_nothing(
    pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """8 processes, one namespace each, write to one server over loopback; then SIGKILL.

    Every acknowledged result is present, and each namespace is sound. Prints flushes per
    second (acknowledged flushes over all writers) and the p99 flush time (as the writers
    measured ``flush()``).
    """
    place = StorePlace("postgres", pg_dsn)
    big = 10**9  # no cap in practice: every written id is checked
    with trio.fail_after(LOAD_SECONDS + 120):
        writers = [await Writer.start(pg_dsn, 1, big, namespace=f"load{n}") for n in range(LOAD_WRITERS)]
        try:
            for writer in writers:
                await writer.wait_ready()
            started = time.monotonic()
            with trio.move_on_after(LOAD_SECONDS):
                async with trio.open_nursery() as nursery:
                    for writer in writers:
                        nursery.start_soon(writer.read_all)
        finally:
            for writer in writers:
                await writer.kill()
        elapsed = time.monotonic() - started
    seconds = sorted(s for writer in writers for s in writer.flush_seconds)
    for n, writer in enumerate(writers):
        assert writer.acknowledged > 0
        check_after_crash(place, writer.acknowledged, big, namespace=f"load{n}")
    flushes_per_second = len(seconds) / elapsed
    p99 = seconds[min(len(seconds) - 1, math.ceil(0.99 * len(seconds)) - 1)]
    with capsys.disabled():
        print(
            f"\nPostgreSQL load: {LOAD_WRITERS} writers x {elapsed:.1f} s: {len(seconds)} flushes, "
            f"{flushes_per_second:.0f} flushes/s, p50 {seconds[len(seconds) // 2] * 1e3:.1f} ms, "
            f"p99 {p99 * 1e3:.1f} ms, {sum(w.acknowledged for w in writers)} results acknowledged"
        )


# -- the read-only reader (the shared reader tests are in test_reader.py) ------------------------------


async def test_reader_refuses_a_schema_without_mcstore_tables_and_an_unreachable_server(pg_dsn: str) -> None:
    with pytest.raises(LocationError, match=r"not an mcstore database \(no mc_results table in schema"):
        await open_reader(pg_dsn)
    with socket_closed_port() as port:
        with pytest.raises(LocationError, match=f"postgresql://x@127.0.0.1:{port}/db: cannot connect"):
            await open_reader(f"postgresql://x:secret@127.0.0.1:{port}/db")
