"""A library program for the Ctrl-C test: it writes results until SIGINT stops it.

Usage: ``python sigint_child.py DB_PATH MODE RESTRICT FIRST_ID``

* MODE ``busy``: many ``add_result`` calls between two checkpoints;
  ``put``: ``await store.put(...)`` against a small ``max_pending``, so that it waits for room;
  ``sleep``: one ``add_result``, then a short sleep, and now and then ``await store.flush()``.
* RESTRICT ``1`` runs ``trio.run(main, restrict_keyboard_interrupt_to_checkpoints=True)``; ``0``
  runs plain ``trio.run(main)``, as the README's example does.

It is written as a user would write it: no special handling of ``KeyboardInterrupt``. It prints
``ready`` once the store is open, and, when ``trio.run`` has ended in any way, one JSON line
saying how: the exception's type, the store's ``accepted`` count and state, the ids in
``store.unpersisted``, and how many ids the loop counted as added. The parent sends SIGINT at a
random moment after ``ready`` and checks that line against the database.

Results are ``factories.result_for`` of consecutive ids from FIRST_ID, so the parent can
rebuild every row.
"""

from __future__ import annotations

import json
import signal
import sys
import traceback
from typing import Any

import trio
from factories import result_for

from mcstore import MissionControlStore, StoreBusy, open_store

BUSY_BATCH = 2_000  # add_result calls between two checkpoints
PUT_MAX_PENDING = 500
FLUSH_INTERVAL = 0.002

state: dict[str, Any] = {"store": None, "added": 0}


async def main(path: str, mode: str, first: int) -> None:
    next_id = first
    max_pending = PUT_MAX_PENDING if mode == "put" else 1_000_000
    async with open_store(
        path, max_records=0, flush_interval=FLUSH_INTERVAL, shutdown_timeout=20.0, max_pending=max_pending
    ) as store:
        state["store"] = store
        print("ready", flush=True)
        loops = 0
        while True:
            loops += 1
            if mode == "busy":
                for _ in range(BUSY_BATCH):
                    try:
                        store.add_result(result_for(next_id))
                    except StoreBusy:
                        break
                    next_id += 1
                    state["added"] = next_id - first
                await trio.lowlevel.checkpoint()
            elif mode == "put":
                await store.put(result_for(next_id))
                next_id += 1
                state["added"] = next_id - first
            else:
                store.add_result(result_for(next_id))
                next_id += 1
                state["added"] = next_id - first
                if loops % 10 == 0:
                    await store.flush()
                else:
                    await trio.sleep(0.0005)


def report(exc: BaseException | None) -> None:
    store: MissionControlStore | None = state["store"]
    line = {
        "exit": type(exc).__name__ if exc is not None else None,
        "error": "".join(traceback.format_exception(exc)) if exc is not None and not isinstance(
            exc, KeyboardInterrupt) else None,
        "added": state["added"],
        "accepted": store.stats().accepted if store is not None else None,
        "state": store.state.value if store is not None else None,
        "unpersisted": [r.id for r in store.unpersisted] if store is not None else None,
    }
    print(json.dumps(line), flush=True)


def run(argv: list[str]) -> None:
    path, mode, restrict, first = argv[1], argv[2], argv[3] == "1", int(argv[4])
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        # The parent resets SIGINT to SIG_DFL before exec, so Python installed its handler.
        print(json.dumps({"exit": "setup", "error": f"SIGINT handler is {signal.getsignal(signal.SIGINT)!r}"}))
        sys.exit(2)
    try:
        trio.run(main, path, mode, first, restrict_keyboard_interrupt_to_checkpoints=restrict)
    except BaseException as exc:
        report(exc)
    else:
        report(None)


if __name__ == "__main__":
    run(sys.argv)
