"""Mission control over a store: :func:`open_mission_control` and :class:`MissionControl`.

At open, the stored history is replayed in key order (time of reply, then attempt id, then
source) through lnd's rules, as lnd does at start-up; every reported result is then stored and
applied at once. An estimator that learns (a :class:`~mcstore.mission.state.PairLearner`, such
as :class:`~mcstore.mission.HistoricalEstimator`) is attached to the state, so it learns from
the replay and from every result reported, and forgets on :meth:`MissionControl.reset`.
The store underneath keeps all its guarantees: leaving the ``async with`` block closes it
exactly as :func:`mcstore.open_store` does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import trio

from ..backends import Backend
from ..model import PUBKEY_LEN, PaymentResult
from ..store import MissionControlStore, open_store
from .estimators import AprioriEstimator, Estimator
from .interpretation import FinalFailureReason
from .state import MissionControlState, TimedPairResult, _check_amount, _check_pubkey, _check_time

__all__ = ["MissionControl", "open_mission_control"]

logger = logging.getLogger("mcstore.mission")

_REPLAY_BATCH: Final = 1000  # results read (and held) at a time while replaying


class MissionControl:
    """A node's mission control: its stored history, the pair state, and an estimator.

    Get one from :func:`open_mission_control`; it is valid inside that ``async with`` block.
    All methods but :meth:`reset` are synchronous and atomic with respect to other Trio tasks.
    """

    def __init__(
        self,
        store: MissionControlStore,
        state: MissionControlState,
        estimator: Estimator,
        self_pubkey: bytes,
    ) -> None:
        self._store = store
        self._state = state
        self._estimator = estimator
        self._self = self_pubkey
        self._reset_lock = trio.Lock()
        self._reported_during_reset: list[PaymentResult] | None = None
        self.replayed = 0
        """How many stored results were replayed at open."""

    @property
    def store(self) -> MissionControlStore:
        """The open store that keeps the history."""
        return self._store

    @property
    def state(self) -> MissionControlState:
        """The pair state (read it with ``results_from`` and ``pairs``; change it through this object)."""
        return self._state

    @property
    def estimator(self) -> Estimator:
        """The estimator that :meth:`probability` uses."""
        return self._estimator

    @property
    def self_pubkey(self) -> bytes:
        """This node's pubkey: channels from it use the estimator's local variant."""
        return self._self

    def report_result(self, result: PaymentResult) -> FinalFailureReason | None:
        """Accept ``result`` into the store and apply it to the state (lnd's ``ReportPayment*``).

        Never blocks. When it raises, the state is unchanged.

        Args:
            result: The attempt's :class:`~mcstore.PaymentResult`.

        Returns:
            The final failure reason (None: retrying may help, or a success).

        Raises:
            TypeError: ``result`` is not a :class:`~mcstore.PaymentResult`.
            StoreClosed: The store is closing (from :meth:`~mcstore.MissionControlStore.add_result`).
            StoreBusy: The store cannot take more results now.
        """
        self._store.add_result(result)
        if self._reported_during_reset is not None:
            self._reported_during_reset.append(result)
        return self._state.apply_result(result)

    def probability(
        self,
        from_pubkey: bytes,
        to_pubkey: bytes,
        amount_msat: int,
        capacity_sat: int,
        *,
        now_ns: int | None = None,
    ) -> float:
        """The probability that the channel ``from -> to`` forwards ``amount_msat`` (lnd's ``GetProbability``).

        Uses the estimator's local variant when ``from_pubkey`` is this node. In [0, 1].

        Args:
            from_pubkey: The channel's source node, 33 bytes (bytes, bytearray or memoryview).
            to_pubkey: Its other node, 33 bytes.
            amount_msat: The amount to forward, an int in the u64 range.
            capacity_sat: The channel's capacity, an int in the u64 range (0: unknown).
            now_ns: The time of the question, an int64 of ns since the Unix epoch; None: the
                wall clock (``time.time_ns()``).

        Raises:
            TypeError: An argument of the wrong type, naming the value.
            ValueError: An argument out of range, naming the value.
        """
        where = "probability()"
        from_pubkey = _check_pubkey(where, "from_pubkey", from_pubkey)
        to_pubkey = _check_pubkey(where, "to_pubkey", to_pubkey)
        amount_msat = _check_amount(where, "amount_msat", amount_msat)
        capacity_sat = _check_amount(where, "capacity_sat", capacity_sat)
        checked_now = _check_time(where, "now_ns", now_ns)
        now = time.time_ns() if checked_now is None else checked_now
        return self._probability(from_pubkey, to_pubkey, amount_msat, capacity_sat, now)

    def _probability(
        self, from_pubkey: bytes, to_pubkey: bytes, amount_msat: int, capacity_sat: int, now: int
    ) -> float:
        """:meth:`probability` of arguments known to be valid (a pathfinding loop asks it thousands
        of times a route: the demo's, whose arguments come from its own network)."""
        results = self._state.results_from(from_pubkey)
        if from_pubkey == self._self:
            return self._estimator.local_pair_probability(now, results, to_pubkey)
        return self._estimator.pair_probability(now, results, to_pubkey, amount_msat, capacity_sat)

    def pairs(self) -> dict[tuple[bytes, bytes], TimedPairResult]:
        """A snapshot of the pair history (lnd's ``QueryMissionControl``); see :meth:`MissionControlState.pairs`."""
        return self._state.pairs()

    def import_pairs(
        self,
        pairs: Mapping[tuple[bytes, bytes], TimedPairResult] | Iterable[tuple[tuple[bytes, bytes], TimedPairResult]],
        *,
        force: bool = False,
    ) -> int:
        """Merge pair history into the state, in memory only (lnd's ``XImportMissionControl``).

        See :meth:`MissionControlState.import_pairs`; lost at the next open, as in lnd. A
        learning estimator learns nothing from an import (imports are summaries, not outcomes);
        the apriori and bimodal estimators see it, as they read the state.

        Args:
            pairs: As for :meth:`MissionControlState.import_pairs`.
            force: As for :meth:`MissionControlState.import_pairs`.

        Returns:
            The number of parts applied.

        Raises:
            TypeError: An invalid entry, naming it; nothing is imported.
            ValueError: An invalid entry, naming it; nothing is imported.
        """
        return self._state.import_pairs(pairs, force=force)

    async def reset(self) -> None:
        """Delete the stored history and clear the state (lnd's ``ResetMissionControl``).

        A learning estimator forgets too. Results reported while the store clears are kept,
        in the store and in the state (and learnt again). If
        the clear fails or is cancelled, nothing is deleted and the state is unchanged. Raises
        :class:`~mcstore.StoreClosed` once the store is closing.
        """
        async with self._reset_lock:
            self._reported_during_reset = []
            try:
                await self._store.clear()
                later = self._reported_during_reset
            finally:
                self._reported_during_reset = None
            self._state.reset()
            for result in later:
                self._state.apply_result(result)
            logger.info("Mission control history cleared (%d results reported meanwhile kept)", len(later))

    async def _replay(self) -> None:
        """Apply the stored history in key order, as lnd's ``init``, streaming it in batches."""
        start = time.perf_counter()
        apply = self._state.apply_result
        count = 0
        async with contextlib.aclosing(self._store.iter_results(_REPLAY_BATCH)) as results:
            async for result in results:  # each batch read is a checkpoint
                apply(result)
                count += 1
            skipped = results.skipped
        self.replayed = count
        logger.info(
            "Mission control state reconstructed: namespace=%r results=%d skipped=%d pairs=%d seconds=%.3f",
            self._store.namespace, count, skipped, len(self._state), time.perf_counter() - start,
        )

    def __repr__(self) -> str:
        return f"<MissionControl estimator={self._estimator!r} pairs={len(self._state)} store={self._store!r}>"


@asynccontextmanager
async def open_mission_control(
    path: str | os.PathLike[str] | Backend,
    *,
    self_pubkey: bytes,
    estimator: Estimator | None = None,
    min_failure_relax_interval: float = 60.0,
    **store_options: Any,
) -> AsyncIterator[MissionControl]:
    """Open the store at ``path`` and rebuild mission control from its history.

    ``async with open_mission_control("mc.sqlite", self_pubkey=me) as mc:`` yields a
    :class:`MissionControl`. The errors and shutdown guarantees of :func:`mcstore.open_store`
    apply unchanged: leaving the block, in any way, closes the store with a final flush of
    every reported result.

    The stored results are replayed in key order before the block starts, streamed from one
    consistent snapshot a thousand at a time, so memory stays bounded whatever the history's
    size; undecodable rows are logged and skipped; each batch read is a checkpoint, where the
    replay can be cancelled.

    Args:
        path: As for :func:`mcstore.open_store`: an SQLite file, a ``postgresql://`` URL or a
            :class:`~mcstore.backends.Backend`.
        self_pubkey: This node, 33 bytes.
        estimator: The estimator of :meth:`MissionControl.probability` (default:
            :class:`AprioriEstimator`, lnd's default). One that learns is attached to the
            state and made to forget what it knew first: it then holds exactly what this
            history teaches, and should not be shared with another mission control.
        min_failure_relax_interval: lnd's ``MinimumFailureRelaxInterval``, in seconds.
        **store_options: Every other keyword (``namespace``, ``max_records``,
            ``flush_interval``, ...) goes to :func:`mcstore.open_store`.

    Raises:
        TypeError: A bad argument, before anything is opened.
        ValueError: A bad argument, before anything is opened.
        StoreError: As :func:`mcstore.open_store` (:class:`~mcstore.StoreLocked`, ...).
    """
    if not isinstance(self_pubkey, (bytes, bytearray, memoryview)):
        raise TypeError(f"self_pubkey must be bytes, got {type(self_pubkey).__name__} {self_pubkey!r}")
    self_pubkey = bytes(self_pubkey)
    if len(self_pubkey) != PUBKEY_LEN:
        raise ValueError(f"self_pubkey must be {PUBKEY_LEN} bytes, got {len(self_pubkey)} bytes {self_pubkey.hex()}")
    if estimator is None:
        estimator = AprioriEstimator()
    elif not isinstance(estimator, Estimator):
        raise TypeError(
            "estimator must be an Estimator (AprioriEstimator, BimodalEstimator, HistoricalEstimator) or None, "
            f"got {type(estimator).__name__}"
        )
    state = MissionControlState(min_failure_relax_interval, learners=(estimator,))
    async with open_store(path, **store_options) as store:
        mc = MissionControl(store, state, estimator, self_pubkey)
        await mc._replay()
        yield mc
