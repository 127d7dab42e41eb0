"""A writer process for the crash and multi-process tests: it writes until it is killed.

Usage: ``python crash_writer.py DB_PATH FIRST_ID MAX_RECORDS [NAMESPACE] [--keep-going]`` (DB_PATH
may be a ``postgresql://`` URL)

It opens the store with a tiny ``flush_interval`` (so the ticker flushes all the time, as well
as the explicit flushes), prints ``ready``, then loops: add a few results with consecutive
ids starting at FIRST_ID, ``await store.flush()``, and print the highest id flushed and the
seconds that ``flush()`` took (``ID SECONDS``). Each printed id is an acknowledgement: that
result, and every one before it, is durable. The parent kills this process with SIGKILL at
random moments and checks what the storage holds. A failed ``flush()`` ends the writer, unless
``--keep-going`` (for a failover: the flush is tried again, and its results are acknowledged
with the next one that returns).

Results are a pure function of their id (``factories.result_for``), with keys increasing with the id,
so the parent can rebuild and compare every row.
"""

from __future__ import annotations

import random
import sys
import time

import trio
from factories import result_for

from mcstore import FlushError, open_store

FLUSH_INTERVAL = 1e-4
RETRY_PAUSE = 0.005
"""Seconds between a failed flush and the next try with ``--keep-going`` (not to spin on a server
that is not there yet)."""


async def write(path: str, first: int, max_records: int, namespace: str, keep_going: bool) -> None:
    rng = random.Random(first)
    next_id = first
    async with open_store(
        path, namespace=namespace, max_records=max_records, flush_interval=FLUSH_INTERVAL
    ) as store:
        print("ready", flush=True)
        while True:
            for _ in range(rng.randint(1, 25)):
                store.add_result(result_for(next_id))
                next_id += 1
            started = time.perf_counter()
            try:
                await store.flush()
            except FlushError:
                if not keep_going:
                    raise
                await trio.sleep(RETRY_PAUSE)
                continue
            print(next_id - 1, f"{time.perf_counter() - started:.6f}", flush=True)


def main(argv: list[str]) -> None:
    keep_going = "--keep-going" in argv
    argv = [arg for arg in argv if arg != "--keep-going"]
    path, first, max_records = argv[1], int(argv[2]), int(argv[3])
    namespace = argv[4] if len(argv) > 4 else "default"
    trio.run(write, path, first, max_records, namespace, keep_going)


if __name__ == "__main__":
    main(sys.argv)
