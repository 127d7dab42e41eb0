"""lnd's success-probability estimators: apriori (the default) and bimodal.

Both answer "how likely does the channel ``from -> to`` forward ``amount_msat`` now?" from
the pair history of ``from`` (the mapping :meth:`MissionControlState.results_from` returns),
with lnd's formulas and defaults (``routing/probability_apriori.go`` and
``probability_bimodal.go``, lnd 0.19 to 0.21; lnd 0.18 and older used another bimodal
normalisation). They agree with lnd's own test vectors to within a relative error of 1e-12
(Go's ``math.Exp``/``math.Pow`` and CPython's libm may differ in the last bits).

* :class:`AprioriEstimator` mixes an a-priori hop probability (lowered near the channel's
  capacity) with the node's other results, and penalises a pair's failure with a weight that
  halves every ``penalty_half_life``. Successes never decay.
* :class:`BimodalEstimator` assumes a channel's liquidity sits mostly at either end
  (density ~ ``exp(-x/s) + exp((x-c)/s)``), narrows the range with the pair's last success and
  failure (both decaying back over ``decay_time``), and mixes in the node's other results when
  the pair has no fresh information.

Differences from lnd (each a clear lnd bug; tested):

* Apriori: a failure time in the future gives lnd a weight above 1 and a negative
  probability; here every apriori probability is clamped to [0, 1]. lnd's NaN results (a zero
  ``penalty_half_life`` with a failure at exactly ``now``, or ``weight=0`` when no result says
  anything about the amount, 0/0) become 0.
* Bimodal: a time in the future counts as ``now`` (lnd's decay factor then exceeds 1, which
  overflows its msat conversions, and the node weighting can reach inf/inf = NaN). Amount
  conversions saturate at 2**64 - 1 instead of wrapping.

Everything else follows lnd, quirks included: bimodal returns 0 for a zero capacity, and for a
numerical overshoot of the probability above 1 or below 0; bimodal node weighting ignores
amount-independent failures (amount 0), apriori counts them; an amount known to succeed gets
0.95 from apriori, so with ``hop_probability`` above 0.95 a larger untried amount can score
higher (a higher amount never scores higher otherwise: a tested property).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol, TypeVar, runtime_checkable

from ..model import U64_MAX
from ._gotime import MAX_DURATION, MIN_DURATION, hours, sub
from .state import NodeResults, PairLearner, TimedPairResult, _aggregate_cache, _Pairs

__all__ = [
    "BIMODAL_SCALE_MSAT_MAX",
    "PREV_SUCCESS_PROBABILITY",
    "AprioriEstimator",
    "BimodalEstimator",
    "Estimator",
    "LearningEstimator",
    "Parameter",
    "TunableEstimator",
]

PREV_SUCCESS_PROBABILITY: Final = 0.95
"""lnd's ``prevSuccessProbability``: the apriori probability for an amount known to succeed."""
CAPACITY_SMEARING_FRACTION: Final = 0.025
MIN_CAPACITY_FACTOR: Final = 0.5
MIN_CAPACITY_FRACTION: Final = 0.75
BIMODAL_SCALE_MSAT_MAX: Final = 1000 * 1_000_000_000 // 4
"""lnd's ``BimodalScaleMsatMax``: a quarter of the 10 BTC capacity lnd gives hop hints, in msat."""

_NS_PER_S: Final = 1_000_000_000
_LOCAL_AMOUNT: Final = U64_MAX  # lnd's MaxMilliSatoshi: local channels ignore amounts
_exp = math.exp
_pow = math.pow
_inf = math.inf
_nan = math.nan


@runtime_checkable
class Estimator(Protocol):
    """What :class:`~mcstore.mission.MissionControl` needs from an estimator."""

    name: ClassVar[str]

    def pair_probability(
        self,
        now_ns: int,
        results: Mapping[bytes, TimedPairResult],
        to_pubkey: bytes,
        amount_msat: int,
        capacity_sat: int,
    ) -> float:
        """The probability that ``from -> to_pubkey`` forwards ``amount_msat``, in [0, 1].

        Pure: it reads its arguments (and, for a learning estimator, what it learnt), and
        never raises for arguments in range.

        Args:
            now_ns: The time of the question, in ns since the Unix epoch.
            results: The pair history of the channel's source node ``from``: the
                :class:`~mcstore.mission.NodeResults` of
                :meth:`~mcstore.mission.MissionControlState.results_from`.
            to_pubkey: The channel's other node.
            amount_msat: The amount to forward.
            capacity_sat: The channel's capacity (0: unknown).
        """
        ...

    def local_pair_probability(self, now_ns: int, results: Mapping[bytes, TimedPairResult], to_pubkey: bytes) -> float:
        """The same for one of this node's own channels (amount and capacity ignored).

        Args:
            now_ns: The time of the question, in ns since the Unix epoch.
            results: This node's pair history (:meth:`~mcstore.mission.MissionControlState.results_from`).
            to_pubkey: The channel's other node.
        """
        ...


@dataclass(frozen=True, slots=True)
class Parameter:
    """One tunable of an estimator, as its constructor takes it.

    ``name`` is the constructor's keyword; ``default`` the reference default (lnd's; LDK's
    for the historical estimator, which lnd lacks); ``low`` and ``high`` the
    range a parameter search explores (within what the constructor accepts); ``log_scale``
    says the search steps in ratios rather than differences (times, amounts); ``integer``
    says the constructor takes an ``int``. Units are the constructor's (seconds, msat).
    """

    name: str
    default: float
    low: float
    high: float
    log_scale: bool = False
    integer: bool = False

    def coerce(self, value: float) -> float | int:
        """``value`` clipped to [``low``, ``high``], rounded for an integer parameter.

        Args:
            value: A candidate value of the parameter.
        """
        v = min(max(float(value), self.low), self.high)
        return round(v) if self.integer else v


@runtime_checkable
class TunableEstimator(Estimator, Protocol):
    """An :class:`Estimator` whose parameters can be read and searched (for evaluation and fitting)."""

    parameters: ClassVar[tuple[Parameter, ...]]

    def params(self) -> dict[str, float | int]:
        """The estimator's parameters by constructor keyword: ``type(e)(**e.params())`` equals ``e``."""
        ...


@runtime_checkable
class LearningEstimator(Estimator, PairLearner, Protocol):
    """An :class:`Estimator` with a memory of its own, fed by the state it is attached to.

    It learns each pair outcome that :class:`~mcstore.mission.MissionControlState` applies
    (``learn``) and forgets on a reset (``forget``): see :class:`~mcstore.mission.state.PairLearner`.
    Its ``pair_probability`` finds the pair in its memory through ``results.from_pubkey``
    (the :class:`~mcstore.mission.state.NodeResults` that ``results_from`` returns).
    Attach it to the state that replays the history (``MissionControlState(learners=...)``;
    ``open_mission_control`` does so): unattached, it has learnt nothing.
    """


def _number(owner: str, name: str, value: object) -> float:
    """``value`` as a finite float, or TypeError/ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    return float(value)


def _unit(owner: str, name: str, value: object) -> float:
    v = _number(owner, name, value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1], got {value!r}")
    return v


def _positive_seconds(owner: str, name: str, value: object) -> tuple[float, int]:
    """``value`` as a number of seconds and as whole ns; TypeError/ValueError naming the field
    unless it is finite and more than 0 once rounded to ns."""
    seconds = _number(owner, name, value)
    ns = round(seconds * _NS_PER_S)
    if ns <= 0:
        raise ValueError(f"{owner}: {name} must be > 0 seconds, got {value!r}")
    return seconds, ns


class _Tunable:
    """:meth:`params` and ``repr`` of a :class:`TunableEstimator`, read from its ``parameters``
    (the one list of its constructor's keywords) and its attributes of the same names."""

    __slots__ = ()

    parameters: ClassVar[tuple[Parameter, ...]]

    def params(self) -> dict[str, float | int]:
        """The constructor's keywords and their values."""
        return {p.name: getattr(self, p.name) for p in self.parameters}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params().items())
        return f"{type(self).__name__}({args})"


def _primitive(s: float, c: float, cs: float, norm: float, x: float) -> float:
    """lnd's ``primitive`` with the terms that depend on the capacity alone passed in."""
    return (-_exp(-x / s) + _exp((x - c) / s) + x / cs) / norm


class AprioriEstimator(_Tunable):
    """lnd's apriori estimator (the default).

    Its parameters are validated as lnd does, and non-finite values are refused too.

    Args:
        hop_probability: The probability of an untried channel, in [0, 1].
        weight: How much that a-priori value counts against the node's history, in [0, 1]
            (1: history ignored).
        penalty_half_life: How fast a failure is forgiven, in seconds, >= 0.
        capacity_fraction: The fraction of the capacity above which the a-priori probability
            falls off, in [0.75, 1] (1: no fall-off).

    Raises:
        TypeError: A parameter that is not a number, naming it.
        ValueError: A parameter out of its range, naming it.
    """

    name: ClassVar[str] = "apriori"
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("hop_probability", 0.6, 0.01, 0.99),
        Parameter("weight", 0.5, 0.0, 0.99),
        Parameter("penalty_half_life", 3600.0, 60.0, 30 * 86400.0, log_scale=True),
        Parameter("capacity_fraction", 0.9999, 0.75, 1.0),
    )

    __slots__ = ("_half_life_hours", "_k", "capacity_fraction", "hop_probability", "penalty_half_life", "weight")

    def __init__(
        self,
        hop_probability: float = 0.6,
        weight: float = 0.5,
        penalty_half_life: float = 3600.0,
        capacity_fraction: float = 0.9999,
    ) -> None:
        owner = "AprioriEstimator"
        half_life = _number(owner, "penalty_half_life", penalty_half_life)
        if half_life < 0:
            raise ValueError(f"{owner}: penalty_half_life must be >= 0 seconds, got {penalty_half_life!r}")
        self.hop_probability: Final = _unit(owner, "hop_probability", hop_probability)
        self.weight: Final = _unit(owner, "weight", weight)
        fraction = _number(owner, "capacity_fraction", capacity_fraction)
        if not MIN_CAPACITY_FRACTION <= fraction <= 1.0:
            raise ValueError(f"{owner}: capacity_fraction must be in [0.75, 1], got {capacity_fraction!r}")
        self.capacity_fraction: Final = fraction
        self.penalty_half_life: Final = half_life
        self._half_life_hours = hours(round(half_life * _NS_PER_S))
        # lnd's aprioriFactor: the a-priori value counts as k results (unused when weight is 1).
        self._k = 1 / (1 - self.weight) - 1 if self.weight != 1.0 else _inf

    def _penalty_weight(self, age_ns: int) -> float:
        """lnd's ``getWeight``: ``2 ** (-age.Hours() / half_life.Hours())``, inf/NaN as Go gives them.

        ``age_ns`` is saturated to Go's Duration range first, as ``Time.Sub`` does. Hours are
        ``age_ns / 3.6e12`` (Go sums whole hours and the fraction: the same value to an ULP).
        """
        if not MIN_DURATION <= age_ns <= MAX_DURATION:
            age_ns = MAX_DURATION if age_ns > 0 else MIN_DURATION
        hl = self._half_life_hours
        if hl == 0.0:
            return 0.0 if age_ns > 0 else _nan if age_ns == 0 else _inf
        try:
            return _pow(2.0, -(age_ns / 3.6e12) / hl)
        except OverflowError:
            return _inf

    def capacity_factor(self, amount_msat: int, capacity_sat: int) -> float:
        """lnd's ``capacityFactor``: 1 well below the capacity, 0.5 at ``capacity_fraction`` of
        it, 0 above it; 1 when the capacity is unknown (0) or ``capacity_fraction`` is 1."""
        f = self.capacity_fraction
        if f == 1.0 or capacity_sat == 0:
            return 1.0
        c = float(capacity_sat * 1000)
        a = float(amount_msat)
        if a > c:
            return 0.0
        return 1 - (1 - MIN_CAPACITY_FACTOR) / (1 + _exp(-(a - f * c) / (CAPACITY_SMEARING_FRACTION * c)))

    def pair_probability(
        self,
        now_ns: int,
        results: Mapping[bytes, TimedPairResult],
        to_pubkey: bytes,
        amount_msat: int,
        capacity_sat: int,
    ) -> float:
        """The probability that the channel to ``to_pubkey`` forwards ``amount_msat`` at ``now_ns``.

        ``results`` is the pair history of the channel's source node (``results_from``);
        ``capacity_sat`` the channel's capacity (0: unknown). Always in [0, 1]. Pure. O(log n) for
        the n pairs of a state's node between two changes of them (see :class:`_AprioriNode`);
        O(n) otherwise.
        """
        if type(results) is NodeResults:
            results = results._pairs  # the state's dict: lookups at dict speed (state._unwrap, inline)
        r = results.get(to_pubkey)
        if r is not None and amount_msat <= r[3]:
            return PREV_SUCCESS_PROBABILITY
        # lnd's getNodeProbability: the a-priori value mixed with the node's other results.
        p = self.hop_probability * self.capacity_factor(amount_msat, capacity_sat)
        if results and self.weight != 1.0:
            if type(results) is _Pairs and len(results) >= AGGREGATE_MIN_PAIRS and self._half_life_hours != 0.0:
                p = self._node_probability(now_ns, results, amount_msat, p)
            else:
                p = self._node_probability_reference(now_ns, results, amount_msat, p)
        return self._pair(now_ns, r, amount_msat, p)

    def _node_probability(self, now_ns: int, results: _Pairs, amount_msat: int, apriori: float) -> float:
        """lnd's ``getNodeProbability`` for a state's node of many pairs (the caller checks):
        from the node's aggregates (:class:`_AprioriNode`) where they apply, else by walking
        every pair."""
        node = _summary(results.cache, _AprioriNode, results, self._half_life_hours)
        p = None if node is None else node.probability(self, now_ns, amount_msat, apriori)
        return self._node_probability_reference(now_ns, results, amount_msat, apriori) if p is None else p

    def _node_probability_reference(
        self, now_ns: int, results: Mapping[bytes, TimedPairResult], amount_msat: int, apriori: float
    ) -> float:
        """lnd's ``getNodeProbability`` as lnd computes it, one pair at a time: O(len(results)).

        The reference the aggregates are tested against, and what runs where they do not apply.
        """
        k = self._k
        num = apriori * k
        den = k
        weight = self._penalty_weight
        for fail_time, fail_amt, _, success_amt in results.values():
            if amount_msat <= success_amt:
                den += 1
                num += PREV_SUCCESS_PROBABILITY
            elif fail_time is not None and amount_msat >= fail_amt:
                den += weight(now_ns - fail_time)
        return num / den if den != 0 else _nan  # lnd: 0/0 when weight is 0 and nothing applies

    def _pair(self, now_ns: int, r: TimedPairResult | None, amount_msat: int, node_probability: float) -> float:
        """lnd's ``calculateProbability`` after the success check, clamped to [0, 1]."""
        if r is not None:
            fail_time = r[0]
            if fail_time is not None and amount_msat >= r[1]:
                node_probability *= 1 - self._penalty_weight(now_ns - fail_time)
        if node_probability >= 0.0:
            return node_probability if node_probability <= 1.0 else 1.0
        return 0.0  # negative (a future failure) or NaN

    def local_pair_probability(self, now_ns: int, results: Mapping[bytes, TimedPairResult], to_pubkey: bytes) -> float:
        """The probability for one of our own channels: 0.95, lowered by the pair's last failure.

        Amounts and capacity are ignored (our own channels' balances are known to pathfinding).
        """
        r = results.get(to_pubkey)
        if r is not None and _LOCAL_AMOUNT <= r[3]:
            return PREV_SUCCESS_PROBABILITY
        return self._pair(now_ns, r, _LOCAL_AMOUNT, PREV_SUCCESS_PROBABILITY)


class BimodalEstimator(_Tunable):
    """lnd's bimodal estimator.

    Its parameters are validated as lnd does.

    Args:
        scale_msat: The width of the liquidity's concentration at the channel's ends, an int in
            (0, 250_000_000_000].
        node_weight: How much the node's other results count when the pair has no fresh
            information, in [0, 1].
        decay_time: How fast learnt liquidity is forgotten, in seconds, > 0.

    Raises:
        TypeError: A parameter of the wrong type, naming it.
        ValueError: A parameter out of its range, naming it.
    """

    name: ClassVar[str] = "bimodal"
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("scale_msat", 300_000_000, 1_000_000, BIMODAL_SCALE_MSAT_MAX, log_scale=True, integer=True),
        Parameter("node_weight", 0.2, 0.0, 1.0),
        Parameter("decay_time", 604800.0, 3600.0, 90 * 86400.0, log_scale=True),
    )

    __slots__ = ("_decay_int", "_decay_ns", "_scale", "decay_time", "node_weight", "scale_msat")

    def __init__(
        self,
        scale_msat: int = 300_000_000,
        node_weight: float = 0.2,
        decay_time: float = 604800.0,
    ) -> None:
        owner = "BimodalEstimator"
        decay, decay_ns = _positive_seconds(owner, "decay_time", decay_time)
        self.node_weight: Final = _unit(owner, "node_weight", node_weight)
        if isinstance(scale_msat, bool) or not isinstance(scale_msat, int):
            raise TypeError(f"{owner}: scale_msat must be an int, got {type(scale_msat).__name__} {scale_msat!r}")
        if not 0 < scale_msat <= BIMODAL_SCALE_MSAT_MAX:
            raise ValueError(f"{owner}: scale_msat must be in (0, {BIMODAL_SCALE_MSAT_MAX}], got {scale_msat!r}")
        self.scale_msat: Final = int(scale_msat)
        self.decay_time: Final = decay
        self._decay_int = decay_ns
        self._decay_ns = float(decay_ns)
        self._scale = float(scale_msat)

    def _decay(self, age_ns: int) -> float:
        """``exp(-age / decay_time)``; a future time counts as now (lnd: a factor above 1)."""
        if age_ns <= 0:
            return 1.0
        return _exp(-float(age_ns if age_ns < MAX_DURATION else MAX_DURATION) / self._decay_ns)

    def primitive(self, capacity: float, x: float) -> float:
        """The antiderivative of the (normalised) liquidity density at ``x`` (lnd's ``primitive``)."""
        s = self._scale
        cs = capacity * s
        if cs == 0.0:  # only for capacity 0, which the formula never passes: Go gives NaN or +-inf
            return _nan if x == 0 or x != x else math.copysign(_inf, x)
        return _primitive(s, capacity, cs, -2 * _exp(-capacity / s) + 2 + 1 / s, x)

    def integral(self, capacity: float, lower: float, upper: float) -> float:
        """The density's integral over [lower, upper]; 0 for nonsensical limits (lnd's ``integral``)."""
        if lower < 0 or lower > upper:
            return 0.0
        return self.primitive(capacity, upper) - self.primitive(capacity, lower)

    def probability_formula(self, capacity_msat: int, success_msat: int, fail_msat: int, amount_msat: int) -> float:
        """lnd's ``probabilityFormula``: P(liquidity >= amount | success_msat <= liquidity < fail_msat).

        Returns 0.0 where lnd returns an error (zero capacity, NaN, a zero normalisation, or a
        numerical result outside [0, 1]), as lnd's caller does.
        """
        c = float(capacity_msat)
        sa = float(success_msat)
        fa = float(fail_msat)
        a = float(amount_msat)
        if c == 0.0 or a > c:
            return 0.0
        if fa <= sa:  # contradictory information is discarded
            sa = 0.0
            fa = c
        if sa >= c:
            sa = c - 1
            fa = c
        if fa > c:
            fa = c
        if a >= fa:
            return 0.0
        if a <= sa:
            return 1.0
        # Here 0 <= sa < a < fa <= c, so both of lnd's integrals are in range; the primitive at
        # fa and the normalisation are computed once (the same operations, so the same bits).
        s = self._scale
        cs = c * s
        norm = -2 * _exp(-c / s) + 2 + 1 / s
        top = _primitive(s, c, cs, norm, fa)
        prob = top - _primitive(s, c, cs, norm, a)
        if prob != prob:
            return 0.0
        renorm = top - _primitive(s, c, cs, norm, sa)
        if renorm != renorm or renorm == 0.0:
            return 0.0
        prob /= renorm
        if prob > 1.0 or prob < 0.0:
            return 0.0  # lnd: an error (amount > success amount here), not a clamp
        return prob

    def can_send(self, success_msat: int, age_ns: int) -> int:
        """lnd's ``canSend``: what a success ``age_ns`` ago still proves, decaying to 0."""
        x = int(self._decay(age_ns) * float(success_msat))
        return x if x < U64_MAX else U64_MAX

    def cannot_send(self, fail_msat: int, capacity_msat: int, age_ns: int) -> int:
        """lnd's ``cannotSend``: what a failure ``age_ns`` ago still excludes, relaxing to the capacity."""
        if fail_msat > capacity_msat:
            fail_msat = capacity_msat
        x = int(self._decay(age_ns) * float(capacity_msat - fail_msat))
        fail = capacity_msat - (x if x < U64_MAX else U64_MAX)
        return fail + 2**64 if fail < 0 else fail  # u64 arithmetic, as in lnd

    def direct_probability(
        self, now_ns: int, results: Mapping[bytes, TimedPairResult], to_pubkey: bytes, amount_msat: int,
        capacity_sat: int,
    ) -> float:
        """The pair's own probability, from its last success and failure (lnd's ``directProbability``)."""
        capacity = capacity_sat * 1000
        r = results.get(to_pubkey)
        if r is None:
            return self.probability_formula(capacity, 0, capacity, amount_msat)
        fail_time, fail_amt, success_time, success_amt = r
        fail = capacity if fail_time is None else self.cannot_send(fail_amt, capacity, now_ns - fail_time)
        success = 0 if success_time is None else self.can_send(success_amt, now_ns - success_time)
        return self.probability_formula(capacity, success, fail, amount_msat)

    def calculate_probability(
        self, direct: float, now_ns: int, results: Mapping[bytes, TimedPairResult], to_pubkey: bytes
    ) -> float:
        """Mix the node's other results into ``direct`` unless the pair's own information is
        fresher than ``decay_time`` (lnd's ``calculateProbability``)."""
        w = self.node_weight
        if w == 0.0:
            return direct
        r = results.get(to_pubkey)
        if r is not None:
            latest = r[2]
            if r[0] is not None and (latest is None or r[0] > latest):
                latest = r[0]
            if latest is not None and now_ns - latest < self._decay_int:
                return direct  # fresh information about the pair itself wins
        cache = _aggregate_cache(results, AGGREGATE_MIN_PAIRS)
        if cache is not None:
            node = _summary(cache, _BimodalNode, results, self._decay_ns)
            p = None if node is None else node.probability(w, direct, now_ns, to_pubkey)
            if p is not None:
                return p
        return self._node_weighting_reference(direct, now_ns, results, to_pubkey)

    def _node_weighting_reference(
        self, direct: float, now_ns: int, results: Mapping[bytes, TimedPairResult], to_pubkey: bytes
    ) -> float:
        """The node weighting of lnd's ``calculateProbability`` as lnd computes it, one pair at a
        time: O(len(results)). The reference the aggregates are tested against, and what runs
        where they do not apply."""
        w = self.node_weight
        num = direct
        den = 1.0
        tau = self._decay_ns
        for peer, (fail_time, fail_amt, success_time, success_amt) in results.items():
            if peer == to_pubkey:
                continue
            # w * exp(-age / decay_time), inline (this loop is the estimator's hot spot). A time
            # of "never" (None) decays to exactly 0, as Go's now.Sub(zero time) does; a future
            # one counts as now. Ages past Go's range need no saturation: exp gives 0 either way.
            if success_amt > 0 and success_time is not None:
                age = now_ns - success_time
                e = w * _exp(-age / tau) if age > 0 else w
                num += e
                den += e
            if fail_amt > 0 and fail_time is not None:
                age = now_ns - fail_time
                den += w * _exp(-age / tau) if age > 0 else w
        return num / den

    def pair_probability(
        self,
        now_ns: int,
        results: Mapping[bytes, TimedPairResult],
        to_pubkey: bytes,
        amount_msat: int,
        capacity_sat: int,
    ) -> float:
        """The probability that the channel to ``to_pubkey`` forwards ``amount_msat`` at ``now_ns``.

        ``results`` is the pair history of the channel's source node (``results_from``);
        ``capacity_sat`` the channel's capacity. Always in [0, 1]. Pure. O(1) for the n pairs of a
        state's node between two changes of them (see :class:`_BimodalNode`); O(n) otherwise.
        """
        if type(results) is NodeResults:
            results = results._pairs  # the state's dict: lookups at dict speed (state._unwrap, inline)
        return self.calculate_probability(
            self.direct_probability(now_ns, results, to_pubkey, amount_msat, capacity_sat), now_ns, results, to_pubkey
        )

    def local_pair_probability(self, now_ns: int, results: Mapping[bytes, TimedPairResult], to_pubkey: bytes) -> float:
        """The probability for one of our own channels: 1, lowered by the pair's last failure,
        which is forgotten over ``decay_time``. Amounts and capacity are ignored."""
        r = results.get(to_pubkey)
        if r is None or r[0] is None:
            return 1.0
        ago = sub(now_ns, r[0])
        if ago < 0:
            ago = 0
        return 1.0 - _exp(-float(ago) / self._decay_ns)


# -- per-node aggregates ---------------------------------------------------------------------
# Both estimators weigh every other pair of the channel's source node when the pair's own
# history is not decisive: lnd walks them all, O(n) per query, and pathfinding asks for every
# edge it relaxes. Their sums factorise, so each node's pairs are summarised once, in the cache
# that MissionControlState keeps beside them and empties whenever it changes them; a query is
# then O(log n) (apriori) or O(1) (bimodal), and the second query after a change pays the
# O(n log n) summary. Decays split as d(now - t) = d(now - ref) * d(ref - t), with ``ref`` the
# node's newest time, so that no factor overflows (the first query after a change walks: see
# _summary). Where a split would change lnd's result (a
# time after ``now``, which lnd's saturations and inf handle; an apriori half-life of 0) the
# estimators walk the pairs as lnd does (the ``_reference`` methods).
#
# The results differ from the walk by float reassociation alone: sums of the same positive
# terms in another order, and each exponent split into two. Both change the last bits only:
# a sum of n positive terms has a relative error under n * 2**-53 in any order, and splitting
# an exponent x costs about |x| * 2**-52 relative (x < 1075 where a term is not 0). The tests
# hold the aggregates to the walk within a relative 1e-12 (tests/test_mission_estimators.py),
# the tolerance of lnd's own vectors, which hold unchanged.

AGGREGATE_MIN_PAIRS: Final = 32
"""Nodes with fewer known pairs are walked: their walk costs about as much as a summary's lookup."""
_CACHE_MAX: Final = 8  # summaries kept per node (one per estimator parameter; fitting tries many)


_Summary = TypeVar("_Summary", "_AprioriNode", "_BimodalNode")
_ASKED: Final = object()  # in a node's cache: asked once since the last change, no summary yet


def _summary(
    cache: dict[object, object], kind: type[_Summary], results: Mapping[bytes, TimedPairResult], param: float
) -> _Summary | None:
    """The node's summary of ``kind`` for the estimator parameter ``param``: from the cache, or
    made from ``results`` and kept (at most ``_CACHE_MAX`` per node); None at the first query
    after a change of the node's pairs, which walks them as lnd does. A summary costs about two
    walks to make, so a node whose pairs change between every two queries is walked, as
    before, and the summary is made for a node asked about twice."""
    key = (kind, param)
    summary = cache.get(key)
    if isinstance(summary, kind):
        return summary
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    if summary is None:
        cache[key] = _ASKED
        return None
    summary = cache[key] = kind(results, param)
    return summary


class _AprioriNode:
    """The sums of lnd's ``getNodeProbability`` over one node's pairs, for one half-life.

    For an amount ``a``: the pairs with ``success_amt >= a`` count as successes (a bisection of
    the sorted success amounts), and the failures of the others with ``fail_amt <= a`` add their
    penalty weights ``2 ** (-hours(now - t) / half_life)``. A pair whose failure amount is above
    its success amount (every pair the state writes, bar a success of 2**64 - 1) fails at ``a``
    exactly when ``fail_amt <= a``, so those weights are prefix sums over the failures sorted by
    amount, times ``2 ** (-hours(now - ref) / half_life)``; the other pairs (rare) are weighed
    one by one.
    """

    __slots__ = ("fail_amts", "fail_sums", "hl", "odd", "span", "success_amts")

    def __init__(self, results: Mapping[bytes, TimedPairResult], hl: float) -> None:
        self.hl = hl
        self.success_amts = sorted(r[3] for r in results.values())
        fails: list[tuple[int, int]] = []
        odd: list[tuple[int, int]] = []  # (fail time, success amount)
        for fail_time, fail_amt, _, success_amt in results.values():
            if fail_time is not None:
                if fail_amt > success_amt:
                    fails.append((fail_amt, fail_time))
                else:
                    odd.append((fail_time, success_amt))
        self.odd = odd
        times = [t for _, t in fails] + [t for t, _ in odd]
        # The oldest and newest failure times; the newest is the reference time of the sums.
        self.span = (min(times), max(times)) if times else None
        fails.sort()
        self.fail_amts = [amt for amt, _ in fails]
        sums = [0.0]
        total = 0.0
        if self.span is not None:
            ref = self.span[1]
            for _, t in fails:
                total += _pow(2.0, -((ref - t) / 3.6e12) / hl)
                sums.append(total)
        self.fail_sums = sums

    def probability(self, est: AprioriEstimator, now_ns: int, amount_msat: int, apriori: float) -> float | None:
        """The node probability, or None where the split does not apply (a failure after
        ``now_ns``, or ages past Go's Duration range, which lnd saturates)."""
        span = self.span
        penalties = 0.0
        if span is not None:
            oldest, newest = span
            if now_ns < newest or now_ns - oldest > MAX_DURATION:
                return None
            penalties = self.fail_sums[bisect_right(self.fail_amts, amount_msat)]
            if penalties:
                penalties *= _pow(2.0, -((now_ns - newest) / 3.6e12) / self.hl)
            for fail_time, success_amt in self.odd:
                if amount_msat > success_amt:  # and so >= the failure amount
                    penalties += est._penalty_weight(now_ns - fail_time)
        successes = len(self.success_amts) - bisect_left(self.success_amts, amount_msat)
        k = est._k
        num = apriori * k + PREV_SUCCESS_PROBABILITY * successes
        den = k + successes + penalties
        return num / den if den != 0 else _nan


class _BimodalNode:
    """The sums of the node weighting of lnd's bimodal ``calculateProbability`` over one node's
    pairs, for one decay time: ``exp(-(ref - t) / decay)`` of each pair's success (amount > 0)
    and failure (amount > 0), as prefix and suffix sums in the pairs' order, so that the sums
    over every pair but the queried one take two lookups and no subtraction."""

    __slots__ = ("fail_pre", "fail_suf", "index", "newest", "success_pre", "success_suf", "tau")

    def __init__(self, results: Mapping[bytes, TimedPairResult], tau: float) -> None:
        self.tau = tau
        times = [r[2] for r in results.values() if r[3] > 0 and r[2] is not None]
        times += [r[0] for r in results.values() if r[1] > 0 and r[0] is not None]
        ref = self.newest = max(times) if times else None
        self.index = {to: i for i, to in enumerate(results)}
        success_terms = []
        fail_terms = []
        if ref is not None:
            for fail_time, fail_amt, success_time, success_amt in results.values():
                success_terms.append(
                    _exp(-(ref - success_time) / tau) if success_amt > 0 and success_time is not None else 0.0
                )
                fail_terms.append(_exp(-(ref - fail_time) / tau) if fail_amt > 0 and fail_time is not None else 0.0)
        self.success_pre, self.success_suf = _prefix_suffix(success_terms)
        self.fail_pre, self.fail_suf = _prefix_suffix(fail_terms)

    def probability(self, w: float, direct: float, now_ns: int, to_pubkey: bytes) -> float | None:
        """The mixed probability, or None where the split does not apply (a time after ``now_ns``,
        which lnd counts as now)."""
        ref = self.newest
        if ref is None:
            return direct / 1.0
        if now_ns < ref:
            return None
        i = self.index.get(to_pubkey)
        if i is None:
            successes = self.success_pre[-1]
            fails = self.fail_pre[-1]
        else:
            successes = self.success_pre[i] + self.success_suf[i + 1]
            fails = self.fail_pre[i] + self.fail_suf[i + 1]
        scale = w * _exp(-(now_ns - ref) / self.tau)
        successes *= scale
        return (direct + successes) / (1.0 + successes + fails * scale)


def _prefix_suffix(terms: list[float]) -> tuple[list[float], list[float]]:
    """``pre[i]`` = the sum of ``terms[:i]``, ``suf[i]`` = the sum of ``terms[i:]``."""
    pre = [0.0]
    total = 0.0
    for x in terms:
        total += x
        pre.append(total)
    suf = [0.0]
    total = 0.0
    for x in reversed(terms):
        total += x
        suf.append(total)
    suf.reverse()
    return pre, suf
