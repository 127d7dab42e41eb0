"""A second process for the multi-process tests: try to open one namespace, and report.

Usage: ``python open_probe.py DB_PATH NAMESPACE``

Prints ``locked SECONDS`` and exits with status 3 if opening raised ``StoreLocked`` (SECONDS is
how long the attempt took), or writes one result to the namespace, prints ``opened``, and exits
with status 0.
"""

from __future__ import annotations

import sys
import time

import trio
from factories import PROBE_RESULT
from shutdown_checks import LOCKED_STATUS

from mcstore import StoreLocked, open_store


async def probe(path: str, namespace: str) -> int:
    started = time.monotonic()
    try:
        async with open_store(path, namespace=namespace) as store:
            store.add_result(PROBE_RESULT)
            await store.flush()
    except StoreLocked:
        print(f"locked {time.monotonic() - started:.3f}", flush=True)
        return LOCKED_STATUS
    print("opened", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(trio.run(probe, sys.argv[1], sys.argv[2]))
