"""What every benchmark case shares: statistics, figures, the machine, synthetic results, raw SQLite.

Nothing here imports from ``tests/``: the benchmarks must run from an installed checkout
without the test dependencies.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import platform
import random
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import trio

import mcstore
from mcstore import Hop, PaymentFailure, PaymentResult, Route, SQLiteBackend
from mcstore.backends._thread import WorkerThread
from mcstore.backends.sqlite import _insert as insert_rows

__all__ = [
    "NAMESPACE",
    "CheckFailed",
    "Config",
    "CountingBackend",
    "Figure",
    "RawDB",
    "ResultSpec",
    "Stats",
    "ThreadFloor",
    "add_as_users",
    "alternate",
    "check",
    "collect_garbage",
    "create_store_file",
    "cold_copies",
    "encode_rows",
    "io_counters",
    "lnd_bench_results",
    "lnd_bench_specs",
    "machine",
    "make_results",
    "now_ns",
    "rss_bytes",
    "spawn_probe",
]

now_ns: Final = time.perf_counter_ns
B = TypeVar("B")
"""The one clock of every timed block: monotonic, nanoseconds, the real clock (never Trio's)."""

NAMESPACE: Final = "default"


# -- failing for the right reasons ------------------------------------------------------------


class CheckFailed(Exception):
    """A benchmark produced a wrong result (a count, a round trip): the run must fail.

    Slowness never raises this: targets are reported as PASS/MISS, not asserted.
    """


def check(condition: bool, message: str) -> None:
    """Raise :class:`CheckFailed` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


# -- statistics --------------------------------------------------------------------------------


def _percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted samples, interpolated linearly between ranks."""
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class Stats:
    """Summary of one measurement's samples (seconds, bytes, or results per second)."""

    n: int
    median: float
    p5: float
    p25: float
    p75: float
    p95: float
    p99: float
    min: float
    max: float
    mean: float

    @classmethod
    def of(cls, samples: Iterable[float]) -> Stats:
        ordered = sorted(samples)
        if not ordered:
            raise ValueError("no samples")
        q = _percentile
        return cls(
            n=len(ordered),
            median=q(ordered, 0.5),
            p5=q(ordered, 0.05),
            p25=q(ordered, 0.25),
            p75=q(ordered, 0.75),
            p95=q(ordered, 0.95),
            p99=q(ordered, 0.99),
            min=ordered[0],
            max=ordered[-1],
            mean=sum(ordered) / len(ordered),
        )

    def get(self, stat: str) -> float:
        """``"median"``/``"p50"``, ``"p95"``, ``"p99"``, ... by name."""
        return self.median if stat in ("median", "p50") else float(getattr(self, stat))


@dataclass
class Figure:
    """One row of the results: a measurement, its same-run baseline, their ratio, a target.

    ``stat`` names the statistic shown and compared (the median unless a percentile row).
    The ratio is always ``value / baseline`` of that statistic; ``kind`` says whether lower
    (``time``, ``bytes``) or higher (``rate``) is better.
    """

    case: int
    label: str
    kind: str
    value: Stats
    baseline_label: str
    baseline: Stats | None
    stat: str = "median"
    target: str = ""
    passed: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None:
            return None
        base = self.baseline.get(self.stat)
        if base == 0:
            return None
        return self.value.get(self.stat) / base

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data

    def floor(self, label: str, value: Stats, note: str) -> Figure:
        """The row of this row's floor (what the measured work costs with only its unavoidable
        part left): the same baseline, no target of its own, tied to this row (``floor_of``) if
        this row has a target, for ``benchmarks.summary``."""
        return replace(
            self, label=label, value=value, target="", passed=None, note=note,
            extra={"floor_of": self.label} if self.target else {},
        )


# -- run configuration --------------------------------------------------------------------------


@dataclass
class Config:
    """How a run goes: its size, where its files live, how it reports progress."""

    quick: bool
    repeat: int
    tmpdir: Path
    advance: Callable[[str], None] = lambda label: None
    """Called after each unit of work; drives the progress bar."""
    skipped: list[str] = field(default_factory=list)
    """Why a section was skipped (an optional server or toolchain missing), for the report."""

    def scaled(self, full: int, quick: int) -> int:
        """A count for this run: ``full`` or ``quick``, scaled by ``repeat`` against its default."""
        base = quick if self.quick else full
        default_repeat = 3 if self.quick else 9
        return max(1, round(base * self.repeat / default_repeat))

    def path(self, name: str) -> str:
        return str(self.tmpdir / name)


def collect_garbage() -> None:
    """Collect before a timed block, so a collection owed by setup does not land inside it."""
    gc.collect()


# -- the machine ------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the table must name: CPUs, Python, SQLite, trio, the date, the load."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    try:
        load = os.getloadavg()
    except OSError:
        load = (math.nan, math.nan, math.nan)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": _cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "trio": trio.__version__,
        "mcstore": mcstore.__version__,
        "compiled": mcstore.COMPILED,
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def spawn_probe(module: str, *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run ``python -m benchmarks.<module> ARGS...`` in a fresh process (so that its RSS is its
    own) and return the JSON object its last line of stdout holds; ``RuntimeError`` if it fails."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"probe {module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def rss_bytes() -> int:
    """The process's resident set size now (Linux ``VmRSS``); peak RSS where that is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    return peak if sys.platform == "darwin" else peak * 1024


def io_counters() -> dict[str, int] | None:
    """This process's I/O counters (``rchar``, ``wchar``, ``syscr``, ``syscw``...), or None off Linux."""
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            return {name: int(value) for name, value in (line.split(":", 1) for line in f)}
    except OSError:
        return None


# -- synthetic results ------------------------------------------------------------------------

T0_NS: Final = 1_700_000_000_000_000_000
"""2023-11-14, a plausible reply time; successive results are a microsecond apart."""

_NODE_KEYS: Final = tuple(
    bytes([2 + (i & 1)]) + hashlib.sha256(b"mcstore-bench-node-%d" % i).digest() for i in range(64)
)
_OUR_KEY: Final = _NODE_KEYS[0]
# A channel_update is 136 bytes on the wire; temporary_channel_failure carries a u16 length
# and then the update.
_CHANNEL_UPDATE: Final = (136).to_bytes(2, "big") + hashlib.sha512(b"update").digest() * 2 + bytes(8)
TEMPORARY_CHANNEL_FAILURE: Final = 0x1007
INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS: Final = 0x400F


FailureSpec = tuple[()] | tuple[int, bytes]
"""The arguments of a result's ``PaymentFailure``: ``()`` for an unknown source."""

ResultSpec = tuple[int, int, int, bytes, int, tuple[tuple[int, bytes, int], ...], FailureSpec | None]
"""A result's fields as plain values: id, time_fwd_ns, time_reply_ns, the route's source pubkey
and total, its hops as ``(channel_id, pubkey, amount_to_forward_msat)``, and the failure's
arguments (None: a success)."""


def _failure_spec(i: int, hops: int) -> FailureSpec | None:
    """The mix mission control sees: mostly failures, a quarter successes."""
    kind = i % 4
    if kind == 0:
        return None
    if kind == 1 and hops > 1:
        # An intermediate node with no liquidity: the most common failure in practice.
        return 1 + i % (hops - 1), TEMPORARY_CHANNEL_FAILURE.to_bytes(2, "big") + _CHANNEL_UPDATE
    if kind == 3:
        return ()  # the onion could not be decrypted: source unknown
    # The final node rejects the payment (a probe): u64 htlc amount, u32 block height.
    payload = (100_000_000).to_bytes(8, "big") + (800_000).to_bytes(4, "big")
    return hops, INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS.to_bytes(2, "big") + payload


def result_spec(i: int, hops: int = 3) -> ResultSpec:
    """The fields of result number ``i``: id ``i``, replied at ``T0_NS + i`` us, a route of
    ``hops`` hops.

    Keys grow with ``i``, so a run that counts up appends to the end of the key order, as a
    live node does.
    """
    total = 100_000_000 + (i % 1000) * 1000
    route_hops = tuple(
        (
            # block << 40 | tx << 16 | output, shaped like a real short channel id
            ((700_000 + (i * 7 + h) % 100_000) << 40) | ((i + h) % 3000) << 16 | (h & 1),
            _NODE_KEYS[1 + (i * 7 + h * 13) % 63],
            total - 1000 * h,
        )
        for h in range(hops)
    )
    reply = T0_NS + i * 1000
    return i, reply - 2_500_000_000, reply, _OUR_KEY, total + 1000 * hops, route_hops, _failure_spec(i, hops)


def result_specs(start: int, count: int, hops: int = 3) -> list[ResultSpec]:
    """The fields of results ``start .. start+count-1`` (see :func:`result_spec`)."""
    return [result_spec(i, hops) for i in range(start, start + count)]


def varied_result_specs(count: int, nodes: int = 2000, seed: int = 21) -> Iterator[ResultSpec]:
    """The fields of ``count`` results over varied routes: ids and reply times (1 ms apart)
    counting up, routes of 1 to 5 distinct hops through a pool of ``nodes`` node keys, channels
    and amounts drawn at random (a fixed ``seed``), failures mixed as :func:`result_spec` mixes
    them. Mission control replaying these learns about many pairs, as from a node's real
    history, instead of a few routes repeated.
    """
    rng = random.Random(seed)
    pool = [bytes([2 + (i & 1)]) + hashlib.sha256(b"mcstore-bench-varied-%d" % i).digest() for i in range(nodes)]
    for i in range(count):
        hops = rng.randint(1, 5)
        total = 1_000_000 + rng.randrange(1_000_000_000)
        route_hops = tuple(
            (
                (rng.randrange(600_000, 900_000) << 40) | (rng.randrange(4000) << 16) | rng.randrange(4),
                pool[node],
                total - 1000 * (h + 1),
            )
            for h, node in enumerate(rng.sample(range(nodes), hops))
        )
        reply = T0_NS + i * 1_000_000
        yield i, reply - 2_500_000_000, reply, _OUR_KEY, total, route_hops, _failure_spec(i, hops)


def build_results(specs: Iterable[ResultSpec]) -> list[PaymentResult]:
    """Build the results of ``specs``: what a caller does with fields it holds, and all it does.

    This is the "building" that issue 11 counts on the store's side of accepted -> durable:
    the constructors (and their validation) of each result's hops, route, failure and the
    result itself, from plain values; not the arithmetic that made up the values.
    """
    return [
        PaymentResult(
            i,
            fwd,
            reply,
            Route(source, total, tuple([Hop(channel, pubkey, amount) for channel, pubkey, amount in hops])),
            None if failure is None else PaymentFailure(*failure),
        )
        for i, fwd, reply, source, total, hops, failure in specs
    ]


def make_result(i: int, hops: int = 3) -> PaymentResult:
    """Result number ``i`` (see :func:`result_spec`)."""
    return build_results([result_spec(i, hops)])[0]


def make_results(start: int, count: int, hops: int = 3) -> list[PaymentResult]:
    """Results ``start .. start+count-1`` (see :func:`result_spec`)."""
    return build_results(result_specs(start, count, hops))


def add_as_users(add: Callable[[PaymentResult], object], specs: Iterable[ResultSpec]) -> None:
    """Build each result of ``specs`` as users write it and pass it to ``add`` at once.

    "As users write it" is the README's way: keyword arguments, and the hops in a list. This
    is the building that issue 21 counts on the store's side of its rows against the Go
    baseline (:mod:`benchmarks.cases_lnd`), where Go builds its structs from the same values.
    """
    for i, fwd, reply, source, total, hops, failure in specs:
        if failure is None:
            fail = None
        elif failure:
            fail = PaymentFailure(source_index=failure[0], message=failure[1])
        else:
            fail = PaymentFailure()
        add(
            PaymentResult(
                id=i,
                time_fwd_ns=fwd,
                time_reply_ns=reply,
                route=Route(
                    source_pubkey=source,
                    total_amount_msat=total,
                    hops=[Hop(channel_id=c, pubkey=pk, amount_to_forward_msat=amt) for c, pk, amt in hops],
                ),
                failure=fail,
            )
        )


def lnd_bench_specs(start: int, count: int) -> list[ResultSpec]:
    """The fields of lnd's ``BenchmarkMissionControlStoreFlushing`` results: one route, ids counting up.

    lnd uses a one-hop route, one reply time for every result (``testTime``, forwarded a
    minute earlier), and an ``incorrect_or_unknown_payment_details(100, 1000)`` failure from
    hop 1; only the id changes, so each new result's key is the greatest so far.
    """
    payload = (100).to_bytes(8, "big") + (1000).to_bytes(4, "big")
    failure = (1, INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS.to_bytes(2, "big") + payload)
    hops = ((4, _NODE_KEYS[2], 7),)
    return [(i, T0_NS - 60_000_000_000, T0_NS, _OUR_KEY, 5, hops, failure) for i in range(start, start + count)]


def lnd_bench_results(start: int, count: int) -> list[PaymentResult]:
    """The results of :func:`lnd_bench_specs`, sharing one route and one failure, as lnd's do."""
    specs = lnd_bench_specs(start, count)
    if not specs:
        return []
    _, fwd, reply, source, total, hops, failure = specs[0]
    route = Route(source, total, tuple(Hop(*hop) for hop in hops))
    fail = None if failure is None else PaymentFailure(*failure)
    return [
        PaymentResult(id=spec[0], time_fwd_ns=fwd, time_reply_ns=reply, route=route, failure=fail) for spec in specs
    ]


def encode_rows(results: Iterable[PaymentResult]) -> list[tuple[str, bytes, bytes]]:
    """The rows the store would write for ``results``, pre-encoded for the raw baselines.

    ``encode_result`` caches the value on the result it encodes: pass :func:`cold_copies`
    of the store's results, never the objects the store will be handed.
    """
    return [(NAMESPACE, *mcstore.encode_result(r)) for r in results]


def cold_copies(results: Iterable[PaymentResult]) -> list[PaymentResult]:
    """Equal results with no cached encoding, for the raw baselines (see :func:`encode_rows`)."""
    return [replace(r) for r in results]


# -- raw SQLite: the physical limit -----------------------------------------------------------


async def alternate(
    rep: int,
    store_block: Callable[[], Awaitable[None]],
    raw_block: Callable[[], None],
    floor_block: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run one repetition's blocks, each first in turn (the store first on even repetitions,
    and with a floor block the order rotates through all three), so that drift in the
    machine's load hits every side alike."""

    async def raw() -> None:
        raw_block()

    blocks = [store_block, raw] + ([floor_block] if floor_block is not None else [])
    first = rep % len(blocks)
    for block in blocks[first:] + blocks[:first]:
        await block()


class ThreadFloor:
    """The least a store pays with SQLite in a worker thread, as issue 11 asks (one
    persistent worker thread per backend): the floor under mcstore's flush.

    :meth:`store` runs, in a :class:`~mcstore.backends._thread.WorkerThread` from Trio, what
    no such store can skip: encoding the results (``encode_result``, on results without a
    cached encoding) and the store's own SQL (its multi-row ``INSERT``, then the prune) in one
    transaction. Nothing else of the store: no ``add_result``, no tasks, no locks, no
    cancellation checks, no bookkeeping row. A floor over a target shows the target out of
    reach for that design on this machine; the store's distance to it is its own overhead.
    """

    def __init__(self, raw: RawDB) -> None:
        self.raw = raw
        self.worker = WorkerThread("bench-floor")

    async def store(self, results: Sequence[PaymentResult], max_records: int = 0) -> None:
        await self.worker.run(lambda: self._store(results, max_records))

    async def per_flush(
        self, batches: Sequence[B], max_records: int, prepare: Callable[[B], Sequence[PaymentResult]]
    ) -> float:
        """Seconds per flush of ``batches``, each first made into results by ``prepare`` (in
        the timed block: pass the results through, or build them as the store's side does)."""
        collect_garbage()
        total = 0
        for batch in batches:
            t0 = now_ns()
            await self.store(prepare(batch), max_records)
            total += now_ns() - t0
        return total / 1e9 / len(batches)

    def _store(self, results: Sequence[PaymentResult], max_records: int) -> None:
        flat: list[bytes] = []
        for r in results:
            flat += mcstore.encode_result(r)
        self.raw.insert_flat(flat, max_records)

    async def aclose(self) -> None:
        await self.worker.aclose()
        self.raw.close()


async def create_store_file(path: str) -> None:
    """Create an empty store file by opening a store on it, so its schema is the store's own."""
    async with mcstore.open_store(path, flush_interval=3600):
        pass


class CountingBackend:
    """A :class:`~mcstore.Backend` that counts the calls it passes on to the real one."""

    def __init__(self, inner: SQLiteBackend) -> None:
        self.inner = inner
        self.calls = 0
        self.flush_calls = 0
        self.flush_started = trio.Event()
        """Set when the first ``store_results`` call begins."""

    @property
    def calls_in_flight(self) -> int:
        return self.inner.calls_in_flight

    async def open(self, namespace: str, max_records: int) -> int:
        self.calls += 1
        return await self.inner.open(namespace, max_records)

    async def store_results(self, results: Sequence[PaymentResult], max_records: int) -> mcstore.FlushOutcome:
        self.calls += 1
        self.flush_calls += 1
        self.flush_started.set()
        return await self.inner.store_results(results, max_records)

    async def fetch_all(self) -> mcstore.FetchOutcome:
        self.calls += 1
        return await self.inner.fetch_all()

    async def clear(self) -> int:
        self.calls += 1
        return await self.inner.clear()

    async def open_snapshot(self) -> mcstore.backends.Snapshot:
        self.calls += 1
        return await self.inner.open_snapshot()

    async def aclose(self) -> None:
        await self.inner.aclose()


class RawDB:
    """Plain ``sqlite3`` on a store file: the same table, pragmas and statements, nothing else.

    No Trio, no worker thread, no encoding, no bookkeeping table: what the store's writes
    cost with everything that is not SQLite's own work taken away.
    """

    INSERT: Final = "INSERT OR IGNORE INTO mc_results(namespace, key, value) VALUES (?, ?, ?)"
    PRUNE: Final = (
        "DELETE FROM mc_results WHERE namespace = ?1 AND key IN "
        "(SELECT key FROM mc_results WHERE namespace = ?1 ORDER BY key LIMIT ?2)"
    )

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute(f"PRAGMA synchronous = {synchronous}")
        self.stored = self.count()

    def insert(self, rows: Sequence[tuple[str, bytes, bytes]], max_records: int = 0) -> None:
        """One transaction: insert ``rows``, then prune the oldest beyond ``max_records`` (0: none)."""
        self._write(lambda conn: conn.executemany(self.INSERT, rows).rowcount, max_records)

    def insert_flat(self, flat: list[bytes], max_records: int = 0) -> None:
        """As :meth:`insert`, with the store's own multi-row ``INSERT`` of ``flat`` (key, value, ...)."""
        self._write(lambda conn: insert_rows(conn, NAMESPACE, flat), max_records)

    def _write(self, insert: Callable[[sqlite3.Connection], int], max_records: int) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        self.stored += insert(conn)
        if max_records and self.stored > max_records:
            self.stored -= conn.execute(self.PRUNE, (NAMESPACE, self.stored - max_records)).rowcount
        conn.execute("COMMIT")

    def empty_transaction(self) -> None:
        """A write transaction that writes nothing: what a flush of nothing costs if not skipped."""
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("COMMIT")

    def count(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM mc_results WHERE namespace = ?", (NAMESPACE,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        self.conn.close()
