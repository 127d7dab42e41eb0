"""One writer per namespace, even when the lock is lost: the fencing token, and the file identity.

Each store writes a fencing token for its namespace when it opens, and every write checks it
inside its transaction. A store whose lock was lost behind its back (a deleted lock file, an
advisory lock released on its session) and whose namespace another store then opened must write
nothing more: its flushes fail loudly with :class:`~mcstore.StoreFenced`, and its results end in
``store.unpersisted``. On SQLite a flush after the database file was deleted, renamed or replaced
fails the same way. The shared test runs on every backend; the two-process tests on both real
ones. Also here: the migration of a schema-version-1 database, which adds the token's column.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from backend_fixtures import BackendFactory
from click.testing import CliRunner
from factories import PROBE_RESULT, result
from shutdown_checks import SCRIPTS_DIR, StorePlace, child_env, sqlite_results

from mcstore import (
    FlushError,
    FlushOutcome,
    PaymentResult,
    PostgresBackend,
    SQLiteBackend,
    StoreError,
    StoreFenced,
    StoreLocked,
    encode_result,
    open_store,
)
from mcstore.backends import open_reader
from mcstore.backends import postgres as postgres_backend
from mcstore.backends import sqlite as sqlite_backend
from mcstore.backends._lock import NamespaceLock, legacy_lock_path, lock_path_for
from mcstore.cli import cli

PROBE = os.path.join(SCRIPTS_DIR, "open_probe.py")
BUDGET = 60.0


def fenced(exc: BaseException) -> StoreFenced:
    """The :class:`StoreFenced` behind a failed flush."""
    assert isinstance(exc, FlushError), exc
    cause = exc.__cause__
    assert isinstance(cause, StoreFenced), cause
    return cause


# -- the shared test: every backend ------------------------------------------------------------


async def test_a_store_whose_namespace_was_taken_over_writes_nothing_and_hands_its_results_back(
    make_backend: BackendFactory, store_clock: trio.testing.MockClock | None, caplog: pytest.LogCaptureFixture
) -> None:
    mine = [result(i) for i in (1, 2, 3)]
    theirs = [result(i) for i in (10, 11)]
    first_backend = make_backend()
    with trio.fail_after(BUDGET), pytest.raises(FlushError, match="could not be persisted"):
        async with open_store(first_backend, max_records=0, flush_interval=3600.0, shutdown_timeout=30.0) as first:
            first.add_result(mine[0])
            await first.flush()
            await make_backend.drop_lock(first_backend)
            # The lock is free: a second store opens the namespace, and writes its token.
            async with open_store(make_backend(), max_records=0, flush_interval=3600.0) as second:
                second.add_result(theirs[0])
                await second.flush()
                first.add_result(mine[1])
                with caplog.at_level(logging.ERROR, logger="mcstore"), pytest.raises(FlushError) as failure:
                    await first.flush()
                assert "taken over by another store" in str(fenced(failure.value))
                errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
                assert any("namespace 'default'" in m and "taken over by another store" in m for m in errors), errors
                assert first.stats().pending == 1
                second.add_result(theirs[1])
                await second.flush()
            # The other store has closed, and still the first one may not write.
            first.add_result(mine[2])
            with pytest.raises(FlushError) as failure:
                await first.flush()
            fenced(failure.value)
            closing = trio.current_time()
    # The final flush gave up at once (a fenced store never recovers), not at shutdown_timeout.
    assert trio.current_time() - closing < 10.0
    assert first.unpersisted == (mine[1], mine[2])
    async with open_store(make_backend(), max_records=0) as reopened:
        kept = reopened.stats().stored  # the kept count, as stored: before fetch_all recounts
        assert await reopened.fetch_all() == [mine[0], *theirs]
    assert kept == 3


async def test_a_fenced_flush_under_a_cap_deletes_nothing_either(
    make_backend: BackendFactory, store_clock: trio.testing.MockClock | None
) -> None:
    # The prune is a write too: a fenced store must not trim the namespace that another store
    # now owns to its own max_records. (PostgreSQL sends a flush's statements in one round trip,
    # before it has seen the token, so each of them is conditional on it.)
    theirs = [result(i) for i in (10, 11, 12)]
    first_backend = make_backend()
    with trio.fail_after(BUDGET), pytest.raises(FlushError, match="could not be persisted"):
        async with open_store(first_backend, max_records=2, flush_interval=3600.0, shutdown_timeout=30.0) as first:
            await make_backend.drop_lock(first_backend)
            async with open_store(make_backend(), max_records=0, flush_interval=3600.0) as second:
                for r in theirs:
                    second.add_result(r)
                await second.flush()
            first.add_result(result(20))
            with pytest.raises(FlushError) as failure:
                await first.flush()
            fenced(failure.value)
            assert first.stats().pending == 1
    assert first.unpersisted == (result(20),)
    async with open_store(make_backend(), max_records=0) as reopened:
        kept = reopened.stats().stored
        assert await reopened.fetch_all() == theirs
    assert kept == 3


# -- two processes -------------------------------------------------------------------------------


async def run_probe(path: str) -> str:
    """Open namespace "default" in another process, write PROBE_RESULT, close; return its output."""
    done = await trio.run_process(
        [sys.executable, PROBE, path, "default"], capture_stdout=True, capture_stderr=True, check=False, env=child_env()
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def lose_the_lock(place: StorePlace) -> None:
    """Free the namespace lock of the store open on ``place``, as an operator or a fault would:
    delete the lock file (SQLite), or end the store's session (PostgreSQL; the store reconnects
    and re-locks at its next flush, once the other process has gone)."""
    if place.kind == "sqlite":
        os.unlink(lock_path_for(place.path, "default"))
        return
    from test_postgres import admin, store_pids, terminate

    with admin(place.path) as conn:
        [pid] = store_pids(conn)
        terminate(conn, pid)


@pytest.mark.slow
async def test_the_lock_lost_and_a_second_process_in_then_the_first_store_writes_nothing(
    store_place: StorePlace, caplog: pytest.LogCaptureFixture
) -> None:
    # The repro: with a store open, its lock is lost (rm <db>@default.lock), a second
    # process opens the namespace and flushes. Before the fencing token both wrote, and the
    # kept count ended at 3 for 4 rows.
    path = store_place.path
    mine = [result(i) for i in (1, 2, 3)]
    with trio.fail_after(BUDGET), pytest.raises(FlushError, match="could not be persisted"):
        async with open_store(path, max_records=0, flush_interval=3600.0) as store:
            store.add_result(mine[0])
            store.add_result(mine[1])
            await store.flush()
            lose_the_lock(store_place)
            assert await run_probe(path) == "opened"
            store.add_result(mine[2])
            with caplog.at_level(logging.ERROR, logger="mcstore"), pytest.raises(FlushError) as failure:
                await store.flush()
            assert "taken over by another store" in str(fenced(failure.value))
    assert store.unpersisted == (mine[2],)
    assert store_place.results() == sorted([mine[0], mine[1], PROBE_RESULT], key=lambda r: r.key)
    assert store_place.integrity() == "ok"  # the kept count is 3, for 3 rows


# -- SQLite: the database file deleted, renamed or replaced ------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "renamed", "replaced"])
async def test_a_flush_after_the_database_file_was_deleted_or_replaced_fails_and_keeps_its_batch(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "mc.sqlite"
    moved = tmp_path / "moved.sqlite"
    with trio.fail_after(BUDGET), pytest.raises(FlushError, match="could not be persisted"):
        async with open_store(path, max_records=0, flush_interval=3600.0) as store:
            store.add_result(result(1))
            await store.flush()
            if how == "deleted":
                path.unlink()
            elif how == "renamed":  # with its companions, as moving a database should
                for suffix in ("", "-wal", "-shm"):
                    os.rename(f"{path}{suffix}", f"{moved}{suffix}")
            else:
                with contextlib.closing(sqlite3.connect(moved)) as other:
                    other.execute("CREATE TABLE t(x)")
                os.replace(moved, path)
            store.add_result(result(2))
            with caplog.at_level(logging.ERROR, logger="mcstore"), pytest.raises(FlushError) as failure:
                await store.flush()
            message = str(fenced(failure.value))
            assert str(path) in message
            assert ("replaced by another file" if how == "replaced" else "deleted or renamed") in message
            assert any(str(path) in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert store.unpersisted == (result(2),)
    if how == "renamed":
        assert sqlite_results(moved) == [result(1)]  # nothing written into the file under its new name
    elif how == "replaced":
        assert result(2) not in sqlite_results(path)


# -- schema version 1: migrated by a writer, read as it is by readers ------------------------------

V1_SQLITE = (
    "CREATE TABLE mc_results(namespace TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, "
    "PRIMARY KEY(namespace, key)) WITHOUT ROWID",
    "CREATE TABLE mc_namespaces(namespace TEXT PRIMARY KEY, stored INTEGER NOT NULL) WITHOUT ROWID",
    "PRAGMA user_version = 1",
)
"""The schema an mcstore of schema version 1 made (frozen: it is what old files hold)."""


def write_v1(conn: Any, schema: Sequence[str], placeholder: str) -> None:
    """Make a version-1 ``schema`` on ``conn`` (sqlite3 or psycopg, autocommit) with two results
    in "default", as an older mcstore left them; ``placeholder`` is the driver's parameter mark."""
    for statement in schema:
        conn.execute(statement)
    for r in (result(1), result(2)):
        conn.execute(f"INSERT INTO mc_results VALUES ('default', {placeholder}, {placeholder})", encode_result(r))
    conn.execute("INSERT INTO mc_namespaces VALUES ('default', 2)")


def make_v1_sqlite(path: Path) -> None:
    """A version-1 database, in WAL mode (see write_v1)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        write_v1(conn, V1_SQLITE, "?")


def sqlite_schema(path: Path) -> tuple[int, list[str]]:
    """The file's user_version and the columns of mc_namespaces."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        columns = [str(row[1]) for row in conn.execute("PRAGMA table_info(mc_namespaces)")]
    return version, columns


async def write_after_migrating(place: StorePlace) -> None:
    """Open the version-1 database of ``place`` with a store (which migrates it) and add a result;
    check that nothing was lost and the kept count is right."""
    with trio.fail_after(BUDGET):
        async with open_store(place.path, max_records=0) as store:
            assert store.stats().stored == 2
            store.add_result(result(3))
    assert place.results() == [result(1), result(2), result(3)]
    assert place.integrity() == "ok"


async def test_a_writer_migrates_a_version_1_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"
    make_v1_sqlite(path)
    await write_after_migrating(StorePlace("sqlite", str(path)))
    assert sqlite_schema(path) == (sqlite_backend.SCHEMA_VERSION, ["namespace", "stored", "owner"])
    # The older lock file name was taken for the migration, and removed again.
    assert sorted(name for name in os.listdir(tmp_path) if name.endswith(".lock")) == [
        Path(lock_path_for(str(path), "default")).name
    ]


async def test_a_migration_that_fails_half_way_leaves_version_1_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mc.sqlite"
    make_v1_sqlite(path)
    # The column is added, then the next statement fails: the transaction must take both back.
    monkeypatch.setattr(sqlite_backend, "_MIGRATE_1_TO_2", (*sqlite_backend._MIGRATE_1_TO_2, "SELECT no_such_fn()"))
    with trio.fail_after(BUDGET), pytest.raises(StoreError, match="no_such_fn"):
        async with open_store(path):
            pass
    assert sqlite_schema(path) == (1, ["namespace", "stored"])
    assert sqlite_results(path) == [result(1), result(2)]
    monkeypatch.undo()
    async with open_store(path, max_records=0) as store:  # a later open migrates
        assert await store.fetch_all() == [result(1), result(2)]
    assert sqlite_schema(path)[0] == sqlite_backend.SCHEMA_VERSION


async def test_no_migration_while_an_older_mcstore_has_the_namespace_open(tmp_path: Path) -> None:
    # An older mcstore locks <db>.default.lock, which the new one does not use: without taking
    # that name too, both would write the namespace.
    path = tmp_path / "mc.sqlite"
    make_v1_sqlite(path)
    older = NamespaceLock(str(path), "default", legacy=True)
    assert older.path == legacy_lock_path(str(path), "default") == f"{path}.default.lock"
    older.acquire()
    try:
        with trio.fail_after(BUDGET), pytest.raises(StoreLocked, match="older mcstore"):
            async with open_store(path):
                pass
        assert sqlite_schema(path)[0] == 1
    finally:
        older.release()
    async with open_store(path):
        pass
    assert sqlite_schema(path)[0] == sqlite_backend.SCHEMA_VERSION


async def test_readers_read_a_version_1_sqlite_database_and_never_migrate_it(tmp_path: Path) -> None:
    path = tmp_path / "mc.sqlite"
    make_v1_sqlite(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    async with contextlib.aclosing(await open_reader(path)) as reader:
        assert reader.schema_version == 1
        assert await reader.namespaces() == {"default": 2}
        async with contextlib.aclosing(await reader.open_snapshot("default")) as snapshot:
            assert await snapshot.next_batch(10) == [encode_result(result(1)), encode_result(result(2))]
    assert sqlite_schema(path) == (1, ["namespace", "stored"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


V1_POSTGRES = (
    "CREATE TABLE mc_schema(version integer NOT NULL)",
    'CREATE TABLE mc_results(namespace text COLLATE "C" NOT NULL, key bytea NOT NULL, value bytea NOT NULL, '
    "PRIMARY KEY(namespace, key))",
    'CREATE TABLE mc_namespaces(namespace text COLLATE "C" PRIMARY KEY, stored bigint NOT NULL)',
    "INSERT INTO mc_schema VALUES (1)",
)


def make_v1_postgres(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        write_v1(conn, V1_POSTGRES, "%s")


def postgres_schema(dsn: str) -> tuple[int, list[str]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT max(version) FROM mc_schema").fetchone()
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'mc_namespaces' ORDER BY ordinal_position"
        ).fetchall()
    assert row is not None
    return int(row[0]), [str(c) for (c,) in columns]


async def test_a_writer_migrates_a_version_1_postgres_schema_atomically(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_v1_postgres(pg_dsn)
    async with contextlib.aclosing(await open_reader(pg_dsn)) as reader:  # read as it is
        assert reader.schema_version == 1 and await reader.namespaces() == {"default": 2}
    monkeypatch.setattr(
        postgres_backend, "_MIGRATE_1_TO_2", (*postgres_backend._MIGRATE_1_TO_2, "SELECT no_such_fn()")
    )
    with trio.fail_after(BUDGET), pytest.raises(StoreError, match="no_such_fn"):
        async with open_store(PostgresBackend(pg_dsn)):
            pass
    assert postgres_schema(pg_dsn) == (1, ["namespace", "stored"])
    monkeypatch.undo()
    await write_after_migrating(StorePlace("postgres", pg_dsn))
    assert postgres_schema(pg_dsn) == (postgres_backend.SCHEMA_VERSION, ["namespace", "stored", "owner"])


# -- the demo's proof ------------------------------------------------------------------------------


def test_the_demo_proof_expects_none_of_the_results_it_reported_unpersisted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "demo.sqlite"
    first = CliRunner().invoke(cli, ["demo", "--db", str(db), "--payments", "20", "--seed", "1"])
    assert first.exit_code == 0, first.output
    stored = sqlite_results(db)
    real = SQLiteBackend.store_results

    async def taken_over(self: SQLiteBackend, results: Sequence[PaymentResult], max_records: int) -> FlushOutcome:
        # Another store takes the namespace over before the run's first flush: every flush fails.
        with contextlib.closing(sqlite3.connect(self.path)) as other:
            other.execute("UPDATE mc_namespaces SET owner = x'00'")
            other.commit()
        return await real(self, results, max_records)

    monkeypatch.setattr(SQLiteBackend, "store_results", taken_over)
    second = CliRunner().invoke(cli, ["demo", "--db", str(db), "--payments", "20", "--seed", "2"])
    assert second.exit_code == 1, second.output
    assert f"Proof: {len(stored)} records in the database, {len(stored)} expected by the model" in second.stdout
    error = second.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: {db}: ") and "accepted results could not be made durable" in error
    unpersisted = int(error.split(": ")[2].split()[0])
    assert unpersisted > 0
    assert f"less the {unpersisted} reported unpersisted)): OK" in second.stdout and "MISMATCH" not in second.output
    assert sqlite_results(db) == stored
