"""Crash consistency with real processes: SIGKILL a writer at random moments, lose nothing.

A writer subprocess (``crash_writer.py``) adds and flushes continuously with a tiny
``flush_interval``, and prints the highest id after each ``flush()`` returns: an
acknowledgement. The test kills it with SIGKILL at random moments (during start-up, opening,
adding, or inside a commit), then checks the storage, on each real backend (an SQLite file,
and a PostgreSQL schema on the test server):

* it is sound: SQLite's ``PRAGMA integrity_check`` is ``ok``; on PostgreSQL every kept count
  equals the namespace's rows;
* every acknowledged result is present and intact, and the rows are exactly the newest
  ``max_records`` ids written, with no gap and no duplicate;
* the count is at most ``max_records``, and the count kept by the backend agrees;
* the namespace lock died with the process, so a reopen succeeds at once.

The next writer then continues from the highest stored id, on the same storage.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest
import trio
from crash_writer import result_for
from shutdown_checks import TESTS_DIR, StorePlace, child_env

from mcstore import open_store

WRITER = os.path.join(TESTS_DIR, "crash_writer.py")
KILLS = 12
MAX_RECORDS = 300


class Writer:
    """A running crash_writer process and the acknowledgements read from it."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.ready = False
        self.acknowledged = 0
        self.flush_seconds: list[float] = []
        """How long each acknowledged ``flush()`` took, as the writer measured it."""
        self._buffer = b""

    @classmethod
    async def start(cls, path: str, first: int, max_records: int, namespace: str = "default") -> Writer:
        process = await trio.lowlevel.open_process(
            [sys.executable, WRITER, path, str(first), str(max_records), namespace],
            stdout=subprocess.PIPE,
            env=child_env(),
        )
        return cls(process)

    def _take_lines(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            text = line.decode().strip()
            if text == "ready":
                self.ready = True
            elif text:
                acknowledged, seconds = text.split()
                self.acknowledged = max(self.acknowledged, int(acknowledged))
                self.flush_seconds.append(float(seconds))

    async def _read_more(self) -> bool:
        stdout = self.process.stdout
        assert stdout is not None
        data = await stdout.receive_some()
        self._take_lines(data)
        return bool(data)

    async def read_all(self) -> None:
        """Read output until EOF."""
        while await self._read_more():
            pass

    async def wait_ready(self) -> None:
        """Read output until the writer says its store is open."""
        while not self.ready and await self._read_more():
            pass

    async def kill(self) -> None:
        """SIGKILL the writer, then collect every acknowledgement it printed before dying."""
        self.process.kill()
        await self.process.wait()
        await self.read_all()  # lines already in the pipe were acknowledged before the kill
        assert self.process.stdout is not None
        await self.process.stdout.aclose()


def check_after_crash(place: StorePlace, acknowledged: int, max_records: int, namespace: str = "default") -> int:
    """The storage of ``namespace`` after a crash; return the highest stored id."""
    assert place.integrity() == "ok"
    stored = place.results(namespace)
    ids = [result.id for result in stored]
    assert len(ids) == len(set(ids)), "duplicate results"
    assert len(ids) <= max_records
    top = max(ids, default=0)
    assert top >= acknowledged, f"acknowledged up to {acknowledged}, but the file stops at {top}"
    # Flushes commit in acceptance order, so the durable ids are 1..top, and the cap keeps the
    # newest: no gap, nothing older than the cap, every acknowledged id the cap allows.
    assert ids == list(range(max(1, top - max_records + 1), top + 1))
    assert stored == [result_for(i) for i in ids], "a stored result differs from what was written"
    return top


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_nothing_acknowledged(store_place: StorePlace) -> None:
    path = store_place.path
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    top = 0
    acknowledged_runs = 0
    for kill in range(KILLS):
        with trio.fail_after(30):
            writer = await Writer.start(path, top + 1, MAX_RECORDS)
            try:
                if kill % 2 or kill == 0:
                    # From the start: in start-up, opening (the first run creates the schema),
                    # or writing.
                    delay = rng.uniform(0.0, 0.25) if kill == 0 else rng.uniform(0.0, 0.6)
                    with trio.move_on_after(delay):
                        await writer.read_all()
                else:
                    # While it writes: after it opened the store.
                    await writer.wait_ready()
                    with trio.move_on_after(rng.uniform(0.0, 0.3)):
                        await writer.read_all()
            finally:
                await writer.kill()
            assert writer.process.returncode == -signal.SIGKILL, (seed, writer.process.returncode)
            acknowledged = writer.acknowledged
            acknowledged_runs += acknowledged > top
            top = check_after_crash(store_place, acknowledged, MAX_RECORDS)
            # The lock died with the writer: reopen at once, and the kept count is right.
            async with open_store(path, max_records=MAX_RECORDS, flush_interval=60.0) as store:
                assert store.stats().stored == min(top, MAX_RECORDS)
                assert [r.id for r in await store.fetch_all()] == [r.id for r in store_place.results()]
    assert acknowledged_runs >= KILLS // 3, f"too few kills after an acknowledgement (seed {seed})"
    assert top > MAX_RECORDS, f"the cap was never exercised (seed {seed})"
