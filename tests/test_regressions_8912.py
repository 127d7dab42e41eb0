"""lnd issue #8912, as named regression tests: the schedules that hung lnd's store at shutdown.

lnd's ``missionControlStore`` (``routing/missioncontrol_store.go``) ran one goroutine. It
waited on a ``sync.Cond`` until the queue was non-empty, then reset a timer and selected on the
timer or on ``done``. ``stop()`` closed ``done``, called ``queueCond.Signal()`` without holding
the cond's lock, and waited for the goroutine with ``wg.Wait()``. Two kinds of hang followed:

* a lost wake-up: a ``Signal`` that arrives when the goroutine is not inside ``Wait`` is lost,
  so the goroutine then waits for ever and ``stop()`` never returns;
* a blocking timer drain: ``if !timer.Stop() { <-timer.C }`` blocks for ever when the tick
  has already been received (and, with Go 1.23 timers, whenever the timer has fired: the
  channel no longer keeps the value). A 1 ns flush interval makes that the normal case.

And ``stop()`` returned without flushing the queue, dropping up to one interval of results.

Each test below drives mcstore to the same moment. Trio runs the tasks that wake together in
a random order, so each test makes many attempts, records with a Trio ``Instrument`` where
the store's ticker and worker tasks were when the stop arrived, and asserts that every moment
of interest was reached at least once. After every close it checks the guarantees:

* close returns within ``shutdown_timeout`` (in virtual time: at once, when nothing is slow);
* no task or backend call of the store is left running;
* every accepted result is in the database (nothing dropped), or in ``store.unpersisted``;
* both of lnd's log lines were logged.
"""

from __future__ import annotations

import collections
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import factories
import pytest
import trio
import trio.testing
from shutdown_checks import assert_nothing_running, record_store_log, sqlite_integrity

from mcstore import FlushError, MissionControlStore, StoreClosed, open_store
from mcstore.model import PaymentResult
from mcstore.testing import FaultyBackend, MemoryBackend, MemoryDatabase

NS = 1e-9
ATTEMPTS = 120
BUDGET = 1e7
"""Virtual seconds: an autojump clock reaches it at once if something hangs."""


class Probe(trio.abc.Instrument):
    """Records when the store's ticker and worker tasks are woken and when they run.

    A task is recognised by its name, which the store gives it (``mcstore._run_ticker`` and so
    on); if the store renames its tasks, the coverage assertions below fail loudly rather than
    pass without having reached the schedule.
    """

    ROLES = {"_run_ticker": "ticker", "_run_worker": "worker", "_run_intake": "intake"}

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def _role(self, task: trio.lowlevel.Task) -> str | None:
        if not task.name.startswith("mcstore."):
            return None
        return self.ROLES.get(task.name.rsplit(".", 1)[-1])

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        role = self._role(task)
        if role is not None:
            self.events.append(("woken", role))

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        role = self._role(task)
        if role is not None:
            self.events.append(("ran", role))

    def reset(self) -> None:
        self.events.clear()

    def runs(self, role: str) -> int:
        """How often ``role`` ran since the last reset."""
        return sum(1 for event in self.events if event == ("ran", role))

    def waiting_to_run(self, role: str) -> bool:
        """True if ``role`` was woken and has not run since."""
        mine = [event for event, who in self.events if who == role]
        return bool(mine) and mine[-1] == "woken"


@contextmanager
def probing() -> Iterator[Probe]:
    probe = Probe()
    trio.lowlevel.add_instrument(probe)
    try:
        yield probe
    finally:
        trio.lowlevel.remove_instrument(probe)


def check_closed(
    store_unpersisted: tuple[PaymentResult, ...],
    backend: MemoryBackend | FaultyBackend,
    database: MemoryDatabase,
    accepted: list[PaymentResult],
    elapsed: float,
    bound: float,
) -> None:
    """The guarantees after one close; ``accepted`` in acceptance order, all with new keys."""
    assert elapsed <= bound + 1e-9, f"close took {elapsed} s, allowed {bound} s"
    assert_nothing_running(backend)
    persisted = [r for r in accepted if r not in store_unpersisted]
    assert database.results() == sorted(persisted, key=lambda r: r.key)
    assert list(store_unpersisted) == accepted[len(persisted) :]


# -- 1. stop signalled before the ticker starts waiting --------------------------------------


async def test_stop_signalled_before_the_ticker_starts_waiting(autojump_clock: trio.testing.MockClock) -> None:
    # lnd: stop() sent queueCond.Signal() without the lock. If the goroutine had checked the
    # queue but not yet entered Wait(), the signal was lost and stop() waited for ever.
    # Here: stop arrives right after a result was added, with the ticker woken but not yet run
    # to its sleep, or already sleeping; and right after open. (add_result arms the ticker
    # itself: once it returns, the ticker is woken.)
    seen: collections.Counter[str] = collections.Counter()
    with trio.fail_after(BUDGET), probing() as probe:
        for attempt in range(ATTEMPTS):
            database = MemoryDatabase()
            backend = MemoryBackend(database)
            accepted = [factories.result(attempt + 1)] if attempt % 6 else []
            with record_store_log() as log:
                async with open_store(backend, flush_interval=1.0, shutdown_timeout=5.0) as store:
                    probe.reset()
                    for result in accepted:
                        store.add_result(result)
                    for _ in range(attempt % 3):
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    if not accepted:
                        seen["right after open"] += 1
                    elif probe.runs("ticker"):
                        seen["ticker sleeping"] += 1
                    elif probe.waiting_to_run("ticker"):
                        seen["ticker woken, not yet waiting"] += 1
                    else:
                        seen["ticker not yet woken"] += 1
                    exited = trio.current_time()
                elapsed = trio.current_time() - exited
                check_closed(store.unpersisted, backend, database, accepted, elapsed, bound=0.0)
            log.assert_ticker_stopped()
    assert set(seen) == {"right after open", "ticker woken, not yet waiting", "ticker sleeping"}, seen


# -- 2. stop during the timer drain -----------------------------------------------------------


async def test_stop_during_the_timer_drain(autojump_clock: trio.testing.MockClock) -> None:
    # lnd: on stop, the goroutine released its timer with `if !timer.Stop() { <-timer.C }`.
    # When the timer had already fired, which a 1 ns flush interval makes the rule, the
    # drain blocked for ever (also at start-up, where the fresh timer was stopped the same
    # way). Here: flush_interval is 1 ns and stop arrives just as the ticker's sleep
    # expires: before the ticker ran, after it asked for a flush but before the worker ran,
    # or while the worker flushes.
    seen: collections.Counter[str] = collections.Counter()
    with trio.fail_after(BUDGET), probing() as probe:
        for attempt in range(ATTEMPTS):
            database = MemoryDatabase()
            backend = MemoryBackend(database)
            accepted = [factories.result(attempt + 1)]
            with record_store_log() as log:
                async with open_store(backend, flush_interval=NS, shutdown_timeout=5.0) as store:
                    store.add_result(accepted[0])
                    await trio.testing.wait_all_tasks_blocked()  # armed; the ticker sleeps 1 ns
                    probe.reset()
                    await trio.sleep(NS)  # wakes together with the ticker's timer
                    for _ in range(attempt % 3):
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    if probe.waiting_to_run("ticker") and not probe.runs("ticker"):
                        seen["timer fired, ticker not yet run"] += 1
                    elif probe.waiting_to_run("worker") and not probe.runs("worker"):
                        seen["tick delivered, worker not yet run"] += 1
                    elif probe.runs("worker"):
                        seen["worker flushing or done"] += 1
                    else:
                        seen["other"] += 1
                    exited = trio.current_time()
                elapsed = trio.current_time() - exited
                check_closed(store.unpersisted, backend, database, accepted, elapsed, bound=0.0)
            log.assert_ticker_stopped()
    assert {
        "timer fired, ticker not yet run",
        "tick delivered, worker not yet run",
        "worker flushing or done",
    } <= set(seen), seen


# -- 3. stop with an empty queue --------------------------------------------------------------


@pytest.mark.parametrize("emptied", ["never used", "by flush()", "by a tick", "by clear()"])
@pytest.mark.parametrize("idle", [0.0, NS, 1.0, 1e6])
async def test_stop_with_an_empty_queue(autojump_clock: trio.testing.MockClock, emptied: str, idle: float) -> None:
    # lnd: with nothing queued the goroutine sat in queueCond.Wait(); stop()'s unlocked
    # Signal could be lost and stop() waited for ever, the shape of most #8912 reports.
    # Here: close returns at once, writes nothing, and leaves nothing running.
    database = MemoryDatabase()
    backend = MemoryBackend(database)
    accepted = [factories.result(1), factories.result(2)]
    with trio.fail_after(BUDGET), record_store_log() as log:
        async with open_store(backend, flush_interval=1.0, shutdown_timeout=5.0) as store:
            if emptied != "never used":
                for result in accepted:
                    store.add_result(result)
            if emptied == "by flush()":
                await store.flush()
            elif emptied == "by a tick":
                await trio.sleep(1.5)
            elif emptied == "by clear()":
                await store.clear()
            assert store.stats().pending == 0
            await trio.sleep(idle)
            transactions = database.transactions
            exited = trio.current_time()
        assert trio.current_time() - exited == 0.0
        assert database.transactions == transactions, "closing an idle store wrote to the database"
        assert_nothing_running(backend)
        expected = accepted if emptied in ("by flush()", "by a tick") else []
        assert database.results() == expected
        assert store.unpersisted == ()
    log.assert_ticker_stopped()


# -- 4. stop with a flush in flight -----------------------------------------------------------


@pytest.mark.parametrize("release_after", [0.0, 1.0, 4.0, None])
async def test_stop_with_a_flush_in_flight(autojump_clock: trio.testing.MockClock, release_after: float | None) -> None:
    # lnd: a stop() during storeResults() found the goroutine outside Wait(), so its Signal
    # was lost; back in the loop the goroutine waited for ever, and whatever was queued
    # meanwhile was never stored. Here: stop arrives while the ticker's flush is inside the
    # backend, with more results queued behind it. Close waits for the flush (up to
    # shutdown_timeout), then flushes the rest; a flush that never finishes is abandoned at
    # the deadline, and its batch and the rest are reported in store.unpersisted.
    database = MemoryDatabase()
    in_flight = trio.Event()
    release = trio.Event()

    async def hold(batch: object) -> None:
        if not in_flight.is_set():
            in_flight.set()
            await release.wait()

    backend = FaultyBackend(MemoryBackend(database), before_flush=hold)
    first, queued = [factories.result(1), factories.result(2)], [factories.result(3), factories.result(4)]
    timeout = 5.0

    async def release_later(seconds: float) -> None:
        await trio.sleep(seconds)
        release.set()

    with trio.fail_after(BUDGET), record_store_log() as log:
        async with trio.open_nursery() as helpers:
            try:
                async with open_store(backend, flush_interval=1.0, shutdown_timeout=timeout) as store:
                    for result in first:
                        store.add_result(result)
                    await in_flight.wait()  # the tick's flush of `first` is inside the backend
                    for result in queued:
                        store.add_result(result)
                    if release_after is not None:
                        helpers.start_soon(release_later, release_after)
                    exited = trio.current_time()
            except FlushError:
                assert release_after is None
        elapsed = trio.current_time() - exited
        if release_after is None:
            bound = timeout
            assert store.unpersisted == tuple(first + queued)
        else:
            bound = release_after
            assert store.unpersisted == ()
        check_closed(store.unpersisted, backend, database, first + queued, elapsed, bound=bound)
    log.assert_ticker_stopped()


# -- 5. stop at the exact tick ----------------------------------------------------------------


@pytest.mark.parametrize("interval", [NS, 1.0])
async def test_stop_at_the_exact_tick(autojump_clock: trio.testing.MockClock, interval: float) -> None:
    # lnd: when the timer fired at the moment stop() closed `done`, select picked either
    # case. Picking `done` then ran the drain `<-timer.C` on a timer that had fired, which
    # could block for ever; picking the tick ran storeResults() and went back to a Wait()
    # whose wake-up had already been spent. Either way the queue was dropped. Here: the
    # block exits at exactly the virtual time of the tick, and both orders happen.
    seen: collections.Counter[str] = collections.Counter()
    with trio.fail_after(BUDGET), probing() as probe:
        for attempt in range(ATTEMPTS):
            database = MemoryDatabase()
            backend = MemoryBackend(database)
            accepted = [factories.result(attempt + 1), factories.result(attempt + 1000)]
            with record_store_log() as log:
                async with open_store(backend, flush_interval=interval, shutdown_timeout=5.0) as store:
                    store.add_result(accepted[0])
                    await trio.testing.wait_all_tasks_blocked()  # the ticker sleeps one interval
                    probe.reset()
                    await trio.sleep(interval)  # the same deadline as the ticker's
                    store.add_result(accepted[1])  # accepted at the tick: must not be dropped
                    seen["ticker first" if probe.runs("ticker") else "stop first"] += 1
                    exited = trio.current_time()
                elapsed = trio.current_time() - exited
                check_closed(store.unpersisted, backend, database, accepted, elapsed, bound=0.0)
            log.assert_ticker_stopped()
    assert set(seen) == {"ticker first", "stop first"}, seen


# -- a store bug these tests found (fixed in the store; kept as regression tests) -------------


async def _flush_quietly(store: MissionControlStore, outcome: list[BaseException] | None = None) -> None:
    """A caller's flush() in its own task; what it raised is the test's business, not this task's."""
    try:
        await store.flush()
    except (FlushError, StoreClosed) as exc:
        if outcome is not None:
            outcome.append(exc)


async def test_stop_with_a_caller_flush_in_flight(autojump_clock: trio.testing.MockClock) -> None:
    # The same moment as test_stop_with_a_flush_in_flight, but the flush in flight is a
    # caller's flush() from a task that outlives the block (e.g. a request handler spawned
    # into an outer nursery), and it hangs. Found here: close neither cancelled nor waited for
    # that flush, so it returned with a backend call still in flight and the flush's batch
    # missing from store.unpersisted: lost, without FlushError (lnd's stop() also dropped what
    # it did not store). Fixed by cancelling callers' operations at close, then taking the
    # flush lock before closing the backend.
    database = MemoryDatabase()
    backend = FaultyBackend(MemoryBackend(database), hang=True)
    result = factories.result(1)
    timeout = 1.0
    raised: list[BaseException] = []
    with trio.fail_after(BUDGET):
        async with trio.open_nursery() as outer:
            try:
                async with open_store(backend, flush_interval=60.0, shutdown_timeout=timeout) as store:
                    store.add_result(result)
                    outer.start_soon(_flush_quietly, store, raised)
                    await trio.testing.wait_all_tasks_blocked()  # that flush hangs in the backend
                    exited = trio.current_time()
            except FlushError:
                pass
            elapsed = trio.current_time() - exited
            in_flight = backend.calls_in_flight
            unpersisted = store.unpersisted
            outer.cancel_scope.cancel()
        assert elapsed <= timeout
        assert in_flight == 0, "a backend call outlived the store"
        assert unpersisted == (result,), "the in-flight batch was lost"
        assert database.results() == []
        # The caller learns that its flush did not make the result durable.
        assert len(raised) == 1 and isinstance(raised[0], FlushError), raised


@pytest.mark.slow
async def test_stop_with_a_caller_flush_in_flight_sqlite(tmp_path: os.PathLike[str]) -> None:
    # The same on SQLite, where the bug was a hang: the caller's statement was not
    # interrupted, and closing the backend queued behind it for as long as it ran.
    path = os.path.join(tmp_path, "mc.sqlite")
    async with open_store(path):
        pass
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("CREATE TABLE spin(n INTEGER)")
        conn.executemany("INSERT INTO spin VALUES (?)", [(i,) for i in range(1000)])
        # Several seconds per insert: a statement that runs until interrupted.
        conn.execute(
            "CREATE TRIGGER slow_insert AFTER INSERT ON mc_results BEGIN "
            "SELECT count(*) FROM spin a, spin b, spin c WHERE c.n < 600; END"
        )
    finally:
        conn.close()
    timeout = 0.3
    with trio.fail_after(120):
        async with trio.open_nursery() as outer:
            try:
                async with open_store(path, flush_interval=60.0, shutdown_timeout=timeout) as store:
                    store.add_result(factories.result(1))
                    outer.start_soon(_flush_quietly, store)
                    await trio.sleep(0.2)  # that flush's INSERT is running its trigger
                    exited = time.monotonic()
            except FlushError:
                pass
            elapsed = time.monotonic() - exited
            outer.cancel_scope.cancel()
    assert sqlite_integrity(path) == "ok"
    assert elapsed <= timeout + 1.0, f"close took {elapsed:.2f} s"
