"""PostgreSQL failover: a primary with a synchronous standby, killed mid-run, the standby promoted.

The pair comes from :mod:`mcstore.testing.pgfailover` (the module fixture ``pg_pair`` in ``conftest.py``:
Debian's binaries, two servers on loopback, ``synchronous_standby_names = '*'``); the store writes
through its multi-host URL with ``target_session_attrs=read-write``, so a reconnect finds the new
primary. Each test gets a fresh schema on a healthy pair (a primary and its synchronous standby).

* A writer at full speed and five failovers at random moments (a chain: the dead primary's port
  gets a new standby of the new primary): after each, every result whose ``flush()`` returned is
  on the new primary exactly once, and writing goes on; at the end the kept count is the rows.
* A writer process SIGKILLed at a random moment of a failover: what it acknowledged is there.
* Asynchronous replication is warned about at open and in ``mcstore stats``.
* A promoted standby that still names standbys holds every commit: an ERROR names the setting,
  and a commit that was cancelled while it waited (committed locally, replication unconfirmed)
  is not acknowledged, and is stored exactly once by a later flush or a reopen.

Random moments come from a seeded generator; a failure message gives the seed.
"""

from __future__ import annotations

import logging
import random
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
import trio
from click.testing import CliRunner
from factories import result_for
from shutdown_checks import StorePlace, assert_nothing_running, pg_integrity, pg_results, reopen_after_kill
from test_crash import Writer, check_after_crash

from mcstore import FlushError, PostgresBackend, open_store
from mcstore.backends import postgres
from mcstore.backends._pgha import ReplicationState
from mcstore.cli import cli
from mcstore.testing.pgfailover import FullSpeedWriter, ReplicatedPair
from mcstore.testing.pgserver import scratch_schema, with_search_path

FAILOVERS = 5
BUDGET = 120.0  # real seconds for a whole test: a hang fails instead of stalling CI
ALARM = 0.3
"""``sync_wait_alarm`` of the tests of a commit that waits for a standby (default 5 s)."""
ASYNC_WARNING = "replicate asynchronously (synchronous_standby_names is empty): results acknowledged by flush()"


@pytest.fixture
def ha_dsn(pg_pair: ReplicatedPair) -> Iterator[str]:
    """A fresh schema on a healthy pair (its multi-host URL); the pair is made healthy again after
    the test, before the schema is dropped (a drop would wait forever for a missing standby)."""
    pg_pair.ensure_healthy()
    with scratch_schema(pg_pair.dsn, prefix="ha") as dsn:
        try:
            yield dsn
        finally:
            pg_pair.ensure_healthy()


def stored_ids(dsn: str) -> list[int]:
    return [r.id for r in pg_results(dsn)]


def seeded() -> tuple[int, random.Random]:
    """A random generator and its seed (to report: the same seed repeats the random moments)."""
    seed = random.randrange(2**32)
    return seed, random.Random(seed)


@pytest.mark.slow
async def test_a_writer_at_full_speed_loses_nothing_acknowledged_over_five_failovers(
    pg_pair: ReplicatedPair, ha_dsn: str
) -> None:
    seed, rng = seeded()
    backend = PostgresBackend(ha_dsn)
    promotions: list[float] = []
    with trio.fail_after(BUDGET):
        async with open_store(backend, max_records=0, flush_interval=0.005) as store:
            writer = FullSpeedWriter(store, result_for, random.Random(seed + 1))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer.run)
                for failover in range(FAILOVERS):
                    where = f"seed {seed}, failover {failover + 1}"
                    # A random moment: after a random number of flushes, then a random part of one.
                    await writer.wait_flushes(rng.randint(1, 20))
                    await trio.sleep(rng.uniform(0.0, 0.01))
                    times = await trio.to_thread.run_sync(pg_pair.fail_over)
                    promotions.append(times.promotion_seconds)
                    await writer.wait_flushes(3)  # writing goes on, on the new primary
                    acknowledged = writer.acknowledged
                    ids = await trio.to_thread.run_sync(stored_ids, ha_dsn)
                    assert ids[:acknowledged] == list(range(1, acknowledged + 1)), where
                    assert len(ids) == len(set(ids)), where
                    assert await trio.to_thread.run_sync(pg_integrity, ha_dsn) == "ok", where
                    await trio.to_thread.run_sync(pg_pair.add_standby)  # the next failover's standby
                await writer.wait_flushes(3)
                writer.stopping = True
        written = store.stats().accepted
    assert store.unpersisted == ()
    assert backend.reconnects >= FAILOVERS, seed
    # Everything accepted (the close flushed the rest) is on the last primary, exactly once.
    assert stored_ids(ha_dsn) == list(range(1, written + 1)), seed
    assert pg_results(ha_dsn) == [result_for(i) for i in range(1, written + 1)], seed
    assert pg_integrity(ha_dsn) == "ok", seed
    with psycopg.connect(ha_dsn) as conn:
        assert conn.execute("SELECT stored FROM mc_namespaces").fetchall() == [(written,)]


KILL_MAX_RECORDS = 300
KILL_WINDOW = 0.6
"""Seconds after the failover starts within which the writer is killed: the primary's death
(~0.1 s), the promotion, and the writer's reconnect to the new primary fall inside."""


@pytest.mark.slow
async def test_a_writer_process_killed_during_a_failover_loses_nothing_acknowledged(
    pg_pair: ReplicatedPair, ha_dsn: str
) -> None:
    seed, rng = seeded()
    moment = rng.uniform(0.0, KILL_WINDOW)
    where = f"seed {seed}: killed {moment:.3f} s into the failover"
    place = StorePlace("postgres", ha_dsn)
    with trio.fail_after(BUDGET):
        writer = await Writer.start(ha_dsn, 1, KILL_MAX_RECORDS, keep_going=True)
        killed = False
        try:
            await writer.wait_acknowledged(rng.randint(50, 2 * KILL_MAX_RECORDS))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, pg_pair.fail_over)
                with trio.move_on_after(moment):
                    await writer.read_all()
                killed = True
                await writer.kill()
        finally:
            if not killed:
                await writer.kill()
    assert writer.process.returncode == -signal.SIGKILL, where
    top = check_after_crash(place, writer.acknowledged, KILL_MAX_RECORDS)
    assert pg_integrity(ha_dsn) == "ok", where
    async with reopen_after_kill(ha_dsn, max_records=KILL_MAX_RECORDS, flush_interval=60.0) as store:
        assert store.stats().stored == min(top, KILL_MAX_RECORDS), where
        store.add_result(result_for(top + 1))  # and writing goes on
    assert stored_ids(ha_dsn)[-1] == top + 1, where


# -- asynchronous replication ----------------------------------------------------------------------


def stats_output(dsn: str) -> str:
    result = CliRunner().invoke(cli, ["stats", dsn], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


async def warnings_at_open(dsn: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    """The WARNINGs about replication that opening (and closing) a store on ``dsn`` logs."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mcstore"):
        async with open_store(dsn):
            pass
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "synchronous" in r.getMessage()]


async def test_asynchronous_standbys_are_warned_about_at_open_and_in_stats(
    pg_pair: ReplicatedPair, ha_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert await warnings_at_open(ha_dsn, caplog) == []  # synchronous: nothing to say
    line = [li for li in (await trio.to_thread.run_sync(stats_output, ha_dsn)).splitlines() if "Replication" in li]
    assert line == ["Replication: synchronous (1 standby connection(s), 1 synchronous; "
                    "synchronous_standby_names='*', synchronous_commit=on)"]
    await trio.to_thread.run_sync(pg_pair.primary.set_standby_names, "")
    try:
        [warning] = await warnings_at_open(ha_dsn, caplog)
        assert ASYNC_WARNING in warning and "can be lost on failover" in warning
        assert "Replication: WARNING: 1 standby connection(s) " + ASYNC_WARNING in await trio.to_thread.run_sync(
            stats_output, ha_dsn
        )
        # A role without pg_read_all_stats sees the standbys too (pg_stat_replication shows it
        # their rows, without details).
        with psycopg.connect(ha_dsn, autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS mc_plain")
            conn.execute("CREATE ROLE mc_plain LOGIN")
            conn.execute("CREATE SCHEMA mc_plain AUTHORIZATION mc_plain")
        plain = with_search_path(pg_pair.dsn.replace("mcstore@", "mc_plain@"), "mc_plain")
        try:
            [warning] = await warnings_at_open(plain, caplog)
            assert ASYNC_WARNING in warning
        finally:
            with psycopg.connect(ha_dsn, autocommit=True) as conn:
                conn.execute("DROP SCHEMA mc_plain CASCADE")
                conn.execute("DROP ROLE mc_plain")
    finally:
        await trio.to_thread.run_sync(pg_pair.primary.set_standby_names, "*")


async def test_a_session_that_does_not_wait_for_the_standby_is_warned_about(
    ha_dsn: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store sets ``synchronous_commit = on``; should the session still end up weaker (here
    forced after the store's own setting), opening says so."""
    connect = postgres.connect

    def connect_then_weaken(*args: Any) -> psycopg.Connection[Any]:
        conn = connect(*args)
        conn.execute("SET synchronous_commit = local")
        return conn

    monkeypatch.setattr(postgres, "connect", connect_then_weaken)
    [warning] = await warnings_at_open(ha_dsn, caplog)
    assert "session runs with synchronous_commit=local, which does not wait" in warning
    assert "can be lost on failover" in warning


@pytest.mark.parametrize(
    ("standbys", "synchronous", "names", "commit", "warning"),
    [
        (0, None, "", "on", None),
        (2, 1, "*", "on", None),
        (2, None, "*", "on", None),  # (sync_state hidden from the role)
        (1, 1, "ANY 1 (a, b)", "remote_apply", None),
        (1, None, "", "on", "1 standby connection(s) replicate asynchronously"),
        (1, 1, "*", "remote_write", "synchronous_commit=remote_write, which does not wait"),
        (1, None, "*", "off", "synchronous_commit=off, which does not wait"),
        (0, None, "*", "on", "names standbys but none of them is connected: every commit waits"),
        (2, 0, "s3", "on", "names standbys but none of them is connected: every commit waits"),
    ],
)
def test_replication_states_and_what_they_say(
    standbys: int, synchronous: int | None, names: str, commit: str, warning: str | None
) -> None:
    state = ReplicationState(standbys, names, commit, synchronous)
    if warning is None:
        assert state.warning is None
        assert not state.describe().startswith("WARNING")
    else:
        assert state.warning is not None and warning in state.warning
        assert state.describe() == f"WARNING: {state.warning}"


def test_sync_wait_alarm_must_be_a_positive_number_of_seconds() -> None:
    for bad in (0, -1.0, float("nan"), float("inf"), True, "5"):
        with pytest.raises(ValueError, match=f"sync_wait_alarm must be a number of seconds > 0, got {bad!r}"):
            PostgresBackend("postgresql://u@h/db", sync_wait_alarm=bad)  # type: ignore[arg-type]


# -- a promoted standby that still names standbys ----------------------------------------------------


class LogWatch(logging.Handler):
    """The ``mcstore`` logger's records at ``level`` and up that contain ``needle``, from any
    thread; ``seen`` is set at the first one."""

    def __init__(self, needle: str, level: int = logging.ERROR) -> None:
        super().__init__(level)
        self.needle = needle
        self.records: list[logging.LogRecord] = []
        self.seen = trio.Event()
        self._token = trio.lowlevel.current_trio_token()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.records.append(record)
            self._token.run_sync_soon(self.seen.set)


@contextmanager
def watching_log(needle: str) -> Iterator[LogWatch]:
    watch = LogWatch(needle)
    logger = logging.getLogger("mcstore")
    logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)


SYNC_WAIT_ERROR = "for synchronous replication (pg_stat_activity wait_event SyncRep)"
NOT_CONFIRMED = "committed on this server, but not confirmed replicated"


async def test_a_commit_waiting_for_a_missing_standby_is_reported_and_stored_once_when_fixed(
    pg_pair: ReplicatedPair, ha_dsn: str
) -> None:
    batch = [result_for(i) for i in range(1, 6)]
    backend = PostgresBackend(ha_dsn, sync_wait_alarm=ALARM)
    with trio.fail_after(BUDGET), watching_log(SYNC_WAIT_ERROR) as alarm, watching_log(NOT_CONFIRMED) as unconfirmed:
        async with open_store(backend, max_records=0, flush_interval=3600) as store:
            # The standby is promoted and keeps synchronous_standby_names = '*': no standby is left.
            await trio.to_thread.run_sync(lambda: pg_pair.fail_over(release_sync=False))
            for r in batch:
                store.add_result(r)
            with trio.CancelScope() as waiting:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(store.flush)
                    with trio.fail_after(ALARM + 20):
                        await alarm.seen.wait()
                    waiting.cancel()  # the caller gives up on the flush: its wait is cancelled
            [error] = alarm.records
            message = error.getMessage()
            assert "synchronous_standby_names='*'" in message
            assert "ALTER SYSTEM SET synchronous_standby_names = ''" in message
            # The server committed it locally and said so: not acknowledged, kept pending.
            assert store.stats().pending == len(batch)
            assert unconfirmed.records  # logged before the flush ended
            assert pg_results(ha_dsn) == batch  # (on this server, and only here)
            await trio.to_thread.run_sync(pg_pair.primary.set_standby_names, "")  # the operator's fix
            await store.flush()
            stats = store.stats()
            assert (stats.pending, stats.stored, stats.deduplicated) == (0, len(batch), len(batch))
    assert pg_results(ha_dsn) == batch
    assert pg_integrity(ha_dsn) == "ok"
    assert_nothing_running(backend)


async def test_a_close_while_a_commit_waits_for_a_missing_standby_reports_it_and_a_reopen_keeps_it_once(
    pg_pair: ReplicatedPair, ha_dsn: str
) -> None:
    batch = [result_for(i) for i in range(1, 6)]
    backend = PostgresBackend(ha_dsn, sync_wait_alarm=ALARM)
    shutdown_timeout = 2.0  # the final flush reconnects, then waits: longer than ALARM
    with trio.fail_after(BUDGET), watching_log(SYNC_WAIT_ERROR) as alarm, watching_log(NOT_CONFIRMED) as unconfirmed:
        with pytest.raises(FlushError, match=f"{len(batch)} accepted results could not be persisted"):
            async with open_store(
                backend, max_records=0, flush_interval=3600, shutdown_timeout=shutdown_timeout
            ) as store:
                for r in batch:
                    store.add_result(r)
                # The standby is promoted and keeps synchronous_standby_names = '*': the final
                # flush reconnects to it, commits, and waits for a standby that is not there.
                await trio.to_thread.run_sync(lambda: pg_pair.fail_over(release_sync=False))
                started = trio.current_time()
        elapsed = trio.current_time() - started
    assert elapsed < shutdown_timeout + 1.0  # the watch did not hold the close up
    assert_nothing_running(backend)
    assert alarm.records and unconfirmed.records
    assert store.unpersisted == tuple(batch)  # not confirmed replicated: reported
    assert pg_results(ha_dsn) == batch  # though committed on this server
    await trio.to_thread.run_sync(pg_pair.primary.set_standby_names, "")
    async with open_store(ha_dsn, max_records=0) as store:
        assert store.stats().stored == len(batch)
        for r in batch:  # the caller stores what it was handed back: nothing is doubled
            store.add_result(r)
        await store.flush()
        assert (store.stats().stored, store.stats().deduplicated) == (len(batch), len(batch))
    assert pg_results(ha_dsn) == batch
    assert pg_integrity(ha_dsn) == "ok"
