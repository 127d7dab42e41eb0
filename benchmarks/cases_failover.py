"""Case 8, failover: from a primary's death to the store's first successful flush on the new primary.

A primary with a synchronous standby (:mod:`mcstore.testing.pgfailover`, the pair the failover tests
use), and a store writing at full speed through the pair's multi-host URL
(``target_session_attrs=read-write``): add 1 to 25 results, ``flush()``, again; a flush that
fails is tried again after 5 ms (:class:`~mcstore.testing.pgfailover.FullSpeedWriter`). At a random
moment the primary is killed (``pg_ctl -m immediate stop``), the standby promoted
(``pg_promote``) and its ``synchronous_standby_names`` emptied, as an HA tool does when no
synchronous standby is left. Then a new standby is built for the next failover.

The figure is the time from the start of the kill command to the first ``flush()`` that returns
on the new primary; beside it, the server's own promotion time in the same failovers (from
``pg_promote`` to the first read-write answer, polled every 5 ms). Their difference is the kill
command itself (``pg_ctl`` polls every 100 ms), the HA tool's reconfiguration, and the store's
reconnect and retried flush. Every result acknowledged before a failover is checked to be on the
new primary. The store's log is silenced meanwhile (its reconnect WARNINGs and failed-flush
ERRORs are expected here). Without the server binaries the section is skipped with a note.

A store that is left to its ticker (no explicit ``flush()``) retries a failed flush after its
backoff instead (``flush_interval``, doubling): its first flush on the new primary comes that
much later.
"""

from __future__ import annotations

import logging
import random
import statistics
from typing import Final

import trio

import mcstore
from mcstore.testing import pgfailover, pgserver

from .common import Config, Figure, Stats, check, make_result

CASE: Final = 8
WARM_FLUSHES: Final = (5, 40)
"""Flushes the writer completes before a kill, at random in this range (seeded)."""


def failovers(cfg: Config) -> int:
    return cfg.scaled(5, 1)


def steps(cfg: Config) -> int:
    return 1 + failovers(cfg)


async def _measure(cfg: Config, pair: pgfailover.ReplicatedPair, dsn: str) -> Figure:
    rng = random.Random(19)
    to_first_flush: list[float] = []
    promotion: list[float] = []
    phases: dict[str, list[float]] = {
        "kill command": [], "HA tool (synchronous_standby_names)": [], "promoted -> first flush": []
    }
    async with mcstore.open_store(dsn, max_records=0, flush_interval=0.005) as store:
        writer = pgfailover.FullSpeedWriter(store, make_result, random.Random(8))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            for n in range(failovers(cfg)):
                await writer.wait_flushes(rng.randint(*WARM_FLUSHES))
                await trio.sleep(rng.uniform(0.0, 0.01))  # a random moment within a flush
                times = await trio.to_thread.run_sync(pair.fail_over)
                assert times.released_at is not None
                first = await writer.first_ack_after(times.promote_at)
                to_first_flush.append(first - times.killed_at)
                promotion.append(times.promotion_seconds)
                phases["kill command"].append(times.promote_at - times.killed_at)
                phases["HA tool (synchronous_standby_names)"].append(times.released_at - times.promoted_at)
                phases["promoted -> first flush"].append(first - times.promoted_at)
                acknowledged = writer.acknowledged
                with_rows = await trio.to_thread.run_sync(_count_up_to, dsn, acknowledged)
                check(with_rows == acknowledged, f"failover {n + 1}: {with_rows} of {acknowledged} acknowledged ids")
                await trio.to_thread.run_sync(pair.add_standby)
                cfg.advance(f"case {CASE}: failover {n + 1}")
            writer.stopping = True
    return Figure(
        case=CASE,
        label="PostgreSQL failover: primary's death -> first flush",
        kind="time",
        value=Stats.of(to_first_flush),
        baseline_label="server's own promotion (pg_promote -> read-write)",
        baseline=Stats.of(promotion),
        note="death = start of pg_ctl -m immediate stop; the writer retries a failed flush every 5 ms",
        extra={
            "failovers": len(to_first_flush),
            "median_phase_seconds": {name: statistics.median(values) for name, values in phases.items()},
            "flush_failures": writer.failures,
        },
    )


def _count_up_to(dsn: str, top: int) -> int:
    """How many of the ids 1..top are stored (results are keyed by id: each at most once)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT key, value FROM mc_results").fetchall()
    ids = {mcstore.decode_result(bytes(key), bytes(value)).id for key, value in rows}
    return sum(1 for i in range(1, top + 1) if i in ids)


def run(cfg: Config) -> list[Figure]:
    """The failover row on a throwaway pair; no figure, and a note, without the server binaries."""
    log = logging.getLogger("mcstore")
    level = log.level
    try:
        with pgfailover.replicated_pair() as pair:
            cfg.advance(f"case {CASE}: primary and standby up")
            with pgserver.scratch_schema(pair.dsn, prefix="bench_ha") as dsn:
                log.setLevel(logging.CRITICAL)
                try:
                    return [trio.run(_measure, cfg, pair, dsn)]
                finally:
                    log.setLevel(level)
    except pgserver.ServerUnavailable as exc:
        cfg.skipped.append(
            f"case {CASE} (PostgreSQL failover) skipped: no primary and standby ({exc}); install postgresql"
        )
        return []
