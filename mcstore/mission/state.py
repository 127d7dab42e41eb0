"""Mission control's pair history: lnd's rules for applying results (``missioncontrol_state.go``).

:class:`MissionControlState` keeps, per directed node pair, the last failure and the last
success (:class:`TimedPairResult`), and updates them from payment results with lnd's rules:

* a failure for a higher amount than the stored one is dropped if it comes within
  ``min_failure_relax_interval`` of the stored failure (results arriving out of order);
* a success at or above the failure amount moves the failure amount up to success + 1, and a
  failure at or below the success amount moves the success amount down to failure - 1 (an
  amount-independent failure, amount 0, clears it);
* a node failure fails every pair already known to or from that node;
* a policy failure (fee, CLTV, minimum amount, channel disabled) gets a second chance: the
  first one for a pair, and the next one more than a minute later, are ignored, and then
  **the whole result is dropped**, successes included, as in lnd.

Times are the results' ``time_reply_ns`` (ns since the Unix epoch, used as is: lnd would read
values of 2**63 and above as times before 1970). ``None`` in a :class:`TimedPairResult` means
"never" (Go's zero time). Differences from lnd, both for values lnd mishandles: a success of
2**64 - 1 msat sets the failure amount to 2**64 - 1 (lnd's u64 wraps it to 0, "every amount
fails"); and see :mod:`.interpretation` for results lnd would crash on.

Estimators with a memory of their own (:class:`PairLearner`, such as the historical
estimator) are attached to a state as *learners*: the state tells them each pair outcome of a
payment result (its interpretation's ``pair_results``) that it applies
(:meth:`MissionControlState.apply_result`), after lnd's rules: a result dropped for a second
chance, or a failure dropped by the relax interval, is not told. A node failure's failing of
the node's other known pairs is lnd's penalty of the node, not an observation of those
pairs, and is not told either (the result's own pairs with the node are). :meth:`reset`
makes the learners forget. Every replay of a history goes through ``apply_result``, so a learner
attached to the replaying state learns the same as one that saw the results live, in the
same order. Imports (:meth:`import_pairs`) are not told: they are summaries (a last success
and a last failure), not outcomes, and are not stored, so learning from them would make a
live state differ from the one a replay rebuilds.

Not thread-safe and not async: all methods are synchronous and run to completion, so within
Trio they are atomic with respect to other tasks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Final, NamedTuple, Protocol, runtime_checkable

from ..model import PUBKEY_LEN, U64_MAX, PaymentResult
from ._gotime import MAX_DURATION, MIN_DURATION, ZERO_TIME_NS, after
from .interpretation import FinalFailureReason, _interpret, _Raw

__all__ = ["MIN_SECOND_CHANCE_INTERVAL_NS", "MissionControlState", "NodeResults", "PairLearner", "TimedPairResult"]

logger = logging.getLogger("mcstore.mission")

MIN_SECOND_CHANCE_INTERVAL_NS: Final = 60_000_000_000
"""lnd's ``minSecondChanceInterval`` (1 minute): how often a pair may claim a stale policy."""

_NS_PER_S: Final = 1_000_000_000


class TimedPairResult(NamedTuple):
    """The last failure and the last success of one directed node pair (lnd's ``TimedPairResult``).

    ``fail_amt_msat`` is the smallest amount that failed (0: every amount) at ``fail_time_ns``;
    ``success_amt_msat`` the largest amount that succeeded, last at ``success_time_ns``.
    Times are ns since the Unix epoch, may be negative, and ``None`` means "never".
    Immutable; the state replaces an entry when it changes.
    """

    fail_time_ns: int | None = None
    fail_amt_msat: int = 0
    success_time_ns: int | None = None
    success_amt_msat: int = 0


_EMPTY_PAIR: Final = TimedPairResult()
# A NamedTuple's __new__ is a Python function around tuple.__new__; every applied outcome makes
# a TimedPairResult, so the state makes them with tuple.__new__ directly (the same object).
_new_pair: Final = tuple.__new__


class _Pairs(dict[bytes, TimedPairResult]):
    """The pairs known from one node (``to_pubkey -> TimedPairResult``), with a cache that the
    estimators fill with aggregates over them (``estimators._node_aggregate``), so that a query
    for a node of many pairs need not walk them all. The state empties the cache whenever it
    changes the pairs (``_set``, ``_set_all_fail``; ``reset`` drops them), so that the cache only
    ever holds what was computed from the pairs as they are."""

    __slots__ = ("cache",)

    def __init__(self) -> None:
        super().__init__()
        self.cache: dict[object, object] = {}


class NodeResults(Mapping[bytes, TimedPairResult]):
    """The pairs known from one node, ``to_pubkey -> TimedPairResult`` (lnd's ``NodeResults``).

    What :meth:`MissionControlState.results_from` returns: a read-only *live* view of the
    state (it reflects later updates; take ``dict(...)`` of it for a snapshot) that also names
    the node, ``from_pubkey``, so that an estimator with a memory of its own can find the pair
    it is asked about. Equal to any mapping with the same items.
    """

    __slots__ = ("_pairs", "from_pubkey")

    def __init__(self, from_pubkey: bytes, pairs: dict[bytes, TimedPairResult]) -> None:
        self.from_pubkey: Final = from_pubkey
        self._pairs = pairs

    # Delegated one by one (not inherited from Mapping) so that the estimators' hot loops
    # run at dict speed.
    def __getitem__(self, to_pubkey: bytes) -> TimedPairResult:
        return self._pairs[to_pubkey]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __contains__(self, to_pubkey: object) -> bool:
        return to_pubkey in self._pairs

    def get(self, to_pubkey: bytes, default: TimedPairResult | None = None) -> TimedPairResult | None:  # type: ignore[override]
        return self._pairs.get(to_pubkey, default)

    def keys(self) -> KeysView[bytes]:
        return self._pairs.keys()

    def values(self) -> ValuesView[TimedPairResult]:
        return self._pairs.values()

    def items(self) -> ItemsView[bytes, TimedPairResult]:
        return self._pairs.items()

    def __repr__(self) -> str:
        return f"NodeResults({self.from_pubkey.hex()}, {self._pairs!r})"


def _unwrap(results: Mapping[bytes, TimedPairResult]) -> Mapping[bytes, TimedPairResult]:
    """The state's dict behind a :class:`NodeResults` view, else ``results`` itself: the
    estimators look pairs up in it at dict speed (the view's methods are Python calls)."""
    return results._pairs if type(results) is NodeResults else results


def _aggregate_cache(results: Mapping[bytes, TimedPairResult], min_pairs: int) -> dict[object, object] | None:
    """The aggregate cache of the node's pairs if ``results`` is a state's view (or the dict behind
    it, :func:`_unwrap`) of at least ``min_pairs`` pairs (see :class:`_Pairs`); None for anything
    else, which the estimators walk."""
    pairs = _unwrap(results)
    if type(pairs) is _Pairs and len(pairs) >= min_pairs:
        return pairs.cache
    return None


@runtime_checkable
class PairLearner(Protocol):
    """What a :class:`MissionControlState` tells the learners attached to it.

    ``learn`` is called with each of a result's pair outcomes (``interpret_result(result).pair_results``)
    that the state applies, as it applies it: ``success`` at ``amount_msat`` says the pair
    could forward that amount, a failure that it could not (amount 0: no amount at all), at
    ``time_ns`` (the result's ``time_reply_ns``, as the state uses it). ``forget`` is called when the state is created
    and when it is reset. Neither may raise: the state has already changed when they run.
    """

    def learn(self, from_pubkey: bytes, to_pubkey: bytes, time_ns: int, success: bool, amount_msat: int) -> None:
        """Take one applied pair outcome into account.

        Args:
            from_pubkey: The pair's source node.
            to_pubkey: The pair's other node.
            time_ns: The result's ``time_reply_ns``.
            success: Whether the pair forwarded ``amount_msat``.
            amount_msat: The amount (for a failure, 0: no amount at all).
        """
        ...

    def forget(self) -> None:
        """Forget everything learnt."""
        ...


def _seconds_to_ns(name: str, seconds: object) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(seconds).__name__} {seconds!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {seconds!r}")
    return round(seconds * _NS_PER_S)


class MissionControlState:
    """The pair history of one node's mission control, with lnd's update rules.

    A learner belongs to one state: attached to two, it would learn both histories.

    Args:
        min_failure_relax_interval: lnd's ``MinimumFailureRelaxInterval``, in seconds (default
            one minute).
        learners: The estimators to keep informed; those that are a :class:`PairLearner` are
            attached (and made to forget what they knew: the new state knows nothing either),
            the others are ignored, so a caller may pass every estimator it uses.

    Raises:
        TypeError: ``min_failure_relax_interval`` is not a number.
        ValueError: ``min_failure_relax_interval`` is not finite.
    """

    __slots__ = ("_learners", "_pairs", "_relax_ns", "_second_chances", "_sources")

    def __init__(self, min_failure_relax_interval: float = 60.0, *, learners: Iterable[object] = ()) -> None:
        self._relax_ns = _seconds_to_ns("min_failure_relax_interval", min_failure_relax_interval)
        self._learners: tuple[PairLearner, ...] = tuple(x for x in learners if isinstance(x, PairLearner))
        for learner in self._learners:
            learner.forget()
        # from -> to -> result, and to -> the set of froms with an entry (for node failures).
        self._pairs: dict[bytes, _Pairs] = {}
        self._sources: dict[bytes, set[bytes]] = {}
        self._second_chances: dict[tuple[bytes, bytes], int] = {}

    @property
    def min_failure_relax_interval(self) -> float:
        """The relax interval, in seconds."""
        return self._relax_ns / _NS_PER_S

    @property
    def learners(self) -> tuple[PairLearner, ...]:
        """The attached learners, in the order they are told."""
        return self._learners

    # -- queries ------------------------------------------------------------------------

    def results_from(self, from_pubkey: bytes) -> NodeResults:
        """The pairs known from ``from_pubkey``, keyed by the other node's pubkey.

        A read-only *live* :class:`NodeResults` view (O(1), no copy) that names
        ``from_pubkey``: it reflects later updates; take ``dict(...)`` of it to keep a
        snapshot. Empty for an unknown node (then not live). This is the ``results`` argument
        of the estimators' ``pair_probability`` and ``local_pair_probability``.

        Args:
            from_pubkey: The node whose pairs to read.
        """
        pairs = self._pairs.get(from_pubkey)
        return NodeResults(from_pubkey, {} if pairs is None else pairs)

    def pairs(self) -> dict[tuple[bytes, bytes], TimedPairResult]:
        """A snapshot of every known pair, ``(from, to) -> TimedPairResult``, sorted by pair.

        What lnd's ``QueryMissionControl`` returns, in the shape :meth:`import_pairs` takes (lnd's
        import refuses some entries it returns, such as a success of amount 0 or a failure of
        amount 0 alone; sanitize them first, as ``lncli loadmc`` does).
        """
        return {
            (frm, to): result
            for frm in sorted(self._pairs)
            for to, result in sorted(self._pairs[frm].items())
        }

    def __len__(self) -> int:
        """The number of known pairs."""
        return sum(len(p) for p in self._pairs.values())

    def __repr__(self) -> str:
        return f"<MissionControlState pairs={len(self)} min_failure_relax_interval={self.min_failure_relax_interval}>"

    # -- updates ------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every pair and every second chance granted (lnd's ``resetHistory``), and make
        the learners forget."""
        self._pairs.clear()
        self._sources.clear()
        self._second_chances.clear()
        for learner in self._learners:
            learner.forget()

    def apply_result(self, result: PaymentResult) -> FinalFailureReason | None:
        """Apply one payment result at its ``time_reply_ns`` (lnd's ``applyPaymentResult``).

        Tells the learners each pair outcome applied. Never raises for a valid result.

        Args:
            result: The :class:`~mcstore.PaymentResult` to apply.

        Returns:
            The final failure reason of its interpretation (None when a second chance dropped
            it).

        Raises:
            TypeError: ``result`` is not a :class:`~mcstore.PaymentResult`.
        """
        if not isinstance(result, PaymentResult):
            raise TypeError(f"apply_result() expects a PaymentResult, got {type(result).__name__}: {result!r}")
        return self._apply(result, _interpret(result))

    def _apply(self, result: PaymentResult, interpreted: _Raw) -> FinalFailureReason | None:
        """:meth:`apply_result` of a result already interpreted (evaluation interprets each once)."""
        pairs, node_failure, final, policy = interpreted
        ts = result.time_reply_ns
        if policy is not None and self._request_second_chance(ts, policy):
            return None
        if node_failure is not None:
            self._set_all_fail(node_failure, ts)
        relax = self._relax_ns
        learners = self._learners
        for (frm, to), (success, amt) in pairs.items():
            if self._set(frm, to, ts, success, amt, False, relax) and learners:
                for learner in learners:
                    learner.learn(frm, to, ts, success, amt)
        return final

    def import_pairs(
        self,
        pairs: Mapping[tuple[bytes, bytes], TimedPairResult] | Iterable[tuple[tuple[bytes, bytes], TimedPairResult]],
        *,
        force: bool = False,
    ) -> int:
        """Merge pair history from elsewhere, with lnd's ``XImportMissionControl`` semantics.

        ``pairs`` is a mapping like :meth:`pairs` returns, or an iterable of
        ``((from, to), TimedPairResult)`` in the order to import. Every entry is validated
        first, as lnd's RPC server does, and nothing is imported if one is invalid
        (``ValueError``/``TypeError`` naming the entry): the list must not be empty; ``from``
        and ``to`` are distinct 33-byte pubkeys; times are int64 ns since the Unix epoch; a
        failure counts only with both a time and a non-zero amount (otherwise it is treated as
        absent, so an amount-independent failure cannot be imported); a success needs both a
        time and a non-zero amount, or neither; an entry needs a failure or a success.

        Then, in order, each entry's failure part and then its success part are applied
        unless the stored one is newer (or always with ``force``), with the usual rules, the
        relax interval included; ``force`` also bypasses the relax interval and overwrites the
        success amount, setting the failure amount to success + 1. Absent parts are applied
        too, as "never" with amount 0, which is lnd's behaviour and can clear amounts (see
        docs/mission-control.md). Memory only: imports are not stored. The learners are not told (see the
        module's docstring).

        Args:
            pairs: A mapping like :meth:`pairs` returns, or an iterable of
                ``((from, to), TimedPairResult)`` in the order to import.
            force: Apply every part, whatever is stored, bypassing the relax interval.

        Returns:
            The number of parts applied.

        Raises:
            TypeError: An entry of the wrong type, naming it; nothing is imported.
            ValueError: An invalid entry (or an empty list), naming it; nothing is imported.
        """
        if not isinstance(force, bool):
            raise TypeError(f"force must be a bool, got {type(force).__name__} {force!r}")
        items = list(pairs.items() if isinstance(pairs, Mapping) else pairs)
        if not items:
            raise ValueError("import_pairs(): no pairs to import")
        checked = [_check_import(i, item) for i, item in enumerate(items)]
        relax = self._relax_ns
        imported = 0
        for frm, to, fail_time, fail_amt, success_time, success_amt in checked:
            known = self._pairs.get(frm)
            last = _EMPTY_PAIR if known is None else known.get(to, _EMPTY_PAIR)
            if force or not after(last.fail_time_ns, fail_time):
                self._set(frm, to, fail_time, False, fail_amt, force, relax)
                imported += 1
            if force or not after(last.success_time_ns, success_time):
                self._set(frm, to, success_time, True, success_amt, force, relax)
                imported += 1
        logger.info("Imported %d results for %d pairs into mission control (force=%s)", imported, len(items), force)
        return imported

    # -- lnd's primitives ---------------------------------------------------------------

    def _request_second_chance(self, ts: int, pair: tuple[bytes, bytes]) -> bool:
        """Grant (and record) a second chance for ``pair``, or deny it."""
        last = self._second_chances.get(pair)
        if last is None or min(ts - last, MAX_DURATION) > MIN_SECOND_CHANCE_INTERVAL_NS:
            self._second_chances[pair] = ts
            logger.debug("Second chance granted for %s->%s", pair[0].hex(), pair[1].hex())
            return True
        logger.debug("Second chance denied for %s->%s", pair[0].hex(), pair[1].hex())
        return False

    def _set_all_fail(self, node: bytes, ts: int) -> None:
        """Fail every *known* pair from or to ``node`` at ``ts`` (lnd's ``setAllFail``)."""
        failed = TimedPairResult(ts)
        pairs = self._pairs
        outgoing = pairs.get(node)
        if outgoing is not None:
            outgoing.update(dict.fromkeys(outgoing, failed))  # every value, in C
            outgoing.cache.clear()
        for frm in self._sources.get(node, ()):
            incoming = pairs[frm]
            incoming[node] = failed
            cache = incoming.cache
            if cache:
                cache.clear()

    def _set(
        self, frm: bytes, to: bytes, ts: int | None, success: bool, amt: int, force: bool, relax: int
    ) -> bool:
        """Apply one pair outcome at ``ts`` (lnd's ``setLastPairResult``); False if the relax
        interval dropped it."""
        outgoing = self._pairs.get(frm)
        if outgoing is None:
            outgoing = self._pairs[frm] = _Pairs()
        cur = outgoing.get(to)
        if cur is None:
            fail_time, fail_amt, success_time, success_amt = None, 0, None, 0
        else:
            fail_time, fail_amt, success_time, success_amt = cur
        if success:
            success_time = ts
            if force or amt > success_amt:
                success_amt = amt
            if force or (fail_time is not None and amt >= fail_amt):
                # Saturated: lnd's u64 wraps a success of 2**64-1 to a failure of every amount.
                fail_amt = amt + 1 if amt < U64_MAX else U64_MAX
        else:
            if not force and amt > fail_amt:
                # Go's ts.Sub(fail_time), saturated; "never" is long ago.
                since = (ZERO_TIME_NS if ts is None else ts) - (ZERO_TIME_NS if fail_time is None else fail_time)
                since = MAX_DURATION if since > MAX_DURATION else MIN_DURATION if since < MIN_DURATION else since
                if since < relax:
                    logger.debug(
                        "Ignoring higher amount failure within min failure relaxation interval: "
                        "pair=%s->%s prev_fail_amt=%d fail_amt=%d interval_ns=%d",
                        frm.hex(), to.hex(), fail_amt, amt, since,
                    )
                    return False
            fail_time = ts
            fail_amt = amt
            if amt == 0:
                success_amt = 0
            elif amt <= success_amt:
                success_amt = amt - 1
        outgoing[to] = _new_pair(TimedPairResult, (fail_time, fail_amt, success_time, success_amt))
        cache = outgoing.cache
        if cache:
            cache.clear()
        if cur is None:
            sources = self._sources.get(to)
            if sources is None:
                self._sources[to] = {frm}
            else:
                sources.add(frm)
        return True


def _check_pubkey(where: str, name: str, value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{where}: {name} must be bytes, got {type(value).__name__} {value!r}")
    value = bytes(value)
    if len(value) != PUBKEY_LEN:
        raise ValueError(f"{where}: {name} must be {PUBKEY_LEN} bytes, got {len(value)} bytes {value.hex()}")
    return value


def _check_time(where: str, name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: {name} must be an int (ns) or None, got {type(value).__name__} {value!r}")
    if not MIN_DURATION <= value <= MAX_DURATION:
        raise ValueError(f"{where}: {name} must be an int64 of ns since the Unix epoch, got {value!r}")
    return int(value)


def _check_amount(where: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: {name} must be an int, got {type(value).__name__} {value!r}")
    if not 0 <= value <= U64_MAX:
        raise ValueError(f"{where}: {name} must be a u64 (0 <= x < 2**64), got {value!r}")
    return int(value)


def _check_import(index: int, item: object) -> tuple[bytes, bytes, int | None, int, int | None, int]:
    """Validate one import entry as lnd's RPC server does; return the parts to apply."""
    where = f"import_pairs() entry {index}"
    raw_pair: object = None
    result: object = None
    if isinstance(item, tuple) and len(item) == 2:
        raw_pair, result = item
    if not (isinstance(raw_pair, tuple) and len(raw_pair) == 2):
        raise TypeError(f"{where}: expected ((from_pubkey, to_pubkey), TimedPairResult), got {item!r}")
    if not isinstance(result, TimedPairResult):
        raise TypeError(f"{where}: expected a TimedPairResult, got {type(result).__name__} {result!r}")
    frm = _check_pubkey(where, "from_pubkey", raw_pair[0])
    to = _check_pubkey(where, "to_pubkey", raw_pair[1])
    if frm == to:
        raise ValueError(f"{where}: from_pubkey and to_pubkey are the same node {frm.hex()}")
    fail_time = _check_time(where, "fail_time_ns", result.fail_time_ns)
    fail_amt = _check_amount(where, "fail_amt_msat", result.fail_amt_msat)
    success_time = _check_time(where, "success_time_ns", result.success_time_ns)
    success_amt = _check_amount(where, "success_amt_msat", result.success_amt_msat)
    has_failure = fail_time is not None and fail_amt != 0
    if not has_failure:
        fail_time, fail_amt = None, 0
    if (success_time is None) != (success_amt == 0):
        raise ValueError(
            f"{where}: a success needs both success_time_ns and a non-zero success_amt_msat, or neither; "
            f"got success_time_ns={success_time!r} success_amt_msat={success_amt!r}"
        )
    if not has_failure and success_time is None:
        raise ValueError(f"{where}: no failure (time and non-zero amount) and no success to import: {result!r}")
    return frm, to, fail_time, fail_amt, success_time, success_amt
