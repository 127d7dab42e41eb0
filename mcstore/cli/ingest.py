"""The writing side of the ``mcstore`` command: every write goes through :func:`~mcstore.open_store`.

So the namespace lock, deduplication and the ``max_records`` cap apply to the command line
exactly as to a program. Three jobs:

* :func:`run_demo` routes a simulated node's payments with mission control
  (:mod:`mcstore.cli.routing`) and reports every attempt through
  :meth:`~mcstore.mission.MissionControl.report_result`, and stops gracefully on Ctrl-C or
  SIGTERM;
* :func:`store_all` writes already-validated results in one transaction: all or nothing;
* :func:`clear_namespace` deletes a namespace's results.

Each is a Trio function; the command line runs it with
:meth:`~mcstore.cli.stopping.StopSignals.run`, which hands it the stop signals. Progress is reported
through a callback, so this module knows nothing of how it is shown.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import trio

from ..backends import Backend, open_reader, redact_location
from ..errors import FlushError, StoreBusy
from ..mission import ESTIMATORS, Evaluation, Evaluator, make_estimator, open_mission_control
from ..model import PaymentResult
from ..store import MissionControlStore, StoreStats, open_store
from .demo import Network, demo_network
from .routing import BALANCES, PaymentOutcome, ProbabilitySource, RoutedPayments
from .stopping import STOPS

__all__ = [
    "DEMO_EPOCH_NS",
    "DEMO_ESTIMATORS",
    "DEMO_FLUSH_INTERVAL",
    "DemoOutcome",
    "DemoProgress",
    "ImportOutcome",
    "OnInterrupt",
    "OnOpen",
    "Proof",
    "clear_namespace",
    "import_results",
    "run_demo",
    "store_all",
    "verify_demo",
]

logger = logging.getLogger(__name__)

DEMO_FLUSH_INTERVAL: Final = 0.05
"""The demo flushes often, so that progress is visible in the database as it runs."""
_EVALUATOR_REPLAY_BATCH: Final = 1000
"""Stored results read at a time when the demo's evaluation learns the history."""
_BULK_FLUSH_INTERVAL: Final = 24 * 3600.0
"""For bulk writes the ticker must never fire: one explicit flush writes everything at once."""
_NS: Final = 1_000_000_000
DEMO_EPOCH_NS: Final = 1_767_225_600 * _NS
"""Where a demo history starts in an empty namespace: 2026-01-01T00:00:00Z. A fixed time, not
the clock, so that a seed repeats a run byte for byte."""
DEMO_ESTIMATORS: Final = (*ESTIMATORS, "none")
"""How the demo may route: with mission control and one of the estimators (lnd's apriori or
bimodal, the LDK-style historical one), or without mission control ("none": the cheapest
route, remembering only the payment's own failures)."""


@dataclass(frozen=True, slots=True)
class DemoProgress:
    """What :func:`run_demo` reports to its progress callback."""

    payments_started: int
    results_sent: int


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    """What a demo run did, for its summary."""

    seed: int
    payments: int
    """Payments asked for."""
    payments_started: int
    results_sent: int
    """Results handed to the store, duplicates included (each one was accepted)."""
    duplicates_sent: int
    successes: int
    failures: int
    interrupted: bool
    """The payments were stopped early by a stop signal (Ctrl-C or SIGTERM)."""
    stats: StoreStats
    """The store's counters after it closed."""
    close_seconds: float
    """Time spent leaving the store's ``async with``: the final flush and the shutdown."""
    elapsed_seconds: float
    unpersisted: int
    """Accepted results that the store could not make durable (0 after a healthy close)."""
    model_keys: frozenset[bytes]
    """Every key the namespace should know: those stored at open plus those accepted since."""
    estimator: str = "apriori"
    """How the payments were routed: one of :data:`DEMO_ESTIMATORS`."""
    payment_outcomes: tuple[PaymentOutcome, ...] = ()
    """How each payment that ended went, in order: attempts made and success."""
    replayed: int = 0
    """Stored results replayed into mission control at open (a continued history)."""
    unpersisted_keys: frozenset[bytes] = frozenset()
    """The keys of the results in :attr:`unpersisted` (the store handed them back)."""
    calibration: Evaluation | None = None
    """Every estimator (lnd's defaults) scored on the results of this run, as ``mcstore eval``
    scores a history, with the capacities of the network's graph: see :func:`run_demo`."""

    @property
    def payments_made(self) -> int:
        """Payments that ended (``payments_started`` less one cut short by a stop signal)."""
        return len(self.payment_outcomes)


OnOpen = Callable[[], None]
"""Called once the store is open and holds the namespace lock, before anything is written."""
OnInterrupt = Callable[[int, StoreStats | None], None]
"""Called on each stop signal during :func:`run_demo` with its number (SIGINT, SIGTERM) and
the store's counters at that moment (``None`` before the store is open). It should not raise;
it may end the process (an abort), and otherwise the demo carries on closing."""


@dataclass(frozen=True, slots=True)
class Proof:
    """The database checked against the demo's model, after the store closed."""

    expected: int
    """``min(max_records, distinct keys)``, or all distinct keys without a cap."""
    actual: int
    """Rows in the namespace."""
    missing: int
    """Keys the model expects that the database lacks (the unpersisted ones are not expected)."""
    unexpected: int
    """Keys in the database that the model does not expect."""
    damage: tuple[str, ...] = ()
    """What ``PRAGMA quick_check`` reports about the file (empty when it is sound)."""

    @property
    def ok(self) -> bool:
        """True when the file is sound and holds exactly the keys the model expects."""
        return self.missing == 0 and self.unexpected == 0 and not self.damage


@dataclass(slots=True)
class _DemoTally:
    store: MissionControlStore | None = None
    payments_started: int = 0
    sent: int = 0
    duplicates: int = 0
    successes: int = 0
    failures: int = 0
    close_seconds: float = 0.0
    replayed: int = 0
    outcomes: list[PaymentOutcome] | None = None
    evaluator: Evaluator | None = None


async def _record_demo(
    path: str,
    tally: _DemoTally,
    produce: trio.CancelScope,
    *,
    payments: int,
    seed: int,
    namespace: str,
    max_records: int,
    flush_interval: float,
    network: Network,
    on_progress: Callable[[DemoProgress], None] | None,
    on_open: OnOpen | None,
    estimator: str,
    balances: str,
) -> tuple[MissionControlStore, set[bytes]]:
    model: set[bytes] = set()
    close_started: float | None = None
    try:
        async with open_mission_control(
            path,
            self_pubkey=network.source_pubkey,
            # "none" still records (and replays) the history; it only routes without it.
            estimator=make_estimator("apriori" if estimator == "none" else estimator),
            namespace=namespace,
            max_records=max_records,
            flush_interval=flush_interval,
        ) as mc:
            store = mc.store
            tally.store = store
            tally.replayed = mc.replayed
            try:
                # Read once the store holds the namespace lock, so that no one else writes it.
                model = (await _read_namespace(path, namespace)).keys
                if on_open is not None:
                    on_open()
                start_ns, largest_id = DEMO_EPOCH_NS, 0
                if model:
                    start_ns = max(int.from_bytes(k[:8], "big") for k in model) + _NS
                    largest_id = max(int.from_bytes(k[8:16], "big") for k in model)
                probability: ProbabilitySource | None = None
                if estimator != "none":
                    # The network's pubkeys, amounts and capacities are valid: no need to check them
                    # for each of the channels a route search weighs.
                    probability = mc._probability

                payer = RoutedPayments(
                    network,
                    seed=seed,
                    start_ns=start_ns,
                    first_id=largest_id + 1,
                    probability=probability,
                    balances=balances,
                )
                tally.outcomes = payer.outcomes
                evaluator = tally.evaluator = Evaluator(network.graph, self_pubkey=network.source_pubkey)
                with produce:
                    if mc.replayed:
                        # Learns the stored history, as mission control did at open, without scoring
                        # it: this run's results are then predicted from the state mission control had.
                        async with contextlib.aclosing(store.iter_results(_EVALUATOR_REPLAY_BATCH)) as stored:
                            async for result in stored:
                                evaluator.apply(result)
                    for result in payer.run(payments):
                        # Reported before the next route is searched: the retry learns from it.
                        while True:
                            try:
                                mc.report_result(result)
                                break
                            except StoreBusy:
                                await store.flush()  # a full intake waits for the store to catch up
                        evaluator.add(result)  # scores what each estimator predicted, then learns
                        model.add(result.key)
                        tally.sent += 1
                        tally.payments_started = payer.payments_started
                        if result.success:
                            tally.successes += 1
                        else:
                            tally.failures += 1
                        if on_progress is not None:
                            on_progress(DemoProgress(tally.payments_started, tally.sent))
                        # Lets the store's intake run, and Ctrl-C stop the payments.
                        await trio.lowlevel.checkpoint()
                    tally.payments_started = payer.payments_started
            finally:
                close_started = time.perf_counter()
    except FlushError:
        # Some accepted results could not be persisted before shutdown_timeout. They are in
        # store.unpersisted; the summary reports them and the proof shows what is missing.
        pass
    finally:
        if close_started is not None:
            tally.close_seconds = time.perf_counter() - close_started
    return store, model


async def run_demo(
    path: str,
    *,
    payments: int,
    seed: int,
    namespace: str = "default",
    max_records: int = 1000,
    flush_interval: float = DEMO_FLUSH_INTERVAL,
    network: Network | None = None,
    on_progress: Callable[[DemoProgress], None] | None = None,
    on_open: OnOpen | None = None,
    on_interrupt: OnInterrupt | None = None,
    estimator: str = "apriori",
    balances: str = "beta",
    signals: AsyncIterator[int] | None = None,
) -> DemoOutcome:
    """Make ``payments`` simulated payments, recording every attempt into ``namespace`` of ``path``.

    The payments are routed with mission control (:func:`~mcstore.mission.open_mission_control`
    over the database, with the ``estimator`` named, one of :data:`DEMO_ESTIMATORS`): the
    stored history is replayed at open, every attempt is reported through
    :meth:`~mcstore.mission.MissionControl.report_result`, and each route is searched with
    the probabilities of that moment (:class:`~mcstore.cli.routing.RoutedPayments`). With
    ``"none"`` the attempts are still recorded, but routed without mission control. The
    payments go over ``network`` (default: :func:`~mcstore.cli.demo.demo_network`), whose
    hidden balances are drawn as ``balances`` says (one of
    :data:`~mcstore.cli.routing.BALANCES`).

    The outcome's :attr:`~DemoOutcome.calibration` scores every estimator (lnd's defaults) on
    this run's results with an :class:`~mcstore.mission.Evaluator` over ``network.graph``: each
    result as it is reported, predicted from the state of that moment, which starts from the
    stored history (learnt, not scored). So the routing estimator is scored on the very
    probabilities it routed with, and the others on the same attempts; on a namespace that
    was empty and kept every result, the scores are those of ``mcstore eval`` with the same
    graph.

    The history continues what is stored: attempt ids follow the largest stored id, and the
    simulated clock starts one second after the newest stored reply, or at
    :data:`DEMO_EPOCH_NS` in an empty namespace. Nothing depends on the wall clock, so the
    same ``seed`` into the same database state writes the same rows, byte for byte. Each
    result goes through ``store.put()``, so a full intake waits rather than fails.
    ``on_open`` is called once the store holds the namespace lock, before the first write.

    ``signals`` yields the stop signals (Ctrl-C, SIGTERM: see :mod:`mcstore.cli.stopping`,
    whose :meth:`~mcstore.cli.stopping.StopSignals.run` hands them over): the first stops the
    payments; the store then closes as usual, with its final flush, and the outcome says
    ``interrupted``. Every signal, the first included, is also passed to ``on_interrupt``; the
    later ones do not stop the close. Raises what :func:`~mcstore.open_store` raises
    (``StoreLocked``, ``StoreError``); a final flush that fails is not raised but reported in
    :attr:`DemoOutcome.unpersisted`.
    """
    if estimator not in DEMO_ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(DEMO_ESTIMATORS)}, got {estimator!r}")
    if balances not in BALANCES:
        raise ValueError(f"balances must be one of {', '.join(BALANCES)}, got {balances!r}")
    tally = _DemoTally()
    produce = trio.CancelScope()
    started_at = time.perf_counter()

    async def watch(signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            # The first signal stops the payments (if they still run); the close that follows
            # is bounded by the store's shutdown_timeout, so later ones only go to on_interrupt.
            produce.cancel()
            if on_interrupt is not None:
                on_interrupt(signum, None if tally.store is None else tally.store.stats())

    error: Exception | None = None
    async with trio.open_nursery() as guard:
        if signals is not None:
            guard.start_soon(watch, signals)
        try:
            store, model = await _record_demo(
                path,
                tally,
                produce,
                payments=payments,
                seed=seed,
                namespace=namespace,
                max_records=max_records,
                flush_interval=flush_interval,
                network=network if network is not None else demo_network(),
                on_progress=on_progress,
                on_open=on_open,
                estimator=estimator,
                balances=balances,
            )
        except Exception as exc:
            # Raised below, outside the nursery, so that it is not wrapped in a group.
            error = exc
        guard.cancel_scope.cancel()
    if error is not None:
        raise error
    return DemoOutcome(
        seed=seed,
        payments=payments,
        payments_started=tally.payments_started,
        results_sent=tally.sent,
        duplicates_sent=tally.duplicates,
        successes=tally.successes,
        failures=tally.failures,
        interrupted=produce.cancelled_caught,  # the payments were stopped, not over
        stats=store.stats(),
        close_seconds=tally.close_seconds,
        elapsed_seconds=time.perf_counter() - started_at,
        unpersisted=len(store.unpersisted),
        unpersisted_keys=frozenset(result.key for result in store.unpersisted),
        model_keys=frozenset(model),
        estimator=estimator,
        payment_outcomes=tuple(tally.outcomes or ()),
        replayed=tally.replayed,
        calibration=None if tally.evaluator is None else tally.evaluator.evaluation(),
    )


@dataclass(frozen=True, slots=True)
class _Stored:
    keys: set[bytes]
    """The keys of the namespace (decodable or not)."""
    damage: list[str]
    """What the reader's integrity check found (empty when the pages are sound)."""


async def _read_namespace(location: str, namespace: str, *, check: bool = False) -> _Stored:
    """The keys of ``namespace`` at ``location``, read through a read-only snapshot, after the
    reader's integrity check (``PRAGMA quick_check`` on SQLite) if ``check``."""
    keys: set[bytes] = set()
    async with contextlib.aclosing(await open_reader(location)) as reader:
        damage = await reader.check_integrity() if check else []
        async with contextlib.aclosing(await reader.open_snapshot(namespace)) as snapshot:
            while rows := await snapshot.next_batch(10_000):
                keys.update(key for key, _ in rows)
    return _Stored(keys, damage)


def verify_demo(
    path: str,
    namespace: str,
    model_keys: frozenset[bytes],
    max_records: int,
    unpersisted: frozenset[bytes] = frozenset(),
) -> Proof:
    """Check the file with ``PRAGMA quick_check`` and compare the namespace's keys with the model's.

    The store keeps the ``max_records`` greatest keys of all it accepted (all of them with no
    cap), except those it handed back as unpersisted (``unpersisted``: their keys; the demo's
    keys are distinct): so that is exactly the set expected. Reads the file read-only.
    """
    expected = sorted(model_keys - unpersisted)
    if max_records:
        expected = expected[-max_records:]
    stored = STOPS.run(lambda: _read_namespace(path, namespace, check=True))
    actual, damage = stored.keys, stored.damage
    wanted = set(expected)
    return Proof(
        expected=len(wanted),
        actual=len(actual),
        missing=len(wanted - actual),
        unexpected=len(actual - wanted),
        damage=tuple(damage),
    )


async def store_all(
    path: str | Backend,
    results: Sequence[PaymentResult],
    *,
    namespace: str = "default",
    max_records: int = 1000,
    on_open: Callable[[MissionControlStore], None] | None = None,
) -> StoreStats:
    """Write ``results`` into ``namespace`` of ``path`` through a store, in one transaction.

    All the results are accepted first, then one flush writes them: so the write is all or
    nothing, with deduplication and the ``max_records`` cap applied as by any flush. If that
    flush fails, the store's close retries it once at once (and until its shutdown timeout);
    only if that fails too is :class:`~mcstore.FlushError` raised, and then nothing was
    written. ``path`` may also be a :class:`~mcstore.Backend`. Returns the store's counters
    after close. Raises what :func:`~mcstore.open_store` raises.

    ``on_open`` gets the store as soon as it is open. When the write is cancelled or
    interrupted (Ctrl-C), the store still closes with its final flush before the exception
    propagates; the store then tells what became durable: nothing is in
    :attr:`~mcstore.MissionControlStore.unpersisted` after a commit, everything accepted is
    there after none.
    """
    store: MissionControlStore | None = None
    try:
        async with open_store(
            path,
            namespace=namespace,
            max_records=max_records,
            flush_interval=_BULK_FLUSH_INTERVAL,
            max_pending=max(1, len(results)),
        ) as store:
            if on_open is not None:
                on_open(store)
            for result in results:
                store.add_result(result)
            await store.flush()
    except FlushError:
        # The close's final flush may have written them all after all: then it is a success.
        if store is None or store.unpersisted:
            raise
    assert store is not None
    return store.stats()


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What :func:`import_results` did."""

    stats: StoreStats | None
    """The store's counters after it closed; ``None`` if it never opened."""
    unpersisted: int
    """Accepted results that are not durable (all of them when the write failed)."""
    interrupted: bool
    """A stop signal (Ctrl-C or SIGTERM) came during the write."""


async def import_results(
    path: str,
    results: Sequence[PaymentResult],
    *,
    namespace: str = "default",
    max_records: int = 1000,
    on_done: Callable[[ImportOutcome], None] | None = None,
    signals: AsyncIterator[int] | None = None,
) -> ImportOutcome:
    """:func:`store_all`, with a stop signal turned into a cancellation of the write.

    ``signals`` yields the stop signals (Ctrl-C, SIGTERM: see :mod:`mcstore.cli.stopping`).
    On the first, the caller's flush is cancelled, and the store's close runs its final flush
    as always (shielded, bounded by its ``shutdown_timeout``): so the write still ends all or
    nothing, and the outcome says which, from what the store reported durable. Without a
    signal, a write that fails raises :class:`~mcstore.FlushError` as :func:`store_all`
    does; with one, the failure is reported in :attr:`ImportOutcome.unpersisted` instead.
    Raises what :func:`~mcstore.open_store` raises. ``on_done`` also gets the outcome, so
    that a caller still has it if a signal that comes as the run ends stops the command.
    """
    opened: list[MissionControlStore] = []
    interrupted = False
    work = trio.CancelScope()
    error: Exception | None = None

    async def watch(signals: AsyncIterator[int]) -> None:
        nonlocal interrupted
        async for _ in signals:
            interrupted = True
            work.cancel()

    def writing(store: MissionControlStore) -> None:
        opened.append(store)
        logger.info(
            "Writing %d results into namespace %r of %s in one transaction", len(results), namespace,
            redact_location(path),
        )

    async with trio.open_nursery() as guard:
        if signals is not None:
            guard.start_soon(watch, signals)
        try:
            with work:
                await store_all(path, results, namespace=namespace, max_records=max_records, on_open=writing)
        except FlushError as exc:
            if not interrupted:
                error = exc
        except Exception as exc:
            # Raised below, outside the nursery, so that it is not wrapped in a group.
            error = exc
        guard.cancel_scope.cancel()
    if error is not None:
        raise error
    store = opened[0] if opened else None
    if store is None:
        outcome = ImportOutcome(None, 0, interrupted)
    else:
        outcome = ImportOutcome(store.stats(), len(store.unpersisted), interrupted)
    if on_done is not None:
        on_done(outcome)
    return outcome


async def clear_namespace(path: str, namespace: str = "default") -> int:
    """Delete every result of ``namespace`` in ``path`` through a store; return how many."""
    # max_records=0: opening must not prune what is about to be cleared anyway.
    async with open_store(path, namespace=namespace, max_records=0) as store:
        stored = store.stats().stored
        await store.clear()
    return stored
