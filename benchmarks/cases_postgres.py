"""Case 8: the PostgreSQL backend, against raw psycopg doing the same writes on the same server.

The section starts its own throwaway server (:mod:`mcstore.testing.pgserver`, the helper the tests use),
or uses ``MCSTORE_PG_DSN``; the store and the raw baseline each get a fresh schema on it. Without
a server (no PostgreSQL binaries installed, and no ``MCSTORE_PG_DSN``) the section is skipped
with a note: benchmarks report, they do not fail for a missing optional server.

1. lnd's flush shape, as case 1: ``max_records=1000`` and 1000 results stored; each iteration
   adds N new results and flushes, timed from the first ``add_result`` to the end of ``flush()``.
   Baseline: one raw transaction on its own connection, ``executemany`` of the same pre-encoded
   rows (``INSERT ... ON CONFLICT DO NOTHING``) and the same prune to the 1000 greatest keys.
2. Accepted -> durable, as case 2: add n results and ``flush()``, against raw ``executemany`` of
   the same pre-encoded rows in one transaction. Target: >= 0.7x raw.
3. Failover (:mod:`benchmarks.cases_failover`, on a primary with a synchronous standby of its
   own): from the primary's death to the first successful flush on the new primary, beside the
   server's own promotion time.

Both sides commit with ``synchronous_commit = on`` over loopback TCP. Store and raw blocks
alternate within each repetition, and which goes first alternates too.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import Final

import trio

import mcstore
from mcstore import PaymentResult
from mcstore.testing import pgserver

from . import cases_failover
from .common import (
    NAMESPACE,
    Config,
    Figure,
    Stats,
    alternate,
    check,
    cold_copies,
    collect_garbage,
    encode_rows,
    lnd_bench_results,
    make_results,
    now_ns,
)

CASE: Final = 8
LND_NS_FULL: Final = (1, 10, 100, 250, 500)
LND_NS_QUICK: Final = (1, 100)
LND_MAX_RECORDS: Final = 1000
BATCHES_FULL: Final = (10, 100, 1000, 10_000)
BATCHES_QUICK: Final = (10, 100)
THROUGHPUT_TARGET: Final = 0.7
"""Issues 11 and 21: accepted -> durable >= 0.7x raw psycopg (issue 21: at batches of 10 and 100)."""


class RawPostgres:
    """Plain psycopg on its own schema: the store's table and statements, nothing else.

    No Trio, no worker thread, no encoding, no kept count, no advisory lock: what the store's
    writes cost with everything that is not the server's own work (and the driver's) removed.
    """

    INSERT: Final = "INSERT INTO mc_results(namespace, key, value) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
    PRUNE: Final = (
        "DELETE FROM mc_results WHERE namespace = %(ns)s AND key <= (SELECT key FROM mc_results "
        "WHERE namespace = %(ns)s ORDER BY key DESC OFFSET %(keep)s LIMIT 1)"
    )

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("SET synchronous_commit = on")
        self.stored = self.count()

    def insert(self, rows: Sequence[tuple[str, bytes, bytes]], max_records: int = 0) -> None:
        """One transaction: insert ``rows``, then keep the ``max_records`` greatest keys (0: all)."""
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.executemany(self.INSERT, rows)
            self.stored += cursor.rowcount
            if max_records and self.stored > max_records:
                self.stored -= self.conn.execute(self.PRUNE, {"ns": NAMESPACE, "keep": max_records}).rowcount

    def count(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM mc_results WHERE namespace = %s", (NAMESPACE,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


async def _create_tables(dsn: str) -> None:
    async with mcstore.open_store(dsn, flush_interval=3600):
        pass


async def _lnd_shape(cfg: Config, server: str, stack: ExitStack, n: int) -> Figure:
    reps = cfg.repeat
    iters = cfg.scaled(20, 5) if n <= 100 else cfg.scaled(10, 3)
    store_dsn = stack.enter_context(pgserver.scratch_schema(server, prefix="bench_store"))
    raw_dsn = stack.enter_context(pgserver.scratch_schema(server, prefix="bench_raw"))
    await _create_tables(raw_dsn)
    raw = RawPostgres(raw_dsn)
    prefill = lnd_bench_results(1, LND_MAX_RECORDS)
    raw.insert(encode_rows(cold_copies(prefill)), LND_MAX_RECORDS)
    next_id = LND_MAX_RECORDS + 1
    store_samples: list[float] = []
    raw_samples: list[float] = []
    async with mcstore.open_store(store_dsn, max_records=LND_MAX_RECORDS, flush_interval=3600) as store:
        for r in prefill:
            store.add_result(r)
        await store.flush()
        add = store.add_result
        for rep in range(reps):
            batches = [lnd_bench_results(next_id + k * n, n) for k in range(iters)]
            next_id += iters * n
            rows = [encode_rows(cold_copies(b)) for b in batches]

            async def store_block(batches: list[list[PaymentResult]] = batches) -> None:
                collect_garbage()
                total = 0
                for batch in batches:
                    t0 = now_ns()
                    for r in batch:
                        add(r)
                    await store.flush()
                    total += now_ns() - t0
                s = store.stats()
                check(s.pending == 0 and s.stored == LND_MAX_RECORDS, f"pg lnd shape N={n}: stored {s.stored}")
                store_samples.append(total / 1e9 / iters)

            def raw_block(rows: list[list[tuple[str, bytes, bytes]]] = rows) -> None:
                collect_garbage()
                total = 0
                for batch_rows in rows:
                    t0 = now_ns()
                    raw.insert(batch_rows, LND_MAX_RECORDS)
                    total += now_ns() - t0
                raw_samples.append(total / 1e9 / iters)
                check(raw.count() == LND_MAX_RECORDS, f"pg lnd shape N={n}: raw count {raw.count()}")

            await alternate(rep, store_block, raw_block)
        fetched = await store.fetch_all()
        check(
            len(fetched) == LND_MAX_RECORDS and fetched[-1].id == next_id - 1,
            f"pg lnd shape N={n}: fetch_all gave {len(fetched)} results",
        )
    raw.close()
    return Figure(
        case=CASE,
        label=f"PostgreSQL flush, N={n}",
        kind="time",
        value=Stats.of(store_samples),
        baseline_label="raw psycopg: executemany + prune, 1 txn",
        baseline=Stats.of(raw_samples),
        extra={"iterations_per_repetition": iters},
    )


async def _throughput(cfg: Config, server: str, stack: ExitStack, n: int) -> Figure:
    reps = cfg.repeat
    iters = min(50, max(1, 5000 // n)) if not cfg.quick else min(10, max(1, 2000 // n))
    store_dsn = stack.enter_context(pgserver.scratch_schema(server, prefix="bench_store"))
    raw_dsn = stack.enter_context(pgserver.scratch_schema(server, prefix="bench_raw"))
    await _create_tables(raw_dsn)
    raw = RawPostgres(raw_dsn)
    store_rates: list[float] = []
    raw_rates: list[float] = []
    next_id = 0
    async with mcstore.open_store(store_dsn, max_records=0, flush_interval=3600) as store:
        add = store.add_result
        for rep in range(reps):
            batches = [make_results(next_id + k * n, n) for k in range(iters)]
            next_id += iters * n
            rows = [encode_rows(cold_copies(b)) for b in batches]

            async def store_block(batches: list[list[PaymentResult]] = batches, expected: int = next_id) -> None:
                collect_garbage()
                t0 = now_ns()
                for batch in batches:
                    for r in batch:
                        add(r)
                    await store.flush()
                store_rates.append(iters * n / ((now_ns() - t0) / 1e9))
                s = store.stats()
                check(s.pending == 0 and s.stored == expected, f"pg throughput n={n}: stored {s.stored}")

            def raw_block(rows: list[list[tuple[str, bytes, bytes]]] = rows, expected: int = next_id) -> None:
                collect_garbage()
                t0 = now_ns()
                for batch_rows in rows:
                    raw.insert(batch_rows)
                raw_rates.append(iters * n / ((now_ns() - t0) / 1e9))
                check(raw.stored == expected, f"pg throughput n={n}: raw stored {raw.stored}")

            await alternate(rep, store_block, raw_block)
    check(raw.count() == next_id, f"pg throughput n={n}: raw table holds {raw.count()}, expected {next_id}")
    raw.close()
    fig = Figure(
        case=CASE,
        label=f"PostgreSQL accepted->durable, batch {n}",
        kind="rate",
        value=Stats.of(store_rates),
        baseline_label="raw psycopg executemany, 1 txn",
        baseline=Stats.of(raw_rates),
        target=f">= {THROUGHPUT_TARGET}x raw",
        extra={"iterations_per_repetition": iters},
    )
    fig.passed = fig.ratio is not None and fig.ratio >= THROUGHPUT_TARGET
    return fig


def _sizes(cfg: Config) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (LND_NS_QUICK, BATCHES_QUICK) if cfg.quick else (LND_NS_FULL, BATCHES_FULL)


def steps(cfg: Config) -> int:
    lnd, batches = _sizes(cfg)
    return 1 + len(lnd) + len(batches) + cases_failover.steps(cfg)


async def _run(cfg: Config, server: str) -> list[Figure]:
    figures: list[Figure] = []
    lnd, batches = _sizes(cfg)
    with ExitStack() as stack:
        for n in lnd:
            figures.append(await _lnd_shape(cfg, server, stack, n))
            cfg.advance(f"case {CASE}: PostgreSQL flush N={n}")
        for n in batches:
            figures.append(await _throughput(cfg, server, stack, n))
            cfg.advance(f"case {CASE}: PostgreSQL batch {n}")
    return figures


def run(cfg: Config) -> list[Figure]:
    """Case 8 on a throwaway server (or ``MCSTORE_PG_DSN``); no figures, and a note in ``cfg.skipped``,
    without one."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        cfg.skipped.append(f"case {CASE} (PostgreSQL) skipped: {mcstore.backends.postgres.PSYCOPG_MISSING}")
        return []
    try:
        with pgserver.pg_server() as server:
            cfg.advance(f"case {CASE}: PostgreSQL server up")
            figures = trio.run(_run, cfg, server.dsn)
    except pgserver.ServerUnavailable as exc:
        cfg.skipped.append(
            f"case {CASE} (PostgreSQL) skipped: no server ({exc}); set {pgserver.DSN_ENV} or install postgresql"
        )
        figures = []
    return figures + cases_failover.run(cfg)
