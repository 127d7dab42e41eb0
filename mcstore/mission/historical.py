"""A historical estimator in the style of LDK's ``ProbabilisticScorer``: where the liquidity's
bounds were seen, remembered per pair, decayed, and turned into a probability.

LDK (rust-lightning, ``lightning/src/routing/scoring.rs``; read at commit ``cfee4b7``) keeps,
per channel, two histograms of where its liquidity bounds were each time they changed: one of
the lower bound and one of the upper bound's distance from the capacity, 32 buckets each
(``HistoricalBucketRangeTracker``). Each new datapoint first shrinks every bucket by 2047/2048
and then adds one to the bucket of each bound (``track_datapoint``); a channel without news for
``historical_no_updates_half_life`` (14 days) has its buckets halved per half-life
(``ChannelLiquidities::time_passed``). To estimate, it takes every pair of a lower and an
upper bucket, weighs it by the square of the product of their weights, and averages the
probability that the liquidity exceeds the amount if it lay between those two bounds, under a
density that puts it near the channel's ends (``calculate_success_probability_times_billion``,
``nonlinear_success_probability``).

:class:`HistoricalEstimator` learns from the pair outcomes that
:class:`~mcstore.mission.MissionControlState` applies (lnd's rules), as a
:class:`~mcstore.mission.state.PairLearner` attached to the state: a success at ``a`` says the
liquidity was at least ``a``, a failure at ``a`` that it was below ``a``.

The model, per directed node pair (``from -> to``):

* **Datapoints.** Each outcome is one datapoint with two bounds: a success at ``a`` is the lower
  bound ``a`` with no upper bound (the capacity); a failure at ``a`` is the upper bound ``a``
  with the lower bound 0 ("no success"). A success of 0 msat says nothing and is not learnt.
* **Histograms.** The lower bounds and the upper bounds each go to a histogram of buckets by
  amount: bucket ``k`` holds the amounts of ``k`` bits, ``[2**(k-1), 2**k)`` msat; bucket 0
  holds 0; the upper histogram has one more bucket for "no upper bound". A bucket keeps its
  weight and the bound of its newest datapoint (exactly, in msat). Learning a datapoint
  multiplies every weight of the pair by ``datapoint_decay``, and by 1/2 per whole
  ``no_updates_half_life`` elapsed since the pair's previous datapoint (as LDK decays only
  once more than a half-life has passed, a silence of exactly k half-lives counts k - 1),
  then adds 1 to the weight of each of its two buckets. So a pair holds at most 131 buckets, whatever its history.
* **Estimate.** With the capacity ``c`` the query gives, the bounds are placed against it
  (above ``c``: clipped) and every pair of a lower bucket (weight ``m``, bound ``l``) and an
  upper bucket (weight ``M``, bound ``u``) weighs ``(m * M) ** bucket_weight_power``; the
  weights first lose 1/2 per whole ``no_updates_half_life`` since the pair's last datapoint.
  Each such pair gives the probability ``S(x | l, u)`` that the liquidity is at least the
  amount ``x`` if it lies in ``[l, u)`` with density proportional to
  ``1/256 + 9 * (v - 1/2) ** 8`` at ``v`` = liquidity / ``c`` (LDK's): 1 below ``l``, 0 from
  ``u`` on. Three cases differ: the lower bucket 0 (only failures: no success seen) is paired,
  at its full weight, with the lowest upper bound among the upper buckets holding at least one
  datapoint's weight (or, if none does, among all), as LDK does so that a series of failures
  at falling amounts is not averaged with the higher ones; a probability with the lower bound
  0 is multiplied by ``no_success_factor``; and a pair whose lower bound is not below its upper
  bound (the liquidity moved between the two observations) takes the newer of the two and the
  other bound's no-information value (the capacity, or 0 with ``no_success_factor``).
* **Prior.** The estimate without any information is ``no_success_factor * S(x | 0, c)``
  (LDK's when a channel's history is empty or fully decayed). It enters as one more datapoint
  of weight ``prior_weight``, with the lower bound 0 and no upper bound: a lower row of its own,
  paired with every upper bucket by weight (not with the lowest bound only, so that a decayed
  failure cannot hold it down), and part of the "no upper bound" bucket. It fades by
  ``datapoint_decay`` with each new datapoint, like the pair's own old ones, but not with time,
  so a history left without news gives way to it. A pair never seen gets exactly the prior.

Guarantees (tested): every probability is in [0, 1]; it never increases with the amount (for
the same history, time and capacity); 0 from the capacity on, and for a zero capacity. For a
query at the time of a result and with the same capacity, learning a success at ``a`` never
lowers the probability of any amount up to ``a``, and learning a failure at ``a`` never raises
the probability of any amount from ``a`` on (both up to floating-point rounding, a relative
1e-12; no claim for other amounts, or at later times, where the halving by whole half-lives
of silence can move either way). The memory is a function of the outcomes learnt, in their
order: a replay of the same history in the same order rebuilds it bit for bit.

Differences from LDK:

* It gives a probability, not a penalty: LDK turns its probability into ``-log10(p)`` times
  ``historical_liquidity_penalty_multiplier_msat`` (and an amount multiplier), floored at a
  probability of 0.01; none of its penalty parameters apply here.
* It learns lnd's pair outcomes. In LDK a payment that succeeds lowers each channel's upper
  bound by the amount sent (the HTLC moved that liquidity) and records the bounds as they were
  before it; here, as in lnd, a success says the liquidity was at least the amount. LDK records
  with each datapoint both bounds of its current point estimate (the other one decaying back
  over ``liquidity_offset_half_life``, 30 minutes); here the other bound is always at its
  no-information value. The two directions of a pair are independent (lnd's pairs); LDK's two
  directions share one history (one direction's lower bound is the other's upper).
* LDK's buckets are fractions of the channel's capacity, finer near its ends (widths of 1, 1,
  2, 4, ... 1024, 2048, ... 1024, ... 2, 1, 1 in 16384ths), which it knows when it learns;
  mission control learns without capacities (lnd's history has none, and a node pair can
  stand for several channels), so the buckets here are octaves of the amount, and each keeps
  its newest bound exactly, placed against the capacity when asked. LDK's probability uses
  its buckets' edges (the lower bound rounded down, the upper up) at a resolution of 1/16384
  of the capacity; here the bounds are exact, which is what makes the guarantees above hold
  at the amount itself. LDK's buckets are 16-bit fixed point (a lone datapoint's weight
  drops by 1/32 with each later one, and vanishes after 32); here weights are floats, decayed
  by the exact factors, and the halving for silence is applied as if checked continuously.
* A bucket pair whose bounds contradict: LDK leaves it out; here the newer bound wins.
* LDK switches to the no-information estimate when the history's total weight falls below
  one datapoint pair; here that estimate is the ``prior_weight`` pseudo-datapoint above, in
  the histograms, which makes the change gradual and keeps the guarantees.
* In-flight HTLCs are not counted (mission control does not know them), and only LDK's
  default, non-linear density is offered (not ``linear_success_probability``).
* Our own channels: LDK does not score them at all (it knows their balances); lnd's
  estimators lower them after a failure. Here, as the bimodal estimator does, a channel of our
  own has probability 1, or ``1 - 2 ** (-age / liquidity_offset_half_life)`` at ``age``
  after its last failure (LDK's decay of a learnt bound, applied to an upper bound of 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final, NamedTuple

from ..model import U64_MAX
from .estimators import Parameter, _number, _positive_seconds, _Tunable, _unit
from .state import TimedPairResult

__all__ = [
    "LDK_DATAPOINT_DECAY",
    "LDK_NO_SUCCESS_FACTOR",
    "NO_UPPER_BOUND",
    "Bucket",
    "HistoricalEstimator",
    "PairMemory",
    "bucket_of",
]

LDK_DATAPOINT_DECAY: Final = 2047 / 2048
"""LDK's per-datapoint decay of its buckets (``HistoricalBucketRangeTracker::track_datapoint``)."""
LDK_NO_SUCCESS_FACTOR: Final = 64 / 78
"""LDK's ``MIN_ZERO_IMPLIES_NO_SUCCESSES_PENALTY_ON_64`` (78): a lower bound of 0 scales the
probability by 64/78, about 0.82."""
NO_UPPER_BOUND: Final = 65
"""The upper histogram's bucket for "no upper bound" (the capacity): one above 64-bit amounts."""
MAX_BUCKET_WEIGHT_POWER: Final = 8.0
"""The largest ``bucket_weight_power`` accepted: higher powers can overflow a float."""

_ldexp = math.ldexp


def _density_primitive(v: float) -> float:
    """An antiderivative of LDK's liquidity density ``1/256 + 9 (v - 1/2)^8`` at ``v``, up to a
    constant factor: ``(v - 1/2)^9 + (v - 1/2)/256``. Non-decreasing in ``v`` in floating point
    (each rounded step is monotonic), which the estimate's monotonicity relies on."""
    t = v - 0.5
    t4 = t * t
    t4 *= t4
    return t * t4 * t4 + t / 256.0


_F0: Final = _density_primitive(0.0)
_F1: Final = _density_primitive(1.0)
_F_SPAN: Final = _F1 - _F0


def bucket_of(amount_msat: int) -> int:
    """The histogram bucket of an amount: its number of bits (0 for 0; ``2**(k-1) <= a < 2**k`` in bucket k)."""
    return amount_msat.bit_length()


class Bucket(NamedTuple):
    """One histogram bucket of a pair: its weight, the bound of its newest datapoint (msat;
    None for "no upper bound") and that datapoint's number (1 for the pair's first)."""

    weight: float
    bound_msat: int | None
    newest: int


@dataclass(frozen=True, slots=True)
class PairMemory:
    """A snapshot of what a :class:`HistoricalEstimator` remembers of one pair.

    ``lower`` and ``upper`` map a bucket (:func:`bucket_of`, or :data:`NO_UPPER_BOUND`) to its
    :class:`Bucket`; weights are as of ``last_time_ns``, the latest datapoint's time;
    ``datapoints`` counts the datapoints learnt; ``prior_scale`` is ``datapoint_decay ** datapoints``.
    """

    lower: Mapping[int, Bucket]
    upper: Mapping[int, Bucket]
    last_time_ns: int
    datapoints: int
    prior_scale: float


_Buckets = dict[int, tuple[float, int, int]]
"""A histogram while learning: bucket -> (weight, newest bound in msat (-1: no upper bound),
newest datapoint). Tuples of numbers, replaced on update: the garbage collector stops
tracking them, so that a large memory does not slow every collection down."""


class _Pair:
    """The memory of one pair."""

    __slots__ = ("count", "last_ns", "lower", "prior", "upper")

    def __init__(self, time_ns: int, lower: _Buckets, upper: _Buckets, prior: float) -> None:
        self.lower = lower
        self.upper = upper
        self.last_ns = time_ns
        self.count = 1
        self.prior = prior


def _halvings(gap_ns: int, half_life_ns: int) -> int:
    """Whole half-lives in a silence of ``gap_ns`` (LDK decays once more than one has passed)."""
    return (gap_ns - 1) // half_life_ns if gap_ns > half_life_ns else 0


def _decayed(buckets: _Buckets, factor: float) -> _Buckets:
    """Every weight times ``factor``; a bucket whose weight underflows to 0 no longer counts,
    and is dropped."""
    out = {}
    for key, (weight, bound, seq) in buckets.items():
        weight *= factor
        if weight != 0.0:
            out[key] = (weight, bound, seq)
    return out


class HistoricalEstimator(_Tunable):
    """LDK-style historical estimator: histograms of the liquidity bounds each pair was seen at.

    See the module's docstring for the model, its guarantees and its differences from LDK.

    Args:
        no_updates_half_life: Seconds, > 0; default 1,209,600 (14 days), LDK's
            ``ProbabilisticScoringDecayParameters::historical_no_updates_half_life``. A pair's
            histograms lose half their weight per whole half-life without a new datapoint.
        datapoint_decay: In (0, 1]; default 2047/2048, the factor of LDK's
            ``HistoricalBucketRangeTracker::track_datapoint``. Every datapoint scales the pair's
            older ones (and the prior) by it.
        bucket_weight_power: In (0, 8]; default 2, LDK's (``(min_bucket * max_bucket)``
            squared in ``calculate_success_probability_times_billion``: "raising the weights of
            buckets to a high power led to better scoring results"). The power of the product of
            a lower and an upper bucket's weights that weighs their pair.
        no_success_factor: In [0, 1]; default 64/78 (about 0.82), LDK's
            ``MIN_ZERO_IMPLIES_NO_SUCCESSES_PENALTY_ON_64``: the factor applied to a probability
            whose lower bound is 0 (no success seen), the prior included.
        prior_weight: >= 0; default 1/2, derived from LDK: LDK drops a history whose total
            weight falls below one datapoint pair, which a lone datapoint does after one half-life
            of silence, when its weight is 1/2; here the prior then weighs as much as it does (and
            takes over gradually, not at once). The weight of the prior's pseudo-datapoint.
        liquidity_offset_half_life: Seconds, > 0; default 1800 (30 minutes), LDK's
            ``ProbabilisticScoringDecayParameters::liquidity_offset_half_life``. Used for our own
            channels only (see :meth:`local_pair_probability`).

    Raises:
        TypeError: A parameter that is not a number, naming it.
        ValueError: A parameter out of its range, or not finite, naming it.

    It learns through :meth:`learn`, called by the :class:`~mcstore.mission.MissionControlState`
    it is attached to (``learners=``; :func:`~mcstore.mission.open_mission_control` attaches
    it); :meth:`forget` clears its memory. An estimator belongs to one state. Memory: at most
    131 buckets per pair learnt. Not thread-safe (like the state).
    """

    name: ClassVar[str] = "historical"
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("no_updates_half_life", 1_209_600.0, 3600.0, 180 * 86400.0, log_scale=True),
        Parameter("datapoint_decay", LDK_DATAPOINT_DECAY, 0.9, 1.0),
        Parameter("bucket_weight_power", 2.0, 0.25, 4.0),
        Parameter("no_success_factor", LDK_NO_SUCCESS_FACTOR, 0.05, 1.0),
        Parameter("prior_weight", 0.5, 1e-3, 100.0, log_scale=True),
        Parameter("liquidity_offset_half_life", 1800.0, 60.0, 7 * 86400.0, log_scale=True),
    )

    __slots__ = (
        "_half_life_ns",
        "_local_half_life_ns",
        "_memory",
        "bucket_weight_power",
        "datapoint_decay",
        "liquidity_offset_half_life",
        "no_success_factor",
        "no_updates_half_life",
        "prior_weight",
    )

    def __init__(
        self,
        no_updates_half_life: float = 1_209_600.0,
        datapoint_decay: float = LDK_DATAPOINT_DECAY,
        bucket_weight_power: float = 2.0,
        no_success_factor: float = LDK_NO_SUCCESS_FACTOR,
        prior_weight: float = 0.5,
        liquidity_offset_half_life: float = 1800.0,
    ) -> None:
        owner = "HistoricalEstimator"
        half_life, self._half_life_ns = _positive_seconds(owner, "no_updates_half_life", no_updates_half_life)
        local, self._local_half_life_ns = _positive_seconds(
            owner, "liquidity_offset_half_life", liquidity_offset_half_life
        )
        decay = _unit(owner, "datapoint_decay", datapoint_decay)
        if decay == 0.0:
            raise ValueError(f"{owner}: datapoint_decay must be in (0, 1], got {datapoint_decay!r}")
        power = _number(owner, "bucket_weight_power", bucket_weight_power)
        if not 0.0 < power <= MAX_BUCKET_WEIGHT_POWER:
            raise ValueError(
                f"{owner}: bucket_weight_power must be in (0, {MAX_BUCKET_WEIGHT_POWER:g}], got {bucket_weight_power!r}"
            )
        prior = _number(owner, "prior_weight", prior_weight)
        if prior < 0.0:
            raise ValueError(f"{owner}: prior_weight must be >= 0, got {prior_weight!r}")
        self.no_updates_half_life: Final = half_life
        self.datapoint_decay: Final = decay
        self.bucket_weight_power: Final = power
        self.no_success_factor: Final = _unit(owner, "no_success_factor", no_success_factor)
        self.prior_weight: Final = prior
        self.liquidity_offset_half_life: Final = local
        self._memory: dict[bytes, dict[bytes, _Pair]] = {}

    # -- learning ---------------------------------------------------------------------------

    def learn(self, from_pubkey: bytes, to_pubkey: bytes, time_ns: int, success: bool, amount_msat: int) -> None:
        """Take one pair outcome into the pair's histograms (see the module's docstring). O(buckets of the pair).

        Amounts are u64 (a state only applies such); one outside is clipped to [0, 2**64 - 1].
        """
        if amount_msat > U64_MAX or amount_msat < 0:
            amount_msat = U64_MAX if amount_msat > 0 else 0
        if success and amount_msat == 0:
            return  # "the liquidity was at least 0" says nothing
        peers = self._memory.get(from_pubkey)
        if peers is None:
            peers = self._memory[from_pubkey] = {}
        if success:
            lower_key, lower_bound, upper_key, upper_bound = amount_msat.bit_length(), amount_msat, NO_UPPER_BOUND, -1
        else:
            lower_key, lower_bound, upper_key, upper_bound = 0, 0, amount_msat.bit_length(), amount_msat
        pair = peers.get(to_pubkey)
        if pair is None:  # the first datapoint: nothing to decay but the prior
            peers[to_pubkey] = _Pair(
                time_ns, {lower_key: (1.0, lower_bound, 1)}, {upper_key: (1.0, upper_bound, 1)}, self.datapoint_decay
            )
            return
        factor = self.datapoint_decay
        gap = time_ns - pair.last_ns
        if gap > 0:  # a result older than the pair's latest one does not turn the clock back
            pair.last_ns = time_ns
            halvings = _halvings(gap, self._half_life_ns)
            if halvings:
                factor = _ldexp(factor, -halvings)
        lower = pair.lower if factor == 1.0 else _decayed(pair.lower, factor)
        upper = pair.upper if factor == 1.0 else _decayed(pair.upper, factor)
        pair.prior *= self.datapoint_decay
        pair.count = seq = pair.count + 1
        old = lower.get(lower_key)
        lower[lower_key] = (1.0 if old is None else old[0] + 1.0, lower_bound, seq)
        old = upper.get(upper_key)
        upper[upper_key] = (1.0 if old is None else old[0] + 1.0, upper_bound, seq)
        pair.lower = lower
        pair.upper = upper

    def forget(self) -> None:
        """Forget every pair learnt."""
        self._memory.clear()

    def memory(self, from_pubkey: bytes, to_pubkey: bytes) -> PairMemory | None:
        """A snapshot of what is remembered of the pair ``from -> to`` (None: nothing).

        Args:
            from_pubkey: The pair's source node.
            to_pubkey: The pair's other node.
        """
        pair = self._memory.get(from_pubkey, {}).get(to_pubkey)
        if pair is None:
            return None

        def snapshot(buckets: _Buckets) -> dict[int, Bucket]:
            return {k: Bucket(w, None if b < 0 else b, n) for k, (w, b, n) in sorted(buckets.items())}

        return PairMemory(snapshot(pair.lower), snapshot(pair.upper), pair.last_ns, pair.count, pair.prior)

    @property
    def pairs_learnt(self) -> int:
        """How many pairs the estimator remembers."""
        return sum(len(peers) for peers in self._memory.values())

    # -- estimating -------------------------------------------------------------------------

    def pair_probability(
        self,
        now_ns: int,
        results: Mapping[bytes, TimedPairResult],
        to_pubkey: bytes,
        amount_msat: int,
        capacity_sat: int,
    ) -> float:
        """The probability that the channel to ``to_pubkey`` forwards ``amount_msat`` at ``now_ns``.

        ``results`` names the channel's source node: it is the
        :class:`~mcstore.mission.state.NodeResults` of ``results_from`` (a mapping without
        ``from_pubkey`` counts as a node nothing was learnt about: the prior). Its pair
        history itself is not read: what was learnt is. ``capacity_sat``: the channel's
        capacity; 0 (unknown) gives 0, as an amount at or above the capacity does. Always in
        [0, 1]. Pure; O(buckets of the pair squared), at most 66 x 66, independent of how many
        pairs the node has.
        """
        c = capacity_sat * 1000
        x = amount_msat
        if c <= 0 or x >= c:
            return 0.0
        fx = _density_primitive(x / c)
        prior = self.no_success_factor * (_F1 - fx) / _F_SPAN
        frm = getattr(results, "from_pubkey", None)
        peers = self._memory.get(frm) if isinstance(frm, bytes) else None
        pair = None if peers is None else peers.get(to_pubkey)
        if pair is None:
            return prior
        return self._mixture(pair, now_ns, x, c, fx, prior)

    def _mixture(self, pair: _Pair, now_ns: int, x: int, c: int, fx: float, prior: float) -> float:
        """The weighted average over the pair's bucket pairs, the prior among them (the module's "Estimate")."""
        nsf = self.no_success_factor
        e = self.bucket_weight_power
        g = _ldexp(1.0, -_halvings(now_ns - pair.last_ns, self._half_life_ns))
        density = _density_primitive

        def between(lo: int, f_lo: float, hi: int, f_hi: float) -> float:
            """S(x | lo, hi): P(liquidity >= x) for a liquidity in [lo, hi), LDK's density."""
            if x < lo:
                return 1.0
            if x >= hi:
                return 0.0
            d = f_hi - f_lo
            if d > 0.0:
                return (f_hi - fx) / d
            # Bounds closer than the floats resolve (capacities beyond any real channel): linear.
            return (hi - x) / (hi - lo)

        # The prior is a datapoint with the lower bound 0 and no upper bound, which decays with
        # each datapoint but not with time: a row of its own, and part of the "no upper bound" column.
        pseudo = self.prior_weight * pair.prior
        columns: list[tuple[int, float, float, int]] = []
        column_total = 0.0
        lowest_full: int | None = None
        lowest: int | None = None
        unbounded = pseudo
        unbounded_seq = 0
        for key, (weight, bound, seq) in pair.upper.items():
            w = weight * g
            if key == NO_UPPER_BOUND:
                unbounded += w
                unbounded_seq = seq
                continue
            if not w > 0.0:
                continue
            u = bound if bound < c else c
            if w >= 1.0 and (lowest_full is None or u < lowest_full):
                lowest_full = u
            if lowest is None or u < lowest:
                lowest = u
            we = w**e
            column_total += we
            columns.append((u, density(u / c), we, seq))
        if unbounded > 0.0:
            if unbounded >= 1.0 and lowest_full is None:
                lowest_full = c
            if lowest is None:
                lowest = c
            we = unbounded**e
            column_total += we
            columns.append((c, _F1, we, unbounded_seq))
        num = 0.0
        den = 0.0
        if pseudo > 0.0:
            # The prior's own row: the lower bound 0, paired with every upper bucket by weight.
            we = pseudo**e
            for u, f_u, wu, _seq in columns:
                wr = we * wu
                num += wr * (nsf * between(0, _F0, u, f_u))
                den += wr
        zero = pair.lower.get(0)
        w = 0.0 if zero is None else zero[0] * g
        if w > 0.0 and lowest is not None:
            # No success seen: LDK pairs these with the lowest (well-attested) upper bound only.
            u_sel = lowest_full if lowest_full is not None else lowest
            wr = w**e * column_total
            num += wr * (nsf * between(0, _F0, u_sel, density(u_sel / c)))
            den += wr
        for key, (weight, bound, seq) in pair.lower.items():
            w = weight * g
            if key == 0 or not w > 0.0:
                continue
            we = w**e
            lo = bound if bound < c else c - 1
            f_lo = density(lo / c)
            for u, f_u, wu, useq in columns:
                wr = we * wu
                if lo < u:  # between(lo, f_lo, u, f_u), inline: the hot loop
                    if x < lo:
                        p = 1.0
                    elif x >= u:
                        p = 0.0
                    else:
                        d = f_u - f_lo
                        p = (f_u - fx) / d if d > 0.0 else (u - x) / (u - lo)
                elif seq > useq:  # the success is newer
                    p = between(lo, f_lo, c, _F1)
                else:
                    p = nsf * between(0, _F0, u, f_u)  # the failure is newer
                num += wr * p
                den += wr
        if not den > 0.0:  # every weight underflowed
            return prior
        p = num / den
        return p if p <= 1.0 else 1.0

    def local_pair_probability(self, now_ns: int, results: Mapping[bytes, TimedPairResult], to_pubkey: bytes) -> float:
        """The probability for one of our own channels: 1, or after the pair's last failure
        ``1 - 2 ** (-age / liquidity_offset_half_life)`` (0 at the failure, and for a failure
        in the future). Amounts and capacity are ignored; read from ``results`` (the state's
        pair history), like the other estimators' local variants."""
        r = results.get(to_pubkey)
        if r is None or r[0] is None:
            return 1.0
        age = now_ns - r[0]
        if age <= 0:
            return 0.0
        return 1.0 - math.exp2(-age / self._local_half_life_ns)
