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

from mcstore import StoreLocked, open_store
from mcstore.model import PaymentResult, Route

LOCKED_STATUS = 3
PROBE_RESULT = PaymentResult(
    id=7,
    time_fwd_ns=1,
    time_reply_ns=2,
    route=Route(source_pubkey=b"\x03" + b"\x77" * 32, total_amount_msat=1, hops=()),
)


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
