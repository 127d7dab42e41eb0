"""The historical (LDK-style) estimator: hand-computed bucket updates and probabilities, its
hypothesis properties, a from-scratch reference for its incremental memory, and its learning
through the state (replay, reopen, reset)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcstore.backends import MemoryBackend, MemoryDatabase
from mcstore.mission import (
    HistoricalEstimator,
    LearningEstimator,
    MissionControlState,
    NodeResults,
    TimedPairResult,
    TunableEstimator,
    open_mission_control,
)
from mcstore.mission.historical import (
    LDK_DATAPOINT_DECAY,
    LDK_NO_SUCCESS_FACTOR,
    NO_UPPER_BOUND,
    Bucket,
    _density_primitive,
    bucket_of,
)
from mcstore.model import TEMPORARY_CHANNEL_FAILURE, Hop, PaymentFailure, PaymentResult, Route

SEC = 1_000_000_000
DAY = 86_400 * SEC
T = 1_700_000_000 * SEC
SRC, DST, OTHER = (bytes([2, i]) + bytes(31) for i in (1, 2, 3))
VIEW = NodeResults(SRC, {})  # what results_from(SRC) gives: names the source
NSF = 64 / 78


def density_primitive(v: float) -> float:
    """LDK's density 1/256 + 9 (v - 1/2)^8, integrated (written out independently)."""
    return (v - 0.5) ** 9 + (v - 0.5) / 256


def prior(x: int, c: int, nsf: float = NSF) -> float:
    """nsf * P(liquidity >= x) for a liquidity anywhere in [0, c) under LDK's density."""
    return nsf * (density_primitive(1) - density_primitive(x / c)) / (density_primitive(1) - density_primitive(0))


# -- parameters -------------------------------------------------------------------------------


def test_defaults_are_ldks() -> None:
    e = HistoricalEstimator()
    assert e.params() == {
        "no_updates_half_life": 14 * 86400.0,  # historical_no_updates_half_life
        "datapoint_decay": 2047 / 2048,  # track_datapoint
        "bucket_weight_power": 2.0,  # (min_bucket * max_bucket) squared
        "no_success_factor": 64 / 78,  # MIN_ZERO_IMPLIES_NO_SUCCESSES_PENALTY_ON_64
        "prior_weight": 0.5,
        "liquidity_offset_half_life": 1800.0,  # liquidity_offset_half_life
    }
    assert LDK_DATAPOINT_DECAY == 2047 / 2048 and LDK_NO_SUCCESS_FACTOR == 64 / 78
    assert isinstance(e, LearningEstimator) and isinstance(e, TunableEstimator)
    assert e.name == "historical"
    assert repr(e).startswith("HistoricalEstimator(no_updates_half_life=1209600.0, datapoint_decay=0.99951171875,")


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"no_updates_half_life": 0.0}, ValueError, "no_updates_half_life must be > 0 seconds, got 0.0"),
        ({"no_updates_half_life": 1e-10}, ValueError, "no_updates_half_life must be > 0 seconds, got 1e-10"),
        ({"no_updates_half_life": math.inf}, ValueError, "no_updates_half_life must be finite, got inf"),
        ({"no_updates_half_life": "1d"}, TypeError, "no_updates_half_life must be a number, got str '1d'"),
        ({"datapoint_decay": 0.0}, ValueError, "datapoint_decay must be in (0, 1], got 0.0"),
        ({"datapoint_decay": 1.5}, ValueError, "datapoint_decay must be in [0, 1], got 1.5"),
        ({"bucket_weight_power": 0}, ValueError, "bucket_weight_power must be in (0, 8], got 0"),
        ({"bucket_weight_power": 9.0}, ValueError, "bucket_weight_power must be in (0, 8], got 9.0"),
        ({"bucket_weight_power": True}, TypeError, "bucket_weight_power must be a number, got bool True"),
        ({"no_success_factor": -0.1}, ValueError, "no_success_factor must be in [0, 1], got -0.1"),
        ({"prior_weight": -1}, ValueError, "prior_weight must be >= 0, got -1"),
        ({"prior_weight": math.nan}, ValueError, "prior_weight must be finite, got nan"),
        ({"liquidity_offset_half_life": -5}, ValueError, "liquidity_offset_half_life must be > 0 seconds, got -5"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, Any], error: type[Exception], needle: str) -> None:
    with pytest.raises(error) as info:
        HistoricalEstimator(**kwargs)
    assert str(info.value) == f"HistoricalEstimator: {needle}"


# -- hand-computed bucket updates ---------------------------------------------------------------


def test_bucket_of_is_the_bit_length() -> None:
    assert [bucket_of(a) for a in (0, 1, 2, 3, 4, 200_000_000, 2**28 - 1, 2**28, 2**64 - 1)] == [
        0, 1, 2, 2, 3, 28, 28, 29, 64,
    ]


def test_bucket_updates_by_hand() -> None:
    e = HistoricalEstimator()
    r = 2047 / 2048
    # A success at 200M msat (2**27 <= 200M < 2**28): lower bucket 28, and "no upper bound".
    e.learn(SRC, DST, T, True, 200_000_000)
    m = e.memory(SRC, DST)
    assert m is not None
    assert m.lower == {28: Bucket(1.0, 200_000_000, 1)}
    assert m.upper == {NO_UPPER_BOUND: Bucket(1.0, None, 1)}
    assert (m.last_time_ns, m.datapoints, m.prior_scale) == (T, 1, r)
    # A failure at 400M msat a second later: everything shrinks by 2047/2048, then lower bucket
    # 0 (no success) and upper bucket 29 get one each.
    e.learn(SRC, DST, T + SEC, False, 400_000_000)
    m = e.memory(SRC, DST)
    assert m is not None
    assert m.lower == {0: Bucket(1.0, 0, 2), 28: Bucket(r, 200_000_000, 1)}
    assert m.upper == {29: Bucket(1.0, 400_000_000, 2), NO_UPPER_BOUND: Bucket(r, None, 1)}
    assert m.prior_scale == r * r
    # A success at 300M (bucket 29) after 15 days without news: one half-life, so everything
    # is halved too; the "no upper bound" bucket gets its second datapoint.
    e.learn(SRC, DST, T + SEC + 15 * DAY, True, 300_000_000)
    m = e.memory(SRC, DST)
    assert m is not None
    assert m.lower == {0: Bucket(r / 2, 0, 2), 28: Bucket(r * r / 2, 200_000_000, 1), 29: Bucket(1.0, 300_000_000, 3)}
    assert m.upper == {29: Bucket(r / 2, 400_000_000, 2), NO_UPPER_BOUND: Bucket(r * r / 2 + 1, None, 3)}
    assert m.prior_scale == r**3  # the prior fades with datapoints, not with time
    # A later failure in the same bucket replaces the bucket's bound, an earlier time does not
    # turn the clock back (no halving, and the latest time stays).
    e.learn(SRC, DST, T, False, 300_000_001)
    m = e.memory(SRC, DST)
    assert m is not None
    assert m.upper[29] == Bucket(r * r / 2 + 1, 300_000_001, 4)
    assert m.last_time_ns == T + SEC + 15 * DAY


@pytest.mark.parametrize(("silence", "halvings"), [(14 * DAY, 0), (14 * DAY + 1, 1), (28 * DAY, 1), (28 * DAY + 1, 2)])
def test_a_silence_halves_per_whole_half_life_beyond_the_first(silence: int, halvings: int) -> None:
    """LDK decays once more than one half-life has passed without a datapoint."""
    e = HistoricalEstimator(datapoint_decay=1.0)
    e.learn(SRC, DST, T, False, 1000)
    e.learn(SRC, DST, T + silence, False, 5000)
    m = e.memory(SRC, DST)
    assert m is not None
    assert m.upper[bucket_of(1000)].weight == 0.5**halvings


def test_amounts_beyond_u64_are_clipped() -> None:
    e = HistoricalEstimator()
    e.learn(SRC, DST, T, False, 2**70)
    e.learn(SRC, DST, T, True, -5)  # clipped to 0: a success of nothing, not learnt
    m = e.memory(SRC, DST)
    assert m is not None and m.upper == {64: Bucket(1.0, 2**64 - 1, 1)} and m.datapoints == 1


def test_a_success_of_nothing_is_not_learnt() -> None:
    e = HistoricalEstimator()
    e.learn(SRC, DST, T, True, 0)
    assert e.memory(SRC, DST) is None and e.pairs_learnt == 0
    e.learn(SRC, DST, T, False, 0)  # a failure of every amount is
    m = e.memory(SRC, DST)
    assert m is not None and m.upper == {0: Bucket(1.0, 0, 1)}


# -- hand-computed probabilities --------------------------------------------------------------

C_SAT = 1_000_000
C = C_SAT * 1000


def test_the_prior_for_a_pair_never_seen() -> None:
    e = HistoricalEstimator()
    assert e.pair_probability(T, VIEW, DST, 0, C_SAT) == 64 / 78  # LDK's 0.82 at the smallest amount
    assert math.isclose(e.pair_probability(T, VIEW, DST, C // 2, C_SAT), 32 / 78, rel_tol=1e-12)
    for x in (1, 10**6, 3 * 10**8, C - 1):
        assert math.isclose(e.pair_probability(T, VIEW, DST, x, C_SAT), prior(x, C), rel_tol=1e-12)
    assert e.pair_probability(T, VIEW, DST, C, C_SAT) == 0.0  # the capacity itself
    assert e.pair_probability(T, VIEW, DST, 0, 0) == 0.0  # capacity unknown


def test_one_success_by_hand() -> None:
    """With no decay, one success at a: the pair (a, none) of weight (1 * 1.5)^2 gives 1 below a,
    the prior's pair (0, none) of weight (0.5 * 1.5)^2 gives the prior: (1 + prior/4) / 1.25."""
    e = HistoricalEstimator(datapoint_decay=1.0)
    a = 300_000_000
    e.learn(SRC, DST, T, True, a)
    for x in (0, 1000, a - 1, a):
        assert math.isclose(e.pair_probability(T, VIEW, DST, x, C_SAT), (1 + prior(x, C) / 4) / 1.25, rel_tol=1e-12)
    # Above a the success's pair gives P(liquidity >= x | in [a, c)).
    x = 600_000_000
    above = (density_primitive(1) - density_primitive(x / C)) / (density_primitive(1) - density_primitive(a / C))
    assert math.isclose(e.pair_probability(T, VIEW, DST, x, C_SAT), (above + prior(x, C) / 4) / 1.25, rel_tol=1e-12)


def test_one_failure_by_hand() -> None:
    """One failure at b, no decay: the no-success row (weight 1) pairs with b only, at weight
    1 * (1 + 0.25); the prior's row pairs with b (0.25) and none (0.0625)."""
    e = HistoricalEstimator(datapoint_decay=1.0)
    b = 400_000_000
    e.learn(SRC, DST, T, False, b)
    total = 1.25 + 0.25 + 0.0625
    for x in (0, 10**8, b - 1):
        below_b = NSF * (density_primitive(b / C) - density_primitive(x / C)) / (
            density_primitive(b / C) - density_primitive(0)
        )
        expected = (1.5 * below_b + 0.0625 * prior(x, C)) / total
        assert math.isclose(e.pair_probability(T, VIEW, DST, x, C_SAT), expected, rel_tol=1e-12)
    for x in (b, C - 1):
        assert math.isclose(e.pair_probability(T, VIEW, DST, x, C_SAT), 0.0625 * prior(x, C) / total, rel_tol=1e-12)


@pytest.mark.parametrize(("failure_first", "expected"), [(True, 0.5), (False, 0.25)])
def test_contradicting_bounds_the_newer_wins(failure_first: bool, expected: float) -> None:
    """A success at 500M and a failure at 100M (no prior, no decay, power 1): between them, the
    pair (500M, none) gives 1, the no-success row 0 (weight 2), and the pair (500M, 100M) 1 if
    the success is the newer (the liquidity rose), else 0."""
    e = HistoricalEstimator(datapoint_decay=1.0, bucket_weight_power=1.0, prior_weight=0.0)
    steps = [(False, 100_000_000), (True, 500_000_000)]
    for success, amount in steps if failure_first else steps[::-1]:
        e.learn(SRC, DST, T, success, amount)
    assert e.pair_probability(T, VIEW, DST, 300_000_000, C_SAT) == expected


def test_a_history_left_alone_gives_way_to_the_prior() -> None:
    e = HistoricalEstimator()
    for i in range(20):
        e.learn(SRC, DST, T + i * SEC, False, 100_000_000)
    x = 200_000_000
    assert e.pair_probability(T + 20 * SEC, VIEW, DST, x, C_SAT) < 0.01 * prior(x, C)
    later = e.pair_probability(T + 365 * DAY, VIEW, DST, x, C_SAT)
    assert math.isclose(later, prior(x, C), rel_tol=1e-6)


def test_a_mapping_that_names_no_source_gets_the_prior() -> None:
    e = HistoricalEstimator()
    e.learn(SRC, DST, T, False, 1000)
    x = 5000
    untaught = HistoricalEstimator().pair_probability(T, VIEW, DST, x, C_SAT)
    assert e.pair_probability(T, {DST: TimedPairResult(T, 1000)}, DST, x, C_SAT) == untaught
    assert e.pair_probability(T, NodeResults(OTHER, {}), DST, x, C_SAT) == untaught
    assert e.pair_probability(T, VIEW, DST, x, C_SAT) < untaught


def test_local_channels() -> None:
    e = HistoricalEstimator()
    results = {DST: TimedPairResult(T, 1000, T + SEC, 500), OTHER: TimedPairResult(None, 0, T, 5)}
    assert e.local_pair_probability(T + DAY, results, OTHER) == 1.0  # no failure
    assert e.local_pair_probability(T + DAY, results, bytes(33)) == 1.0  # unknown
    assert e.local_pair_probability(T, results, DST) == 0.0
    assert e.local_pair_probability(T - SEC, results, DST) == 0.0  # a failure in the future
    assert e.local_pair_probability(T + 1800 * SEC, results, DST) == 0.5
    assert e.local_pair_probability(T + 3600 * SEC, results, DST) == 0.75


# -- hypothesis: the guarantees -------------------------------------------------------------

amounts = st.integers(0, 2**64 - 1) | st.integers(0, 2 * 10**11) | st.sampled_from([0, 1, 999, 1000])
capacities = st.integers(1, 10**8) | st.sampled_from([1, 1000, C_SAT])
gaps = st.sampled_from([0, 1, SEC, 3600 * SEC, 15 * DAY]) | st.integers(-DAY, 40 * DAY)
Step = tuple[int, bool, int]
histories = st.lists(st.tuples(gaps, st.booleans(), amounts), max_size=12)
estimators = st.just(HistoricalEstimator()) | st.builds(
    HistoricalEstimator,
    **{p.name: st.floats(p.low, p.high) for p in HistoricalEstimator.parameters},
) | st.builds(HistoricalEstimator, datapoint_decay=st.just(1.0), prior_weight=st.sampled_from([0.0, 1e-3, 100.0]))


def learnt(e: HistoricalEstimator, history: Sequence[Step]) -> int:
    """Teach ``history`` (gaps from T) to the pair SRC -> DST; returns the last time."""
    t = T
    for gap, success, amount in history:
        t += gap
        e.learn(SRC, DST, t, success, amount)
    return t


@given(estimators, histories, amounts, capacities, st.integers(-(2**70), 2**70) | gaps)
def test_probability_in_unit_interval(
    e: HistoricalEstimator, history: list[Step], x: int, cap: int, later: int
) -> None:
    now = learnt(e, history) + later
    p = e.pair_probability(now, VIEW, DST, x, cap)
    assert 0.0 <= p <= 1.0, p
    assert 0.0 <= e.pair_probability(now, VIEW, OTHER, x, cap) <= 1.0
    results = {DST: TimedPairResult(T, x, T, x // 2)}
    assert 0.0 <= e.local_pair_probability(now, results, DST) <= 1.0


@given(estimators, histories, amounts, amounts, capacities, gaps)
def test_higher_amount_never_more_likely(
    e: HistoricalEstimator, history: list[Step], a: int, b: int, cap: int, later: int
) -> None:
    now = learnt(e, history) + later
    low, high = sorted((a, b))
    # Exactly, not up to rounding: each term is a monotonic floating-point function of the amount.
    assert e.pair_probability(now, VIEW, DST, high, cap) <= e.pair_probability(now, VIEW, DST, low, cap)


def probes(a: int, cap: int, extra: int) -> set[int]:
    c = cap * 1000
    return {a, a - 1, a + 1, a // 2, 0, 1, c - 1, c // 2, extra} - {-1}


@given(estimators, histories, gaps, amounts, capacities, amounts)
def test_a_success_never_lowers_the_probability_of_amounts_up_to_it(
    e: HistoricalEstimator, history: list[Step], gap: int, a: int, cap: int, extra: int
) -> None:
    t = learnt(e, history) + gap  # the new result's time, which is when we ask
    xs = [x for x in probes(a, cap, extra) if x <= a]
    before = [e.pair_probability(t, VIEW, DST, x, cap) for x in xs]
    e.learn(SRC, DST, t, True, a)
    after = [e.pair_probability(t, VIEW, DST, x, cap) for x in xs]
    for x, p0, p1 in zip(xs, before, after, strict=True):
        assert p1 >= p0 * (1 - 1e-12), (x, p0, p1)


@given(estimators, histories, gaps, amounts, capacities, amounts)
def test_a_failure_never_raises_the_probability_of_amounts_from_it_on(
    e: HistoricalEstimator, history: list[Step], gap: int, b: int, cap: int, extra: int
) -> None:
    t = learnt(e, history) + gap
    xs = [x for x in probes(b, cap, extra) if x >= b]
    before = [e.pair_probability(t, VIEW, DST, x, cap) for x in xs]
    e.learn(SRC, DST, t, False, b)
    after = [e.pair_probability(t, VIEW, DST, x, cap) for x in xs]
    for x, p0, p1 in zip(xs, before, after, strict=True):
        assert p1 <= p0 * (1 + 1e-12), (x, p0, p1)


def test_the_probability_of_the_amount_itself_moves_the_right_way() -> None:
    """The issue's wording, on a case where rounding a bound to its bucket's edge (as LDK does)
    would not give it: a success inside a bucket that an earlier, larger success fell in too."""
    e = HistoricalEstimator()
    e.learn(SRC, DST, T, True, 2**28 + 10**8)
    a = 2**28 + 1  # the same bucket, below it
    p0 = e.pair_probability(T, VIEW, DST, a, C_SAT)
    e.learn(SRC, DST, T, True, a)
    assert e.pair_probability(T, VIEW, DST, a, C_SAT) > p0
    p1 = e.pair_probability(T, VIEW, DST, a + 10, C_SAT)
    e.learn(SRC, DST, T, False, a + 10)
    assert e.pair_probability(T, VIEW, DST, a + 10, C_SAT) < p1


# -- a from-scratch reference for the incremental memory --------------------------------------


def reference_probability(e: HistoricalEstimator, history: Sequence[Step], now: int, x: int, cap: int) -> float:
    """The estimate recomputed from the raw outcomes: each datapoint's weight is the product of
    the decays after it, the buckets are rebuilt, every bucket pair is visited. It uses the
    module's own density primitive: bounds a few msat apart on a large channel lose most of
    their digits to cancellation, differently for each way of writing the ninth power (the
    formula itself is checked by the hand-computed tests)."""
    f = _density_primitive
    p = e.params()
    r, power, nsf, pw = p["datapoint_decay"], p["bucket_weight_power"], p["no_success_factor"], p["prior_weight"]
    half = round(p["no_updates_half_life"] * SEC)
    c = cap * 1000
    if x >= c:
        return 0.0

    def halvings(gap: int) -> int:
        return -(-gap // half) - 1 if gap > half else 0

    def s(lo: int, hi: int) -> float:
        if x < lo:
            return 1.0
        if x >= hi:
            return 0.0
        d = f(hi / c) - f(lo / c)
        return (f(hi / c) - f(x / c)) / d if d > 0 else (hi - x) / (hi - lo)

    points: list[tuple[int, bool, int]] = []
    t = T
    for gap, success, amount in history:
        t += gap
        if not (success and amount == 0):
            points.append((t, success, amount))
    if not points:
        return nsf * s(0, c)
    factors = [1.0]  # the decay each datapoint applies to the ones before it
    clock = points[0][0]
    for t, _, _ in points[1:]:
        factors.append(r * 0.5 ** halvings(t - clock) if t > clock else r)
        clock = max(clock, t)
    final = 0.5 ** halvings(now - clock)
    lower: dict[int, list[Any]] = {}
    upper: dict[int, list[Any]] = {}
    for k, (_, success, amount) in enumerate(points):
        w = final * math.prod(factors[k + 1:])
        lo_key, lo, up_key, up = (bucket_of(amount), amount, 66, c) if success else (0, 0, bucket_of(amount), amount)
        for table, key, bound in ((lower, lo_key, lo), (upper, up_key, up)):
            entry = table.setdefault(key, [0.0, 0, 0])
            entry[0] += w
            entry[1], entry[2] = bound, k + 1
    pseudo = pw * r ** len(points)
    upper.setdefault(66, [0.0, c, 0])[0] += pseudo
    cols = [(min(b, c), w**power, seq) for w, b, seq in upper.values() if w > 0]
    full = [min(b, c) for w, b, _ in upper.values() if w >= 1.0]
    any_ = [min(b, c) for w, b, _ in upper.values() if w > 0]
    pairs: list[tuple[float, float]] = [(pseudo**power * wu, nsf * s(0, u)) for u, wu, _ in cols]
    if 0 in lower and lower[0][0] > 0:
        u_sel = min(full) if full else min(any_)
        pairs.append((lower[0][0] ** power * sum(wu for _, wu, _ in cols), nsf * s(0, u_sel)))
    for key, (w, lo, seq) in lower.items():
        if key == 0 or w <= 0:
            continue
        lo = min(lo, c - 1)
        for u, wu, useq in cols:
            if lo < u:
                q = s(lo, u)
            else:
                q = s(lo, c) if seq > useq else nsf * s(0, u)
            pairs.append((w**power * wu, q))
    total = sum(w for w, _ in pairs)
    return sum(w * q for w, q in pairs) / total if total > 0 else nsf * s(0, c)


# Decays that keep the products exact in floating point, so that the "at least one datapoint"
# threshold cannot fall differently in the two computations.
exact_estimators = st.builds(
    HistoricalEstimator,
    no_updates_half_life=st.sampled_from([86400.0, 14 * 86400.0]),
    datapoint_decay=st.sampled_from([1.0, 0.5, 0.75, LDK_DATAPOINT_DECAY]),
    bucket_weight_power=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
    no_success_factor=st.sampled_from([NSF, 1.0]),
    prior_weight=st.sampled_from([0.0, 0.5, 2.0]),
)


@given(exact_estimators, histories, amounts, capacities, gaps)
def test_memory_matches_a_from_scratch_reference(
    e: HistoricalEstimator, history: list[Step], x: int, cap: int, later: int
) -> None:
    now = learnt(e, history) + later
    got = e.pair_probability(now, VIEW, DST, x, cap)
    assert math.isclose(got, reference_probability(e, history, now, x, cap), rel_tol=1e-9, abs_tol=1e-300)


# -- learning through the state ---------------------------------------------------------------

SELF, N1, N2 = (bytes([3, i]) + bytes(31) for i in (10, 11, 12))


def route_result(pid: int, ts: int, amount: int, fail_at_n1: bool) -> PaymentResult:
    """self -> N1 -> N2, failing at N1 (temporary channel failure) or succeeding."""
    failure = PaymentFailure.from_code(1, TEMPORARY_CHANNEL_FAILURE) if fail_at_n1 else None
    return PaymentResult(pid, ts, ts + SEC, Route(SELF, amount + 10, [Hop(1, N1, amount), Hop(2, N2, amount)]), failure)


def history_results(n: int) -> list[PaymentResult]:
    return [route_result(i, T + i * 600 * SEC, 10_000_000 * (1 + i % 7), i % 3 == 0) for i in range(n)]


def snapshot(e: HistoricalEstimator) -> dict[tuple[bytes, bytes], object]:
    return {(a, b): e.memory(a, b) for a in (SELF, N1, N2) for b in (SELF, N1, N2)}


def test_a_state_feeds_its_learners() -> None:
    e = HistoricalEstimator()
    state = MissionControlState(learners=[e, object()])
    assert state.learners == (e,)
    for result in history_results(6):
        state.apply_result(result)
    m = e.memory(N1, N2)
    assert m is not None and m.datapoints == 6
    # The failures at N1 (results 0 and 3), decayed by the five and the two datapoints after them.
    assert math.isclose(m.lower[0].weight, (2047 / 2048) ** 5 + (2047 / 2048) ** 2, rel_tol=1e-15)
    first = e.memory(SELF, N1)
    assert first is not None and first.datapoints == 6 and 0 not in first.lower
    now = T + DAY
    untaught = HistoricalEstimator().pair_probability(now, state.results_from(N1), N2, 50_000_000, C_SAT)
    assert e.pair_probability(now, state.results_from(N1), N2, 50_000_000, C_SAT) != untaught
    state.reset()
    assert e.pairs_learnt == 0


async def test_replay_at_open_learns_what_live_reporting_learnt() -> None:
    db = MemoryDatabase()
    live = HistoricalEstimator()
    results = history_results(30)
    async with open_mission_control(MemoryBackend(db), self_pubkey=SELF, estimator=live) as mc:
        for result in results:
            mc.report_result(result)
        live_memory = snapshot(live)
        live_p = [mc.probability(N1, N2, x, C_SAT, now_ns=T + DAY) for x in (0, 10**7, 4 * 10**7, 10**9)]
    assert live.pairs_learnt == 2  # self -> N1, N1 -> N2: mission control taught it
    untaught = [HistoricalEstimator().pair_probability(T + DAY, VIEW, DST, x, C_SAT) for x in (0, 10**7, 4 * 10**7)]
    assert live_p[:3] != untaught
    replayed = HistoricalEstimator()
    async with open_mission_control(MemoryBackend(db), self_pubkey=SELF, estimator=replayed) as mc:
        assert mc.replayed == 30
        assert snapshot(replayed) == live_memory
        assert [mc.probability(N1, N2, x, C_SAT, now_ns=T + DAY) for x in (0, 10**7, 4 * 10**7, 10**9)] == live_p
    # The same estimator opened again starts from nothing: it does not learn the history twice.
    async with open_mission_control(MemoryBackend(db), self_pubkey=SELF, estimator=replayed) as mc:
        assert snapshot(replayed) == live_memory
        await mc.reset()
        assert replayed.pairs_learnt == 0
        untaught = HistoricalEstimator().pair_probability(T + DAY, VIEW, DST, 10**7, C_SAT)
        assert mc.probability(N1, N2, 10**7, C_SAT, now_ns=T + DAY) == untaught


def test_imports_are_not_learnt() -> None:
    e = HistoricalEstimator()
    state = MissionControlState(learners=[e])
    state.import_pairs({(N1, N2): TimedPairResult(T, 1000, T, 500)})
    assert e.pairs_learnt == 0
    assert state.results_from(N1)[N2] == TimedPairResult(T, 1000, T, 500)
