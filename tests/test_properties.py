"""Property tests: the store always stops, and loses nothing, under any interleaving.

One generated schedule, the *store machine*, drives a store through random steps: new,
duplicate and older-than-cap results, ``put``, ``flush``, ``fetch_all``, ``clear``, sleeps
around ``flush_interval`` (0, 1 ns, just under, exactly at, just over, many intervals), and
injected backend faults. Then it leaves the store in one of the ways a caller can: a normal
exit, an exception, a cancellation from outside at a random time, an expired deadline, or
``store.aclose()`` inside the block.
After every step, and after close, it checks the store against
:class:`~mcstore.testing.StoreModel`, a plain-Python model:

(a) close returned within ``shutdown_timeout`` (plus the uninterruptible part of a commit; on
    the real clock also plus what the real backend, timed by :class:`TimedBackend`, could not
    cut short: its call in flight at the deadline and its own close);
(b) no task started by the store is alive (found by walking the task tree), no worker thread
    runs, and no backend call is open;
(c) the database holds exactly the newest ``max_records`` distinct results accepted since the
    last clear, minus ``store.unpersisted`` when a fault kept some from being persisted, and
    ``store.unpersisted`` is exactly the newest accepted results: nothing lost, nothing invented;
(d) a reopen sees the same;
(e) both of lnd's shutdown log lines were logged.

Two variants run the same machine:

* ``test_store_machine_virtual_time``: a :class:`~mcstore.testing.MemoryBackend` (in Trio, no
  threads) wrapped in a :class:`~mcstore.testing.FaultyBackend`, under
  ``MockClock(autojump_threshold=0)``, one ``trio.run`` per example from a plain ``@given``
  test (virtual time and worker threads do not mix: trio issue #456; hypothesis-trio is
  broken on current Hypothesis). Hypothesis also seeds Trio's scheduler, so every
  interleaving it finds replays exactly.
* ``test_store_machine_sqlite``: the same machine on a real SQLite file and the real clock,
  with fewer examples and shorter times.
* ``test_store_machine_postgres``: the same as the SQLite variant, on a fresh schema of the
  test PostgreSQL server.

To drive your own wrapper of the store through the machine, subclass :class:`StoreMachine`
and override :meth:`StoreMachine.open` (it must yield the ``MissionControlStore``, or an object
with the same public API); the checks stay the same.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

import factories
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from shutdown_checks import assert_nothing_running, pg_results, record_store_log, sqlite_results
from strategies import payment_failures, routes

from mcstore import FlushError, PostgresBackend, SQLiteBackend, StoreBusy, StoreClosed, open_store
from mcstore.backends import Backend, FetchOutcome, FlushOutcome, Snapshot
from mcstore.model import U64_MAX, PaymentResult
from mcstore.store import MAX_RETRY_BACKOFF, MissionControlStore, StoreState
from mcstore.testing import FaultyBackend, MemoryBackend, MemoryDatabase, StoreModel
from mcstore.testing.pgserver import PostgresServer, scratch_schema

T = TypeVar("T")

NS = 1e-9
"""One nanosecond, the smallest flush_interval the machine uses (lnd's timer-drain bug needed it)."""

EXITS = ("normal", "exception", "cancel", "deadline", "aclose")
STEPS = (
    "add_new",
    "add_duplicate",
    "add_old",
    "put",
    "flush",
    "fetch_all",
    "clear",
    "sleep",
    "inject_fault",
    "heal",
    "quiesce",
)
FAULTS = ("fail_next", "fail_always", "hang", "delay", "commit_delay")


class Boom(Exception):
    """The caller's own error, raised from inside the store's block."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a schedule, drawn in full before the store runs.

    A schedule is drawn up front, independently of how the run goes, so that on the real clock
    (where a cancellation may land sooner or later) Hypothesis still sees the same draws. What
    depends on the run is resolved then: ``pick`` chooses among the results accepted so far,
    and ``below`` is how far under the oldest kept key an "old" result goes.
    """

    name: str
    result: PaymentResult
    seconds: float
    pick: int
    other_value: bool
    below: int
    fault: str
    count: int
    delay: float

    def __repr__(self) -> str:
        relevant: dict[str, dict[str, object]] = {
            "add_new": {"result": self.result},
            "put": {"result": self.result, "timeout": self.seconds},
            "add_duplicate": {"pick": self.pick, "other_value": self.other_value, "result": self.result},
            "add_old": {"below": self.below, "result": self.result},
            "flush": {"timeout": self.seconds},
            "fetch_all": {"timeout": self.seconds},
            "clear": {"timeout": self.seconds},
            "sleep": {"seconds": self.seconds},
            "inject_fault": {"fault": self.fault, "count": self.count, "delay": self.delay},
        }
        args = ", ".join(f"{key}={value!r}" for key, value in relevant.get(self.name, {}).items())
        return f"Step({self.name!r}{', ' if args else ''}{args})"


@dataclasses.dataclass(frozen=True)
class Variant:
    """The time scale and sizes of one variant of the machine."""

    virtual: bool
    flush_intervals: tuple[float, ...]
    shutdown_timeouts: tuple[float, ...]
    delays: tuple[float, ...]
    max_sleep: float
    """Longest sleep step (and step timeout) in seconds."""
    close_slack: float
    """Real seconds allowed on top of the bound in (a), for threads and tasks to wake; 0 in
    virtual time. What the real backend itself cannot cut short is measured (:class:`TimedBackend`)."""
    budget: float
    """fail_after budget of one example, in the variant's seconds."""
    max_steps: int


VIRTUAL = Variant(
    virtual=True,
    flush_intervals=(NS, 1e-6, 1e-3, 0.5, 1.0, 7.0),
    shutdown_timeouts=(NS, 0.5, 5.0, 60.0),
    delays=(NS, 0.01, 0.5, 2.0, 10.0),
    max_sleep=math.inf,
    close_slack=0.0,
    budget=1e6,
    max_steps=30,
)
SQLITE = Variant(
    virtual=False,
    flush_intervals=(NS, 1e-3, 0.02),
    shutdown_timeouts=(0.05, 0.3, 1.0),
    delays=(0.001, 0.01, 0.05),
    max_sleep=0.05,
    close_slack=1.0,
    budget=60.0,
    max_steps=12,
)


class TimedBackend:
    """Wraps a real variant's backend and times its calls, for check (a) on a loaded machine.

    On a real backend, part of a close cannot be cut short by any store: a call in flight at the
    shutdown deadline has to finish (a COMMIT's WAL flush ignores a cancel; PostgreSQL's cancel
    is a request over a new connection), and the backend's own ``aclose`` runs to its end. On a
    loaded machine that part can take longer than any fixed allowance, so it is measured here,
    not assumed. Calls started after the deadline are not excused.
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.spans: list[tuple[float, float]] = []
        """(start, end) on the Trio clock of every call that ended, ``aclose`` included."""
        self.aclose_seconds = 0.0

    async def _timed(self, call: Awaitable[T]) -> T:
        start = trio.current_time()
        try:
            return await call
        finally:
            self.spans.append((start, trio.current_time()))

    def overrun(self, deadline: float) -> float:
        """Seconds by which calls in flight at ``deadline`` ran past it, plus ``aclose``'s own time."""
        past = sum(end - deadline for start, end in self.spans if start < deadline < end)
        return past + self.aclose_seconds

    async def open(self, namespace: str, max_records: int) -> int:
        return await self._timed(self.inner.open(namespace, max_records))

    async def store_results(self, results: Sequence[PaymentResult], max_records: int) -> FlushOutcome:
        return await self._timed(self.inner.store_results(results, max_records))

    async def fetch_all(self) -> FetchOutcome:
        return await self._timed(self.inner.fetch_all())

    async def clear(self) -> int:
        return await self._timed(self.inner.clear())

    async def open_snapshot(self) -> Snapshot:
        return await self._timed(self.inner.open_snapshot())

    async def aclose(self) -> None:
        start = trio.current_time()
        try:
            await self.inner.aclose()
        finally:
            self.aclose_seconds += trio.current_time() - start


class MemoryPlace:
    """An in-memory database: the virtual-time variant's storage."""

    exact = True

    def __init__(self) -> None:
        self.database = MemoryDatabase()

    def backend(self) -> MemoryBackend:
        return MemoryBackend(self.database)

    def results(self) -> list[PaymentResult]:
        return self.database.results()

    def cleanup(self) -> None:
        pass


class SQLitePlace:
    """A fresh SQLite file in a temporary directory: the real variant's storage."""

    # Read over another connection, a commit may be visible before the store settles it.
    exact = False

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="mcstore-machine-")
        self.path = os.path.join(self._directory.name, "mc.sqlite")

    def backend(self) -> SQLiteBackend:
        return SQLiteBackend(self.path)

    def results(self) -> list[PaymentResult]:
        return sqlite_results(self.path)

    def cleanup(self) -> None:
        self._directory.cleanup()


class PostgresPlace:
    """A fresh schema on the test PostgreSQL server: the real variant's storage, on PostgreSQL."""

    exact = False

    def __init__(self, server_dsn: str) -> None:
        self._schema = scratch_schema(server_dsn, prefix="machine")
        self.path = self._schema.__enter__()

    def backend(self) -> PostgresBackend:
        return PostgresBackend(self.path)

    def results(self) -> list[PaymentResult]:
        return pg_results(self.path)

    def cleanup(self) -> None:
        self._schema.__exit__(None, None, None)


def _single_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 else None


class StoreMachine:
    """Drives one store through a drawn schedule and checks it against a StoreModel."""

    def __init__(
        self, data: st.DataObject, variant: Variant, place: MemoryPlace | SQLitePlace | PostgresPlace
    ) -> None:
        self.variant = variant
        self.place = place
        draw = data.draw
        self.max_records = draw(st.sampled_from([0, 1, 2, 3, 5, 1000]), label="max_records")
        self.flush_interval = draw(st.sampled_from(variant.flush_intervals), label="flush_interval")
        self.shutdown_timeout = draw(st.sampled_from(variant.shutdown_timeouts), label="shutdown_timeout")
        self.max_pending = draw(st.sampled_from([1, 2, 3, 5, 100_000]), label="max_pending")
        self.faults = draw(st.booleans(), label="inject faults")
        self.plan = draw(st.lists(self.steps_strategy(), max_size=variant.max_steps), label="steps")
        self.exit = draw(st.sampled_from(EXITS), label="exit")
        self.exit_after = 0.0
        if self.exit in ("cancel", "deadline"):
            horizon = min(
                variant.max_sleep * variant.max_steps, 20 * max(self.flush_interval, self.shutdown_timeout)
            )
            self.exit_after = draw(
                st.sampled_from([0.0, self.flush_interval, self.shutdown_timeout]) | st.floats(0, horizon),
                label=f"{self.exit} after",
            )
        self.model = StoreModel(self.max_records)
        # On the real clock, time what the real backend cannot cut short (check (a)).
        self.timed = None if variant.virtual else TimedBackend(place.backend())
        self.backend = FaultyBackend(self.timed or place.backend())
        self.store: MissionControlStore | None = None
        self.all_accepted: list[PaymentResult] = []
        self.max_delay = 0.0
        self.max_commit_delay = 0.0
        self.t_exit: float | None = None
        self.t_closed: float | None = None
        self.faults_active_at_exit = False
        self.came_out: BaseException | None = None

    # -- the store under test: override to drive a wrapper ------------------------------

    @asynccontextmanager
    async def open(self, backend: Backend) -> AsyncIterator[MissionControlStore]:
        async with open_store(
            backend,
            max_records=self.max_records,
            flush_interval=self.flush_interval,
            shutdown_timeout=self.shutdown_timeout,
            max_pending=self.max_pending,
        ) as store:
            yield store

    # -- drawing ---------------------------------------------------------------------------

    def results_strategy(self) -> st.SearchStrategy[PaymentResult]:
        return st.builds(
            PaymentResult,
            id=st.integers(0, 2**16),
            time_fwd_ns=st.integers(0, U64_MAX),
            time_reply_ns=st.integers(1000, 2**20),
            route=routes(max_hops=2),
            failure=st.none() | payment_failures(),
        )

    def seconds_strategy(self) -> st.SearchStrategy[float]:
        """A duration around flush_interval: 0, 1 ns, just under, at, just over, many intervals."""
        interval = self.flush_interval
        choices = st.sampled_from(
            [0.0, NS, max(interval - NS, 0.0), interval, interval + NS, 3 * interval, 10 * interval]
        ) | st.floats(0, 3 * interval)
        return choices.map(lambda seconds: min(seconds, self.variant.max_sleep))

    def steps_strategy(self) -> st.SearchStrategy[Step]:
        names = st.sampled_from(STEPS if self.faults else [n for n in STEPS if n not in ("inject_fault", "heal")])
        return st.builds(
            Step,
            name=names,
            result=self.results_strategy(),
            seconds=self.seconds_strategy(),
            pick=st.integers(0, 2**16),
            other_value=st.booleans(),
            below=st.integers(1, 2**20),
            fault=st.sampled_from(FAULTS),
            count=st.integers(1, 3),
            delay=st.sampled_from(self.variant.delays),
        )

    # -- steps -------------------------------------------------------------------------------

    async def step(self, step: Step) -> None:
        await getattr(self, f"step_{step.name}")(step)

    def _add(self, result: PaymentResult) -> None:
        store = self.store
        assert store is not None
        if store.stats().pending >= self.max_pending:
            with pytest.raises(StoreBusy):
                store.add_result(result)
            return
        store.add_result(result)
        self._accepted(result)

    def _accepted(self, result: PaymentResult) -> None:
        self.model.accept(result)
        self.all_accepted.append(result)

    async def step_add_new(self, step: Step) -> None:
        self._add(step.result)

    async def step_add_duplicate(self, step: Step) -> None:
        if not self.all_accepted:
            return await self.step_add_new(step)
        original = self.all_accepted[step.pick % len(self.all_accepted)]
        if step.other_value:
            original = dataclasses.replace(original, time_fwd_ns=original.time_fwd_ns ^ 1)
        self._add(original)

    async def step_add_old(self, step: Step) -> None:
        # Older than everything the namespace keeps: at the cap it is pruned on arrival.
        kept = self.model.expected()
        oldest = kept[0].time_reply_ns if kept else 1000
        self._add(dataclasses.replace(step.result, time_reply_ns=max(oldest - step.below, 0)))

    async def step_put(self, step: Step) -> None:
        store = self.store
        assert store is not None
        result = step.result
        accepted = store.stats().accepted
        with trio.move_on_after(step.seconds):
            try:
                await store.put(result)
            except trio.Cancelled:
                assert store.stats().accepted == accepted, "a cancelled put() accepted its result"
                raise
            self._accepted(result)
            return
        assert store.stats().accepted == accepted, "a cancelled put() accepted its result"

    async def step_flush(self, step: Step) -> None:
        store = self.store
        assert store is not None
        injected = self.backend.faults_injected
        with trio.move_on_after(step.seconds):
            try:
                await store.flush()
            except FlushError:
                assert self.backend.faults_injected > injected, "FlushError without an injected fault"
                return
            assert store.stats().pending == 0, "flush() returned with results accepted before it unsettled"

    async def step_fetch_all(self, step: Step) -> None:
        store = self.store
        assert store is not None
        with trio.move_on_after(step.seconds):
            results = await store.fetch_all()
            # Fetches are serialised with flushes, so this is exact on every backend.
            assert results == self.model.expected(store.stats().pending)

    async def step_clear(self, step: Step) -> None:
        store = self.store
        assert store is not None
        with trio.move_on_after(step.seconds):
            await store.clear()
            self.model.clear()
            assert store.stats().pending == 0, "clear() left results accepted before it pending"

    async def step_sleep(self, step: Step) -> None:
        await trio.sleep(step.seconds)

    async def step_inject_fault(self, step: Step) -> None:
        fault = step.fault
        if fault == "fail_next":
            self.backend.fail_next += step.count
        elif fault == "fail_always":
            self.backend.fail_always = True
        elif fault == "hang":
            self.backend.hang = True
        else:
            seconds = step.delay
            setattr(self.backend, fault, seconds)
            if fault == "delay":
                self.max_delay = max(self.max_delay, seconds)
            else:
                self.max_commit_delay = max(self.max_commit_delay, seconds)

    async def step_heal(self, step: Step) -> None:
        self.backend.heal()

    async def step_quiesce(self, step: Step) -> None:
        """Liveness: with a healthy backend, every pending result gets flushed by itself."""
        store = self.store
        assert store is not None
        self.backend.heal()
        if not self.variant.virtual:
            # Real time cannot wait out a retry backoff; ask for the flush instead.
            with trio.fail_after(10):
                await store.flush()
            assert store.stats().pending == 0
            return
        # The longest the store may need: a flush in flight with an old delay, the ticker's
        # retry backoff, then one healthy flush.
        bound = (
            max(MAX_RETRY_BACKOFF, self.flush_interval)
            + self.flush_interval
            + 2 * (self.max_delay + self.max_commit_delay)
            + 1.0
        )
        await trio.sleep(bound)
        assert store.stats().pending == 0, (
            f"{store.stats().pending} results still pending {bound} s after the backend healed"
        )

    # -- checks ----------------------------------------------------------------------------

    def check_open(self) -> None:
        store = self.store
        assert store is not None
        stats = store.stats()
        assert stats.state is StoreState.OPEN
        assert store.unpersisted == ()
        assert stats.accepted == self.model.accepted
        assert 0 <= stats.pending <= self.max_pending
        rows = self.place.results()
        if self.place.exact and self.max_commit_delay == 0:
            assert rows == self.model.expected(stats.pending)
            assert stats.stored == len(rows)
        else:
            assert rows in self.model.candidates(0, stats.pending)

    def check_closed(self) -> None:
        store = self.store
        assert store is not None and self.t_exit is not None and self.t_closed is not None
        stats = store.stats()
        assert stats.state is StoreState.CLOSED
        # (a) close returned in time.
        # The close began at t_exit at the earliest, so its deadline was no earlier than this.
        deadline = self.t_exit + self.shutdown_timeout
        backend_overrun = 0.0 if self.timed is None else self.timed.overrun(deadline)
        bound = self.shutdown_timeout + self.max_commit_delay + backend_overrun
        elapsed = self.t_closed - self.t_exit
        # The clock is a float: allow a few units in the last place of its current value.
        rounding = 8 * math.ulp(self.t_closed)
        assert elapsed <= bound + rounding + self.variant.close_slack, (
            f"close took {elapsed} s; shutdown_timeout={self.shutdown_timeout}, "
            f"uninterruptible commit={self.max_commit_delay}, real backend past the deadline and "
            f"closing={backend_overrun}, close_slack={self.variant.close_slack}"
        )
        # (b) nothing of the store is running.
        assert_nothing_running(self.backend)
        # (c) the database equals the model, minus exactly store.unpersisted.
        unpersisted = store.unpersisted
        expected = self.model.expected_after_close(unpersisted)
        assert self.place.results() == expected
        assert stats.accepted == self.model.accepted
        assert stats.pending == len(unpersisted)
        if (
            self.variant.virtual
            and not self.faults_active_at_exit
            and 2 * (self.max_delay + self.max_commit_delay) < self.shutdown_timeout
        ):
            assert unpersisted == (), "a healthy backend had time for the final flush, yet results were lost"
        # How the block came out.
        if self.exit == "exception":
            assert type(self.came_out) is Boom, f"the caller's exception came out as {self.came_out!r}"
        elif self.exit in ("normal", "aclose"):
            if unpersisted:
                assert isinstance(self.came_out, FlushError), self.came_out
            else:
                assert self.came_out is None, self.came_out
        else:
            allowed = (trio.Cancelled, FlushError)
            assert self.came_out is None or isinstance(self.came_out, allowed), self.came_out
            if isinstance(self.came_out, FlushError):
                assert unpersisted
        # A closed store refuses work.
        with pytest.raises(StoreClosed):
            store.add_result(factories.result(1))
        self.expected_after_close = expected

    # -- one example -------------------------------------------------------------------------

    async def run(self) -> None:
        with record_store_log() as log:
            try:
                with trio.fail_after(self.variant.budget):
                    await self._lifetime_with_exit()
                    if self.store is None:
                        # Cancelled while opening: nothing was accepted, nothing may run.
                        assert self.place.results() == []
                        assert_nothing_running(self.backend)
                        return
                    self.check_closed()
                    # (d) a reopen sees the same.
                    reopened = self.place.backend()
                    async with open_store(reopened, max_records=self.max_records) as again:
                        assert await again.fetch_all() == self.expected_after_close
                    assert_nothing_running(reopened)
            except BaseExceptionGroup as group:
                leaf = _single_leaf(group)
                if leaf is None:
                    raise
                raise leaf from None
            # (e) lnd's two shutdown lines, for the store and for the reopen.
            log.assert_ticker_stopped(stores=2)

    async def _lifetime_with_exit(self) -> None:
        start = trio.current_time()
        async with trio.open_nursery() as helpers:
            with trio.CancelScope() as outer:
                if self.exit == "cancel":
                    helpers.start_soon(self._cancel_at, outer, start + self.exit_after)
                elif self.exit == "deadline":
                    outer.deadline = start + self.exit_after
                await self._lifetime(outer)
            helpers.cancel_scope.cancel()

    @staticmethod
    async def _cancel_at(scope: trio.CancelScope, when: float) -> None:
        await trio.sleep_until(when)
        scope.cancel()

    async def _lifetime(self, outer: trio.CancelScope) -> None:
        try:
            async with self.open(self.backend) as store:
                self.store = store
                self.check_open()
                try:
                    for step in self.plan:
                        await self.step(step)
                        self.check_open()
                except BaseException:
                    self.t_exit = trio.current_time()
                    self.faults_active_at_exit = self.backend.faults_active
                    raise
                self.t_exit = trio.current_time()
                self.faults_active_at_exit = self.backend.faults_active
                if self.exit == "exception":
                    raise Boom("the caller's own error")
                if self.exit == "aclose":
                    # Closed early by the caller; leaving the block then does nothing more.
                    try:
                        await store.aclose()
                    except FlushError as exc:
                        self.came_out = exc
                    await store.aclose()  # harmless twice
                if self.exit == "deadline":
                    # Still open at the deadline: make it expire now, so that close starts
                    # inside an expired scope.
                    outer.deadline = trio.current_time()
        except (Boom, FlushError) as exc:
            assert self.came_out is None, f"leaving a closed store raised {exc!r} again"
            self.came_out = exc
        except trio.Cancelled as exc:
            self.came_out = exc
            raise
        finally:
            self.t_closed = trio.current_time()


def _examples(factor: float) -> int:
    return max(2, int(settings().max_examples * factor))


@settings(max_examples=_examples(8))
@given(data=st.data())
def test_store_machine_virtual_time(data: st.DataObject) -> None:
    """In virtual time, over an in-Trio backend: the store always stops and loses nothing."""
    # Seeds Trio's scheduler too (pytest-trio registers it with Hypothesis), so the
    # interleaving is part of the example and replays exactly.
    data.draw(st.random_module(), label="scheduler seed")
    place = MemoryPlace()
    machine = StoreMachine(data, VIRTUAL, place)
    trio.run(machine.run, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.slow
@settings(max_examples=_examples(1))
@given(data=st.data())
def test_store_machine_sqlite(data: st.DataObject) -> None:
    """The same machine on a real SQLite file and the real clock, with fewer examples."""
    place = SQLitePlace()
    try:
        machine = StoreMachine(data, SQLITE, place)
        trio.run(machine.run)
    finally:
        place.cleanup()



@pytest.mark.slow
@settings(max_examples=_examples(0.5))
@given(data=st.data())
def test_store_machine_postgres(pg_server: PostgresServer, data: st.DataObject) -> None:
    """The same machine on a fresh schema of the PostgreSQL server and the real clock."""
    place = PostgresPlace(pg_server.dsn)
    try:
        machine = StoreMachine(data, SQLITE, place)
        trio.run(machine.run)
    finally:
        place.cleanup()
