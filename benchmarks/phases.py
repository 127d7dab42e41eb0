"""``python -m benchmarks.phases [--n 1,100] [--repeat 9] [--iterations 40]``: where a flush goes.

A diagnostic, not a case of ``python -m benchmarks``: it reports no target. For lnd's flush
shape (1000 results stored, N new ones, ``synchronous=FULL``), it splits each flush of the store
and of the :class:`~benchmarks.common.ThreadFloor` into phases, with timestamps taken in the
calling task, in the worker thread (around the call's function) and in a Trio instrument
(when the event loop wakes from its I/O wait):

- ``adds``: the N ``add_result`` calls (the store only);
- ``to hand-off``: from the last ``add_result`` (the floor: from its call) until
  :meth:`~mcstore.backends._thread.WorkerThread.run` is entered;
- ``wake``: from there until the call's function starts in the worker thread;
- ``in thread``: the function: encoding, the transaction, the commit's fsync;
- ``loop wakes``: from the function's end until the event loop's next turn (Trio's
  ``after_io_wait``). The outcome is handed back through ``run_sync_soon``, which writes to Trio's
  wake-up socket; with no other task ready (as here: the intake is drained, the ticker asleep),
  that turn is the loop waking from its I/O wait;
- ``to resume``: from there until ``run`` returns in the calling task;
- ``after``: from there until ``flush()`` returns (the floor: nothing).

Medians over ``repeat`` x ``iterations`` flushes, store, floor and raw blocks alternating
(raw: the benchmarks' baseline, :meth:`~benchmarks.common.RawDB.insert` of pre-encoded rows in
the calling thread, given as a total, with the store's and the floor's ratio to it).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

import trio

import mcstore
from mcstore import PaymentResult, SQLiteBackend
from mcstore.backends._thread import WorkerThread

from .common import (
    CheckFailed,
    RawDB,
    ThreadFloor,
    alternate,
    check,
    cold_copies,
    collect_garbage,
    create_store_file,
    encode_rows,
    lnd_bench_results,
    now_ns,
)

T = TypeVar("T")

PHASES: Final = ("adds", "to hand-off", "wake", "in thread", "loop wakes", "to resume", "after", "total")
MAX_RECORDS: Final = 1000


class _Marks:
    """The timestamps of the flush in progress (ns, ``time.perf_counter_ns``)."""

    def __init__(self) -> None:
        self.io_wakes: list[int] = []
        self.reset()

    def reset(self) -> None:
        """Forget the previous flush's timestamps (before a flush: a flush that skipped the worker
        would otherwise be timed with stale ones, and fail the order check)."""
        self.entered = self.started = self.finished = self.returned = 0
        self.io_wakes.clear()

    def loop_woke(self) -> int:
        """When the event loop's first turn after the call's function ended began."""
        for t in self.io_wakes:
            if t >= self.finished:
                return t
        raise CheckFailed(f"phases: no event loop turn after the call ended at {self.finished} ns")


class _TimedWorker(WorkerThread):
    """A :class:`WorkerThread` that stamps the hand-off, the function's run and the return."""

    def __init__(self, name: str, marks: _Marks) -> None:
        super().__init__(name)
        self.marks = marks

    async def run(self, fn: Callable[[], T], *, on_cancel: Callable[[], None] | None = None) -> T:
        marks = self.marks
        marks.entered = now_ns()

        def timed() -> T:
            marks.started = now_ns()
            try:
                return fn()
            finally:
                marks.finished = now_ns()

        try:
            return await super().run(timed, on_cancel=on_cancel)
        finally:
            marks.returned = now_ns()


class _LoopWakes(trio.abc.Instrument):
    def __init__(self, marks: _Marks) -> None:
        self.marks = marks

    def after_io_wait(self, timeout: float) -> None:
        self.marks.io_wakes.append(now_ns())


def _phases(marks: _Marks, t0: int, adds_done: int, end: int) -> dict[str, float]:
    """One flush's phases (ns), from timestamps that must come in this order, or CheckFailed."""
    woke = marks.loop_woke()
    stamps = (t0, adds_done, marks.entered, marks.started, marks.finished, woke, marks.returned, end)
    check(
        all(a <= b for a, b in itertools.pairwise(stamps)),
        f"phases: timestamps out of order (t0, adds, entered, started, finished, woke, returned, end): {stamps}",
    )
    return {
        "adds": adds_done - t0,
        "to hand-off": marks.entered - adds_done,
        "wake": marks.started - marks.entered,
        "in thread": marks.finished - marks.started,
        "loop wakes": woke - marks.finished,
        "to resume": marks.returned - woke,
        "after": end - marks.returned,
        "total": end - t0,
    }


async def measure(n: int, repeat: int, iterations: int, directory: Path) -> dict[str, dict[str, float]]:
    """Median phase durations (us) of the store's and the floor's flushes of ``n`` results,
    and the raw baseline's median total (``{"raw": {"total": ...}}``)."""
    marks = _Marks()
    floor_path = str(directory / f"phases-{n}-floor.sqlite")
    raw_path = str(directory / f"phases-{n}-raw.sqlite")
    await create_store_file(floor_path)
    await create_store_file(raw_path)
    raw = RawDB(raw_path)
    try:
        floor = ThreadFloor(RawDB(floor_path))
        floor.worker = _TimedWorker("bench-floor", marks)
        try:
            return await _measure(n, repeat, iterations, directory, marks, raw, floor)
        finally:
            await floor.aclose()
    finally:
        raw.close()


async def _measure(
    n: int, repeat: int, iterations: int, directory: Path, marks: _Marks, raw: RawDB, floor: ThreadFloor
) -> dict[str, dict[str, float]]:
    backend = SQLiteBackend(str(directory / f"phases-{n}-store.sqlite"), synchronous="FULL")
    backend._worker = _TimedWorker("bench-store", marks)  # a diagnostic may reach inside
    prefill = lnd_bench_results(1, MAX_RECORDS)
    await floor.store(cold_copies(prefill), MAX_RECORDS)
    raw.insert(encode_rows(cold_copies(prefill)), MAX_RECORDS)
    samples: dict[str, list[dict[str, float]]] = {"store": [], "floor": [], "raw": []}
    trio.lowlevel.add_instrument(_LoopWakes(marks))  # ends with the Trio run
    next_id = MAX_RECORDS + 1
    async with mcstore.open_store(backend, max_records=MAX_RECORDS, flush_interval=3600) as store:
        for r in prefill:
            store.add_result(r)
        await store.flush()
        add = store.add_result
        for rep in range(repeat):
            batches = [lnd_bench_results(next_id + k * n, n) for k in range(iterations)]
            next_id += iterations * n
            store_batches = [cold_copies(b) for b in batches]
            floor_batches = [cold_copies(b) for b in batches]
            raw_batches = [encode_rows(cold_copies(b)) for b in batches]

            async def store_block(store_batches: list[list[PaymentResult]] = store_batches) -> None:
                collect_garbage()
                for batch in store_batches:
                    marks.reset()
                    t0 = now_ns()
                    for r in batch:
                        add(r)
                    adds_done = now_ns()
                    await store.flush()
                    samples["store"].append(_phases(marks, t0, adds_done, now_ns()))

            async def floor_block(floor_batches: list[list[PaymentResult]] = floor_batches) -> None:
                collect_garbage()
                for batch in floor_batches:
                    marks.reset()
                    t0 = now_ns()
                    await floor.store(batch, MAX_RECORDS)
                    samples["floor"].append(_phases(marks, t0, t0, now_ns()))

            def raw_block(raw_batches: list[list[tuple[str, bytes, bytes]]] = raw_batches) -> None:
                collect_garbage()
                for rows in raw_batches:
                    t0 = now_ns()
                    raw.insert(rows, MAX_RECORDS)
                    samples["raw"].append({"total": now_ns() - t0})

            await alternate(rep, store_block, raw_block, floor_block)
    return {
        side: {phase: statistics.median(s[phase] for s in rows) / 1e3 for phase in rows[0]}
        for side, rows in samples.items()
    }


def table(n: int, medians: dict[str, dict[str, float]]) -> str:
    lines = [
        f"lnd flush shape, N={n}: medians in us",
        "",
        "| phase | store | floor | store - floor |",
        "|---|---|---|---|",
    ]
    for phase in PHASES:
        store, floor = medians["store"][phase], medians["floor"][phase]
        lines.append(f"| {phase} | {store:.1f} | {floor:.1f} | {store - floor:+.1f} |")
    raw = medians["raw"]["total"]
    store_x, floor_x = medians["store"]["total"] / raw, medians["floor"]["total"] / raw
    lines += ["", f"raw insert + prune, calling thread: {raw:.1f} us; store {store_x:.2f}x, floor {floor_x:.2f}x raw"]
    return "\n".join(lines)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--n takes comma-separated counts, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--n takes counts of at least 1, got {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.phases", description="Where the time of a small flush goes: store and floor."
    )
    parser.add_argument("--n", type=_sizes, default=[1, 100], help="results per flush, comma-separated (default 1,100)")
    parser.add_argument("--repeat", type=int, default=9, help="alternating blocks per side (default 9)")
    parser.add_argument("--iterations", type=int, default=40, help="flushes per block (default 40)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.iterations < 1:
        parser.error(f"--repeat and --iterations must be at least 1, got {args.repeat} and {args.iterations}")
    with tempfile.TemporaryDirectory(prefix="mcstore-phases-") as directory:
        for n in args.n:
            try:
                medians = trio.run(measure, n, args.repeat, args.iterations, Path(directory))
            except CheckFailed as exc:
                print(f"WRONG RESULT: {exc}", file=sys.stderr)
                return 1
            print(table(n, medians), end="\n\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
