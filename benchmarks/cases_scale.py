"""Case 6: open time, ``fetch_all`` time and RSS for stores of 1k, 100k and 1M records, and
streaming with ``iter_results`` over the largest store.

The files are built fast, with raw ``executemany``, in the store's own schema (an empty
store creates the file first, so the DDL is the store's). 1,000 distinct encoded values are
shared by many keys that differ only in the id, which lnd's key carries and its value does
not, so every row decodes and its key agrees with its value.

Each measurement runs in a fresh subprocess (``python -m benchmarks.cases_scale``), so RSS
is that of a process that did only this. Opening uses ``max_records=0``, so nothing is
pruned. Baselines, also each in a fresh process: raw ``sqlite3`` connect + the same pragmas
+ reading the stored count (open); ``SELECT key, value ... ORDER BY key`` into a list of
bytes pairs (``fetch_all``, without decoding).

``iter_results`` (the largest size; 10k with ``--quick``): the time to stream every result, and how much the RSS
grows over its value after open (sampled every 1,000 results; target <= 64 MiB, whatever the
history size). Baseline: a raw ``sqlite3`` cursor iterated over the same ``SELECT``, keeping
nothing, in a fresh process too. Its floor: the same cursor decoding each row in its loop.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from typing import Any, Final

import trio

import mcstore
from mcstore.backends._lock import lock_path_for

from .common import (
    NAMESPACE,
    Config,
    Figure,
    Stats,
    check,
    create_store_file,
    make_results,
    now_ns,
    rss_bytes,
    spawn_probe,
)

SIZES_FULL: Final = (1_000, 100_000, 1_000_000)
SIZES_QUICK: Final = (1_000, 10_000, 100_000)
DISTINCT_VALUES: Final = 1000
OPEN_RATIO_TARGET: Final = 1.5
RSS_DELTA_TARGET: Final = 2 * 1024 * 1024
MiB: Final = 1024 * 1024
BIG: Final = 1_000_000
"""From this size on, only some repetitions run ``fetch_all``."""
FETCH_RATIO_TARGET: Final = 4.0
FETCH_TARGET_SIZE: Final = 100_000
ITER_RSS_TARGET: Final = 64 * 1024 * 1024
ITER_RATIO_TARGET: Final = 2.5
"""Issue 21: ``iter_results`` over 1M (the full run's largest store) <= 2.5x a raw cursor."""
ITER_SAMPLE_EVERY: Final = 1000


def _sizes(cfg: Config) -> tuple[int, ...]:
    return SIZES_QUICK if cfg.quick else SIZES_FULL


def _iter_size(cfg: Config) -> int:
    """The store that ``iter_results`` streams: the largest, or 10k in the smoke run (speed)."""
    return 10_000 if cfg.quick else max(_sizes(cfg))


def _iter_reps(cfg: Config) -> int:
    return cfg.scaled(3, 2)


def steps(cfg: Config) -> int:
    return len(_sizes(cfg)) * (1 + cfg.scaled(5, 2)) + _iter_reps(cfg)


def _label(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


# -- building a file --------------------------------------------------------------------------


def build(path: str, size: int) -> None:
    """Write ``size`` decodable results to a new store file at ``path``, in key order."""
    trio.run(create_store_file, path)
    values = [mcstore.encode_result(r) for r in make_results(0, min(size, DISTINCT_VALUES))]
    per_value = size // len(values)
    check(per_value * len(values) == size, f"scale: {size} is not a multiple of {len(values)}")

    def rows() -> Iterator[tuple[str, bytes, bytes]]:
        next_id = 0
        for key, value in values:
            reply, source = key[:8], key[16:]
            for result_id in range(next_id, next_id + per_value):
                yield NAMESPACE, reply + result_id.to_bytes(8, "big") + source, value
            next_id += per_value

    fill(path, rows(), size)


def fill(path: str, rows: Iterable[tuple[str, bytes, bytes]], size: int) -> None:
    """Insert ``size`` encoded ``rows`` into the empty store file at ``path``, fast (no fsync),
    with the namespace's kept count, and checkpoint the WAL."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")  # setup, not a measurement
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO mc_results(namespace, key, value) VALUES (?, ?, ?)", rows)
        # The store keeps each namespace's row count here, and trusts it at open.
        conn.execute(
            "INSERT INTO mc_namespaces(namespace, stored) VALUES (?, ?) "
            "ON CONFLICT(namespace) DO UPDATE SET stored = excluded.stored",
            (NAMESPACE, size),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


# -- the probes, each in a fresh process -------------------------------------------------------


async def _probe_store(path: str, fetch: bool) -> dict[str, Any]:
    gc.collect()
    floor = rss_bytes()
    t0 = now_ns()
    async with mcstore.open_store(path, max_records=0, flush_interval=3600) as store:
        opened = now_ns()
        probe: dict[str, Any] = {
            "rss_floor": floor,
            "open_s": (opened - t0) / 1e9,
            "rss_open": rss_bytes(),
            "count": store.stats().stored,
        }
        if fetch:
            t1 = now_ns()
            results = await store.fetch_all()
            probe["fetch_s"] = (now_ns() - t1) / 1e9
            probe["rss_fetch"] = rss_bytes()
            probe["count"] = len(results)
            probe["last_id"] = results[-1].id if results else None
            del results
    return probe


def _probe_raw(path: str, fetch: bool) -> dict[str, Any]:
    gc.collect()
    floor = rss_bytes()
    t0 = now_ns()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    (stored,) = conn.execute("SELECT stored FROM mc_namespaces WHERE namespace = ?", (NAMESPACE,)).fetchone()
    opened = now_ns()
    probe: dict[str, Any] = {
        "rss_floor": floor,
        "open_s": (opened - t0) / 1e9,
        "rss_open": rss_bytes(),
        "count": stored,
    }
    if fetch:
        t1 = now_ns()
        rows = conn.execute(
            "SELECT key, value FROM mc_results WHERE namespace = ? ORDER BY key", (NAMESPACE,)
        ).fetchall()
        probe["fetch_s"] = (now_ns() - t1) / 1e9
        probe["rss_fetch"] = rss_bytes()
        probe["count"] = len(rows)
    conn.close()
    return probe


async def _probe_store_iter(path: str) -> dict[str, Any]:
    async with mcstore.open_store(path, max_records=0, flush_interval=3600) as store:
        gc.collect()
        base = peak = rss_bytes()
        count, last_id = 0, None
        t0 = now_ns()
        async with contextlib.aclosing(store.iter_results()) as results:
            async for result in results:
                count += 1
                last_id = result.id
                if count % ITER_SAMPLE_EVERY == 0:
                    peak = max(peak, rss_bytes())
        seconds = (now_ns() - t0) / 1e9
        peak = max(peak, rss_bytes())
    return {"iter_s": seconds, "rss_growth": peak - base, "count": count, "last_id": last_id}


def _probe_raw_iter(path: str, decode: bool = False) -> dict[str, Any]:
    """A raw cursor over the store's ``SELECT``, keeping nothing; with ``decode``, each row
    decoded too (``decode_result``, in the same loop): the floor of ``iter_results``."""
    conn = sqlite3.connect(path, isolation_level=None)
    decode_result = mcstore.decode_result
    try:
        gc.collect()
        base = peak = rss_bytes()
        count = 0
        t0 = now_ns()
        cursor = conn.execute("SELECT key, value FROM mc_results WHERE namespace = ? ORDER BY key", (NAMESPACE,))
        for row in cursor:
            if decode:
                decode_result(*row)
            count += 1
            if count % ITER_SAMPLE_EVERY == 0:
                peak = max(peak, rss_bytes())
        seconds = (now_ns() - t0) / 1e9
        peak = max(peak, rss_bytes())
    finally:
        conn.close()
    return {"iter_s": seconds, "rss_growth": peak - base, "count": count}


def _spawn(kind: str, path: str, fetch: bool, what: str | None = None) -> dict[str, Any]:
    return spawn_probe("cases_scale", kind, path, what or ("fetch" if fetch else "open"))


# -- the case ---------------------------------------------------------------------------------


def run(cfg: Config) -> list[Figure]:
    reps = cfg.scaled(5, 2)
    figures: list[Figure] = []
    opens: dict[int, tuple[Stats, Stats]] = {}
    rss: dict[int, tuple[Stats, Stats]] = {}
    for size in _sizes(cfg):
        label = _label(size)
        path = cfg.path(f"scale-{label}.sqlite")
        t0 = now_ns()
        build(path, size)
        build_s = (now_ns() - t0) / 1e9
        cfg.advance(f"case 6: built {label}")
        store_runs: list[dict[str, Any]] = []
        raw_runs: list[dict[str, Any]] = []
        for rep in range(reps):
            # Alternate which goes first, so the page cache favours neither. Decoding a
            # million results takes tens of seconds: fewer repetitions fetch at that size.
            order = ("store", "raw") if rep % 2 == 0 else ("raw", "store")
            fetch = size < BIG or rep < cfg.scaled(3, 2)
            for kind in order:
                probe = _spawn(kind, path, fetch)
                check(
                    probe["count"] == size,
                    f"scale {label}: {kind} read {probe['count']} rows, expected {size}",
                )
                if kind == "store" and fetch:
                    check(probe["last_id"] == size - 1, f"scale {label}: last id {probe['last_id']}")
                (store_runs if kind == "store" else raw_runs).append(probe)
            cfg.advance(f"case 6: {label}, repetition {rep + 1}")

        def stats(runs: list[dict[str, Any]], key: str) -> Stats:
            return Stats.of(float(r[key]) for r in runs if key in r)

        floor = stats(store_runs, "rss_floor")
        note = f"file built in {build_s:.1f} s"
        open_pair = (stats(store_runs, "open_s"), stats(raw_runs, "open_s"))
        rss_pair = (stats(store_runs, "rss_open"), stats(raw_runs, "rss_open"))
        opens[size], rss[size] = open_pair, rss_pair
        fetch_fig = Figure(
            case=6,
            label=f"fetch_all, {label}",
            kind="time",
            value=stats(store_runs, "fetch_s"),
            baseline_label="raw: SELECT all rows, no decode",
            baseline=stats(raw_runs, "fetch_s"),
        )
        figures += [
            Figure(
                case=6,
                label=f"open, {label} records",
                kind="time",
                value=open_pair[0],
                baseline_label="raw: connect + pragmas + count",
                baseline=open_pair[1],
                note=note,
            ),
            Figure(
                case=6,
                label=f"RSS after open, {label}",
                kind="bytes",
                value=rss_pair[0],
                baseline_label="raw: RSS after connect",
                baseline=rss_pair[1],
                note=f"process floor before open {floor.median / MiB:.1f} MiB",
            ),
            fetch_fig,
            Figure(
                case=6,
                label=f"RSS after fetch_all, {label}",
                kind="bytes",
                value=stats(store_runs, "rss_fetch"),
                baseline_label="raw: RSS after SELECT",
                baseline=stats(raw_runs, "rss_fetch"),
                note="grows with history by design: fetch_all returns every result",
            ),
        ]
        if size == FETCH_TARGET_SIZE:
            fetch_fig.target = f"<= {FETCH_RATIO_TARGET:g}x raw"
            fetch_ratio = fetch_fig.ratio
            fetch_fig.passed = fetch_ratio is not None and fetch_ratio <= FETCH_RATIO_TARGET
        if size == _iter_size(cfg):
            figures += _run_iter(cfg, path, size, label)
        for name in (path, path + "-wal", path + "-shm", lock_path_for(path, "default")):
            if os.path.exists(name):
                os.remove(name)
    small, large = min(opens), max(opens)
    open_fig = Figure(
        case=6,
        label=f"open time, {_label(large)} vs {_label(small)}",
        kind="time",
        value=opens[large][0],
        baseline_label=f"store open, {_label(small)} records",
        baseline=opens[small][0],
        target=f"<= {OPEN_RATIO_TARGET}x (flat)",
    )
    ratio = open_fig.ratio
    open_fig.passed = ratio is not None and ratio <= OPEN_RATIO_TARGET
    delta = rss[large][0].median - rss[small][0].median
    rss_fig = Figure(
        case=6,
        label=f"RSS after open, {_label(large)} vs {_label(small)}",
        kind="bytes",
        value=rss[large][0],
        baseline_label=f"RSS after open, {_label(small)} records",
        baseline=rss[small][0],
        target=f"delta <= {RSS_DELTA_TARGET // MiB} MiB (flat)",
        note=f"delta {delta / MiB:+.2f} MiB for {large // small}x the history",
    )
    rss_fig.passed = delta <= RSS_DELTA_TARGET
    figures += [open_fig, rss_fig]
    return figures


def _run_iter(cfg: Config, path: str, size: int, label: str) -> list[Figure]:
    """Stream the store at ``path`` with ``iter_results`` and with a raw cursor, alternately."""
    runs: dict[str, list[dict[str, Any]]] = {"store": [], "raw": [], "floor": []}
    store_runs, raw_runs = runs["store"], runs["raw"]
    for rep in range(_iter_reps(cfg)):
        order = ("store", "raw", "floor") if rep % 2 == 0 else ("floor", "raw", "store")
        for kind in order:
            probe = _spawn(kind, path, False, what="iter")
            check(probe["count"] == size, f"scale {label}: {kind} streamed {probe['count']} rows, expected {size}")
            if kind == "store":
                check(probe["last_id"] == size - 1, f"scale {label}: iter_results last id {probe['last_id']}")
            runs[kind].append(probe)
        cfg.advance(f"case 6: iter_results {label}, repetition {rep + 1}")

    def stats(runs: list[dict[str, Any]], key: str) -> Stats:
        return Stats.of(float(r[key]) for r in runs)

    growth = stats(store_runs, "rss_growth")
    rss_fig = Figure(
        case=6,
        label=f"RSS growth during iter_results, {label}",
        kind="bytes",
        value=growth,
        baseline_label="raw: RSS growth iterating a cursor",
        baseline=stats(raw_runs, "rss_growth"),
        target=f"<= {ITER_RSS_TARGET // MiB} MiB",
        note="peak over the RSS after open, sampled every 1,000 results",
    )
    rss_fig.passed = growth.median <= ITER_RSS_TARGET
    iter_fig = Figure(
        case=6,
        label=f"iter_results, {label}",
        kind="time",
        value=stats(store_runs, "iter_s"),
        baseline_label="raw: iterate a cursor, no decode",
        baseline=stats(raw_runs, "iter_s"),
        note="batch_size 1000, the cyclic GC on (each probe a fresh process)",
    )
    if size >= BIG:
        iter_fig.target = f"<= {ITER_RATIO_TARGET:g}x raw"
        iter_fig.passed = iter_fig.ratio is not None and iter_fig.ratio <= ITER_RATIO_TARGET
    floor_fig = iter_fig.floor(
        f"iter_results floor, {label}",
        stats(runs["floor"], "iter_s"),
        "the raw cursor, each row decoded (decode_result) in the same loop: no store, no thread, no async iteration",
    )
    return [iter_fig, floor_fig, rss_fig]


def _main(argv: list[str]) -> None:
    """The probe: ``python -m benchmarks.cases_scale store|raw|floor PATH fetch|open|iter``; prints JSON
    (``floor``: ``iter`` only)."""
    kind, path, what = argv
    result: dict[str, Any]
    if what == "iter":
        result = trio.run(_probe_store_iter, path) if kind == "store" else _probe_raw_iter(path, kind == "floor")
    else:
        fetch = what == "fetch"
        result = trio.run(_probe_store, path, fetch) if kind == "store" else _probe_raw(path, fetch)
    print(json.dumps(result))


if __name__ == "__main__":
    _main(sys.argv[1:])
