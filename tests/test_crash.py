"""Crash consistency with real processes: SIGKILL a writer at random moments, lose nothing.

A writer subprocess (``scripts/crash_writer.py``) adds and flushes continuously with a tiny
``flush_interval``, and prints the highest id after each ``flush()`` returns: an
acknowledgement. The test kills it with SIGKILL at random moments (during start-up, opening,
adding, or inside a commit; every other run only once the writer has acknowledged a random
number of ids, so that a slow machine still kills writers with acknowledged results), then
checks the storage, on each real backend (an SQLite file, and a PostgreSQL schema on the test
server):

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
from factories import result_for
from shutdown_checks import SCRIPTS_DIR, StorePlace, child_env, reopen_after_kill

WRITER = os.path.join(SCRIPTS_DIR, "crash_writer.py")
KILLS = 12
MAX_RECORDS = 300
WRITING_RUNS = KILLS // 2 - 1
"""The runs killed while writing (every even one but the first): each waits for progress."""
MIN_PROGRESS = MAX_RECORDS // WRITING_RUNS + 1
"""New ids a writing run acknowledges at least (at most twice as many) before its kill: the
writing runs alone acknowledge more than ``MAX_RECORDS``, so the cap is always exercised."""


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
    async def start(
        cls, path: str, first: int, max_records: int, namespace: str = "default", *, keep_going: bool = False
    ) -> Writer:
        """Start a writer (``keep_going``: it retries a failed flush instead of ending)."""
        process = await trio.lowlevel.open_process(
            [sys.executable, WRITER, path, str(first), str(max_records), namespace, *(["--keep-going"] * keep_going)],
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

    async def wait_acknowledged(self, id: int) -> None:
        """Read output until the writer has acknowledged ``id`` (or its output ends)."""
        while self.acknowledged < id and await self._read_more():
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
    writing_runs = 0
    for kill in range(KILLS):
        with trio.fail_after(30):
            writer = await Writer.start(path, top + 1, MAX_RECORDS)
            writing = kill % 2 == 0 and kill > 0
            try:
                if not writing:
                    # From the start: in start-up, opening (the first run creates the schema),
                    # or writing. How far it gets depends on the machine's speed.
                    delay = rng.uniform(0.0, 0.25) if kill == 0 else rng.uniform(0.0, 0.6)
                    with trio.move_on_after(delay):
                        await writer.read_all()
                else:
                    # While it writes: once it has acknowledged a random amount of progress
                    # (counted in its acknowledgements, not in seconds, so that a loaded machine
                    # still kills it with results acknowledged and the cap gets exercised), then
                    # at a random moment: adding, flushing or inside a commit.
                    writing_runs += 1
                    target = top + rng.randint(MIN_PROGRESS, 2 * MIN_PROGRESS)
                    await writer.wait_acknowledged(target)
                    assert writer.acknowledged >= target, f"the writer stopped before acknowledging {target}"
                    with trio.move_on_after(rng.uniform(0.0, 0.3)):
                        await writer.read_all()
            finally:
                await writer.kill()
            assert writer.process.returncode == -signal.SIGKILL, (seed, writer.process.returncode)
            acknowledged = writer.acknowledged
            acknowledged_runs += acknowledged > top
            top = check_after_crash(store_place, acknowledged, MAX_RECORDS)
            # The lock died with the writer: the namespace reopens (within REOPEN_WITHIN), and
            # the kept count is right.
            async with reopen_after_kill(path, max_records=MAX_RECORDS, flush_interval=60.0) as store:
                assert store.stats().stored == min(top, MAX_RECORDS)
                assert [r.id for r in await store.fetch_all()] == [r.id for r in store_place.results()]
    assert acknowledged_runs >= writing_runs, f"too few kills after an acknowledgement (seed {seed})"
    assert top > MAX_RECORDS, f"the cap was never exercised (seed {seed})"
