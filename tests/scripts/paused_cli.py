"""The ``mcstore`` command with one pause, for the tests that need a store open but idle.

Usage: ``python paused_cli.py ARGS`` runs ``mcstore ARGS``, except that once a store is open,
before the command writes anything through it, it prints ``store open`` on stderr and waits for
a line on stdin. Opening a store writes (its fencing token), so a test that wants the store's
first flush to wait for a write lock takes that lock in the pause.
"""

from __future__ import annotations

import sys

import trio

import mcstore.store
from mcstore.cli import main

_start = mcstore.store.MissionControlStore._start


async def _start_then_pause(self: mcstore.store.MissionControlStore, nursery: trio.Nursery) -> None:
    await _start(self, nursery)
    print("store open", file=sys.stderr, flush=True)
    sys.stdin.readline()  # blocks the whole run: nothing of the store moves until the parent says so


mcstore.store.MissionControlStore._start = _start_then_pause  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
