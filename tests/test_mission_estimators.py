"""lnd's estimator test vectors (probability_apriori_test.go, probability_bimodal_test.go), table-driven.

Each expected value is the exact one (lnd's tests compare with loose tolerances): from the
shared document where it gives one, else computed here at 50 digits with ``decimal`` from
lnd's formula. Every comparison is within a relative error of 1e-12.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import pytest

from mcstore.mission import (
    ESTIMATORS,
    AprioriEstimator,
    BimodalEstimator,
    Parameter,
    TimedPairResult,
    TunableEstimator,
    make_estimator,
)
from mcstore.mission.estimators import BIMODAL_SCALE_MSAT_MAX

REL = 1e-12
HOUR = 3_600_000_000_000
N1, N2, N3, UNTRIED = (bytes([2, i]) + bytes(31) for i in (1, 2, 3, 9))
NOW = 1_515_506_400 * 10**9  # 2018-01-09 14:00 UTC


def close(got: float, exact: float) -> bool:
    if exact == 0.0:
        return got == 0.0
    return abs(got - exact) <= REL * abs(exact)


def exact_capacity_factor(amt: int, cap_sat: int, fraction: str) -> float:
    """lnd's capacityFactor at 50 digits (an independent evaluation of the formula)."""
    with localcontext() as ctx:
        ctx.prec = 50
        c = Decimal(cap_sat * 1000)
        a = Decimal(amt)
        f = Decimal(fraction)
        if f == 1:
            return 1.0
        if a > c:
            return 0.0
        return float(1 - Decimal("0.5") / (1 + (-(a - f * c) / (Decimal("0.025") * c)).exp()))


# -- apriori --------------------------------------------------------------------------------

APRIORI = AprioriEstimator(hop_probability=0.6, weight=0.75, penalty_half_life=3600.0, capacity_fraction=0.9999)
CAP = 100_000
SUCCESS_N1 = {N1: TimedPairResult(success_amt_msat=90_000_000)}
FAIL_N1 = {N1: TimedPairResult(NOW - HOUR, 50)}
MIXED = {
    N1: TimedPairResult(success_amt_msat=1000),
    N2: TimedPairResult(NOW - 2 * HOUR, 50),
    N3: TimedPairResult(NOW - 3 * HOUR, 50),
}

APRIORI_VECTORS = [
    ("no results, amt 0", {}, UNTRIED, 0, 0.6),
    ("no results, amt 90M", {}, UNTRIED, 90_000_000, 0.5945829008477366),
    ("success, same amount class", SUCCESS_N1, N1, 100, 0.95),
    ("success, at the success amount", SUCCESS_N1, N1, 90_000_000, 0.95),
    ("success elsewhere, untried small", SUCCESS_N1, UNTRIED, 100, 0.6875),
    ("success elsewhere, untried 90M", SUCCESS_N1, UNTRIED, 90_000_000, 0.6834371756358024),
    ("failure elsewhere, untried", FAIL_N1, UNTRIED, 100, 0.5142857142857142),
    ("failure an hour ago", FAIL_N1, N1, 100, 0.2571428571428571),
    ("mixed, success pair", MIXED, N1, 100, 0.95),
    ("mixed, untried", MIXED, UNTRIED, 100, 0.6285714285714286),
    ("mixed, failed 2h ago", MIXED, N2, 100, 0.4714285714285714),
]


@pytest.mark.parametrize(("results", "to", "amt", "exact"), [v[1:] for v in APRIORI_VECTORS],
                         ids=[v[0] for v in APRIORI_VECTORS])
def test_apriori_vectors(results: dict[bytes, TimedPairResult], to: bytes, amt: int, exact: float) -> None:
    assert close(APRIORI.pair_probability(NOW, results, to, amt, CAP), exact)


def test_apriori_capacity_factor_of_the_vectors() -> None:
    assert close(APRIORI.capacity_factor(90_000_000, 100_000), 0.9909715014128943)
    assert close(exact_capacity_factor(90_000_000, 100_000, "0.9999"), 0.9909715014128943)


CAPACITY_FACTOR_VECTORS = [
    # (fraction, amount msat, exact from the shared document or None: computed at 50 digits)
    ("0.75", 0, 0.9999999999999533),
    ("0.75", 100_000_000, None),
    ("0.75", 500_000_000, None),
    ("0.75", 750_000_000, 0.75),
    ("0.75", 800_000_000, 0.5596014610110589),
    ("0.75", 1_000_000_000, 0.5000226989343513),
    ("0.75", 1_000_000_001, 0.0),
    ("0.9999", 0, 1.0),
    ("0.9999", 900_000_000, None),
    ("0.9999", 1_000_000_000, 0.7495000006666657),
    ("1.0", 1_000_000_000, 1.0),
]


@pytest.mark.parametrize(("fraction", "amt", "exact"), CAPACITY_FACTOR_VECTORS)
def test_capacity_factor_vectors(fraction: str, amt: int, exact: float | None) -> None:
    want = exact_capacity_factor(amt, 1_000_000, fraction)
    if exact is not None:
        assert close(want, exact)  # the reference agrees with the document
    est = AprioriEstimator(capacity_fraction=float(fraction))
    assert close(est.capacity_factor(amt, 1_000_000), want)


def test_capacity_factor_loose_values() -> None:
    # lnd's own expectations (tolerance 0.001) for the rows the document gives no exact value for.
    est = AprioriEstimator(capacity_fraction=0.75)
    assert abs(est.capacity_factor(100_000_000, 1_000_000) - 1) < 1e-3
    assert abs(est.capacity_factor(500_000_000, 1_000_000) - 0.99997730) < 1e-8
    assert abs(AprioriEstimator().capacity_factor(900_000_000, 1_000_000) - 0.990) < 1e-3


def test_apriori_local() -> None:
    assert APRIORI.local_pair_probability(NOW, {}, N1) == 0.95
    assert APRIORI.local_pair_probability(NOW, SUCCESS_N1, N1) == 0.95  # no failure: untouched
    # A failure an hour ago (one half-life): 0.95 * (1 - 0.5).
    assert close(APRIORI.local_pair_probability(NOW, FAIL_N1, N1), 0.475)


# -- bimodal --------------------------------------------------------------------------------

S400M = BimodalEstimator(scale_msat=400_000_000)
C = 10_000_000_000
SMALL = 400_000_000
LARGE = 5_000_000_000

FORMULA_VECTORS = [
    # (success, fail, amount) -> exact
    ((0, C, C + 1), 0.0),
    ((0, C, LARGE), 0.5),
    ((0, C, 0), 1.0),
    ((0, C, C), 0.0),
    ((0, C, SMALL), 0.6839397209144754),
    ((LARGE, C, SMALL), 1.0),
    ((LARGE, C, LARGE), 1.0),
    ((SMALL // 2, C, SMALL), 0.8514493222991157),
    ((LARGE // 2, C, LARGE), 0.998073271882893),
    ((0, LARGE, LARGE), 0.0),
    ((0, LARGE, LARGE + SMALL), 0.0),
    ((0, LARGE, SMALL), 0.3678794418289507),
    ((SMALL, LARGE, 0), 1.0),
    ((SMALL, LARGE, SMALL), 1.0),
    ((SMALL, LARGE, SMALL + LARGE // 10), 0.286504798422034),
    ((SMALL, LARGE, LARGE), 0.0),
    ((LARGE, LARGE, LARGE), 0.5),
    ((LARGE, SMALL, LARGE), 0.5),
    ((2 * C, 2 * C + 1, LARGE), 1.0),
    ((SMALL // 2, 2 * C, SMALL), 0.8514493222991157),
]


@pytest.mark.parametrize(("args", "exact"), FORMULA_VECTORS, ids=[str(v[0]) for v in FORMULA_VECTORS])
def test_bimodal_formula_vectors(args: tuple[int, int, int], exact: float) -> None:
    assert close(S400M.probability_formula(C, *args), exact)


def test_bimodal_zero_capacity_is_zero() -> None:
    # lnd: ErrZeroCapacity, which its caller turns into probability 0.
    assert S400M.probability_formula(0, 0, 0, 0) == 0.0
    assert S400M.pair_probability(NOW, {}, N1, 0, 0) == 0.0


@pytest.mark.parametrize(
    ("amount", "exact"),
    [(1_000_000_001, 0.9999999996666666), (3_999_999_999, 3.333331388688521e-10), (1_750_000_000, 0.75)],
)
def test_bimodal_small_scale(amount: int, exact: float) -> None:
    est = BimodalEstimator(scale_msat=1)
    assert close(est.probability_formula(7_000_000_000, 1_000_000_000, 4_000_000_000, amount), exact)


def test_bimodal_integral_vectors() -> None:
    est = BimodalEstimator(scale_msat=300_000_000)
    assert math.isnan(est.integral(0.0, 0.0, 0.0))  # 0/0 in lnd; must not raise
    assert est.integral(1.0, 1.0, 1.0) == 0.0
    assert close(est.integral(21e17, 0.0, 21e17), 1.0)
    assert est.integral(21e17, 21e17, 21e17) == 0.0
    assert BimodalEstimator(scale_msat=BIMODAL_SCALE_MSAT_MAX).integral(21e17, 21e17, 21e17) == 0.0


def test_bimodal_can_send_cannot_send() -> None:
    est = BimodalEstimator(decay_time=1000.0)
    s = 1_000_000_000_000  # 1000 s in ns
    never = 2**63 - 1  # "now minus never", saturated
    assert [est.can_send(1_000_000, age) for age in (0, s, never)] == [1_000_000, 367879, 0]
    assert [est.cannot_send(1_000_000, 3_000_000, age) for age in (0, s, never)] == [1_000_000, 2_264_242, 3_000_000]


def test_bimodal_fuzz_seed() -> None:
    est = BimodalEstimator(scale_msat=400_000)
    assert est.probability_formula(1_000_000_000, 300_000_000, 400_000_000, 300_000_000) == 1.0


TAU = 24 * HOUR


def _others(kinds: str, ago: int) -> dict[bytes, TimedPairResult]:
    out = {}
    for i, kind in enumerate(kinds):
        peer = bytes([3, i]) + bytes(31)
        if kind == "S":
            out[peer] = TimedPairResult(success_time_ns=-ago, success_amt_msat=1)
        else:
            out[peer] = TimedPairResult(-ago, 1)
    return out


NODE_VECTORS = [
    # (direct, other results, their age, exact)
    (0.5, "", 0, 0.5),
    (0.5, "S", 0, 0.5833333333333334),
    (0.5, "SSSSS", 0, 0.75),
    (0.5, "F", 0, 0.4166666666666667),
    (0.5, "FFFFF", 0, 0.25),
    (0.5, "SF", 0, 0.5),
    (0.5, "SSFFF", 0, 0.45),
    (1.0, "SSSSS", 0, 1.0),
    (1.0, "FFFFF", 0, 0.5),
    (1.0, "F", 0, 0.8333333333333334),
    (1.0, "FFFFFFF", 0, 0.4166666666666667),
    (0.0, "FFF", 0, 0.0),
    (0.0, "SSSSS", 0, 0.5),
    (1.0, "S", TAU, 1.0),
    (1.0, "F", TAU, 0.9314665231953944),
    (1.0, "F", 10 * TAU, 0.9999909200964929),
    (0.0, "SSSSS", TAU, 0.2689414213699951),
    (0.5, "SSSSS", TAU // 10, 0.73751040626053),
]


@pytest.mark.parametrize(("direct", "kinds", "ago", "exact"), NODE_VECTORS)
def test_bimodal_node_weighting_vectors(direct: float, kinds: str, ago: int, exact: float) -> None:
    est = BimodalEstimator(node_weight=0.2, decay_time=86400.0)
    results = _others(kinds, ago)
    results[N1] = TimedPairResult(success_time_ns=-2 * TAU, success_amt_msat=1)  # old: node results count
    assert close(est.calculate_probability(direct, 0, results, N1), exact)


def test_bimodal_node_weighting_recent_target() -> None:
    est = BimodalEstimator(node_weight=0.2, decay_time=86400.0)
    results = _others("SSSSS", 0)
    results[N1] = TimedPairResult(success_time_ns=-TAU // 2, success_amt_msat=1)  # fresh: direct wins
    assert est.calculate_probability(0.1, 0, results, N1) == 0.1


def test_bimodal_node_weighting_ignores_amount_independent_failures() -> None:
    # The quirk docs/mission-control.md lists as tested (issue 17: it was not): lnd's calculateProbability
    # weighs in a peer's failure only if its amount is > 0, so an amount-independent failure
    # (amount 0) of another channel leaves the node's weighting as if it were not there.
    est = BimodalEstimator(node_weight=0.2, decay_time=86400.0)
    results = _others("SF", 0)
    results[N1] = TimedPairResult(success_time_ns=-2 * TAU, success_amt_msat=1)  # old: node results count
    weighted = est.calculate_probability(0.5, 0, results, N1)
    assert close(weighted, 0.5)  # (0.5 + 0.2) / (1 + 0.2 + 0.2), the "SF" vector above
    amount_zero = {**results, UNTRIED: TimedPairResult(0, 0)}  # a failure now, of every amount
    assert est.calculate_probability(0.5, 0, amount_zero, N1) == weighted
    with_amount = {**results, UNTRIED: TimedPairResult(0, 1)}  # the same failure with an amount counts
    assert close(est.calculate_probability(0.5, 0, with_amount, N1), 0.7 / 1.6)


@pytest.mark.parametrize(
    ("fail_ago", "exact"),
    [(None, 1.0), (0, 0.0), (HOUR, 0.6321205588285577), (10 * HOUR, 0.9999546000702375)],
)
def test_bimodal_local_vectors(fail_ago: int | None, exact: float) -> None:
    est = BimodalEstimator(decay_time=3600.0)
    results = {} if fail_ago is None else {N1: TimedPairResult(NOW - fail_ago, 0)}
    assert close(est.local_pair_probability(NOW, results, N1), exact)


# -- parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"penalty_half_life": -1.0}, "penalty_half_life"),
        ({"hop_probability": 1.01}, "hop_probability"),
        ({"hop_probability": -0.1}, "hop_probability"),
        ({"hop_probability": math.nan}, "hop_probability"),
        ({"weight": 1.5}, "weight"),
        ({"capacity_fraction": 0.7}, "capacity_fraction"),
        ({"capacity_fraction": 1.01}, "capacity_fraction"),
    ],
)
def test_apriori_validation(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        AprioriEstimator(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"decay_time": 0.0}, "decay_time"),
        ({"decay_time": -5.0}, "decay_time"),
        ({"node_weight": 1.2}, "node_weight"),
        ({"scale_msat": 0}, "scale_msat"),
        ({"scale_msat": BIMODAL_SCALE_MSAT_MAX + 1}, "scale_msat"),
    ],
)
def test_bimodal_validation(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BimodalEstimator(**kwargs)  # type: ignore[arg-type]


def test_edges_of_the_valid_ranges_are_accepted() -> None:
    AprioriEstimator(hop_probability=0.0, weight=1.0, penalty_half_life=0.0, capacity_fraction=0.75)
    AprioriEstimator(hop_probability=1.0, weight=0.0, capacity_fraction=1.0)
    BimodalEstimator(scale_msat=BIMODAL_SCALE_MSAT_MAX, node_weight=0.0)
    BimodalEstimator(scale_msat=1, node_weight=1.0, decay_time=1e-9)
    with pytest.raises(TypeError, match="scale_msat"):
        BimodalEstimator(scale_msat=3e8)  # type: ignore[arg-type]


# -- differences from lnd ------------------------------------------------------------------


def test_apriori_future_failure_is_clamped() -> None:
    # lnd: weight 2**(1h/1h) = 2 -> 0.6 * (1 - 2) = -0.6 (untried node probability 0.6 mixed).
    results = {N1: TimedPairResult(NOW + HOUR, 50)}
    p = APRIORI.pair_probability(NOW, results, N1, 100, CAP)
    assert p == 0.0
    assert APRIORI.local_pair_probability(NOW, results, N1) == 0.0
    # Far in the future: lnd's math.Pow overflows to +Inf; no OverflowError here.
    far = {N1: TimedPairResult(NOW + 10**18, 50)}
    assert APRIORI.pair_probability(NOW, far, N1, 100, CAP) == 0.0
    assert 0.0 <= APRIORI.pair_probability(NOW, far, UNTRIED, 100, CAP) <= 1.0


def test_apriori_nan_cases_are_zero() -> None:
    # Zero half-life with a failure at exactly now: lnd computes 2**(0/0) = NaN.
    est = AprioriEstimator(penalty_half_life=0.0)
    assert est.pair_probability(NOW, {N1: TimedPairResult(NOW, 50)}, N1, 100, CAP) == 0.0
    # ... and a failure in the past is forgotten at once.
    assert est.pair_probability(NOW, {N1: TimedPairResult(NOW - 1, 50)}, N1, 100, CAP) == 0.6
    # Weight 0 and nothing known about this amount: lnd's 0/0.
    est = AprioriEstimator(weight=0.0)
    assert est.pair_probability(NOW, {N1: TimedPairResult(success_amt_msat=10)}, UNTRIED, 100, CAP) == 0.0


def test_bimodal_future_times_count_as_now() -> None:
    est = BimodalEstimator()
    future = NOW + 10**18
    # Other results in the future: lnd's node weighting reaches inf/inf = NaN.
    results = {N2: TimedPairResult(future, 5, future, 5)}
    assert est.pair_probability(NOW, results, N1, 1000, 1000) == est.pair_probability(
        future, results, N1, 1000, 1000
    )
    # A future failure of the pair itself: as a failure just now.
    results = {N1: TimedPairResult(future, 500_000)}
    assert est.pair_probability(NOW, results, N1, 600_000, 1000) == 0.0
    assert est.local_pair_probability(NOW, results, N1) == 0.0


# -- the registry and the parameter specs (what evaluation and fitting search) -----------------


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_each_estimator_lists_its_constructor_parameters_with_lnds_defaults(name: str) -> None:
    import inspect

    cls = ESTIMATORS[name]
    assert cls.name == name
    signature = inspect.signature(cls)
    assert [p.name for p in cls.parameters] == list(signature.parameters)
    for spec in cls.parameters:
        assert spec.default == signature.parameters[spec.name].default
        assert spec.low <= spec.default <= spec.high
        # Both ends of the search range are values the constructor accepts.
        for end in (spec.low, spec.high):
            estimator = make_estimator(name, {spec.name: spec.coerce(end)})
            assert estimator.params()[spec.name] == spec.coerce(end)
    default = make_estimator(name)
    assert default.params() == {p.name: p.default for p in cls.parameters}
    assert repr(cls(**default.params())) == repr(default)
    assert isinstance(default, TunableEstimator)


def test_parameter_coerce_clips_and_rounds() -> None:
    spec = Parameter("x", 5, 1, 10, integer=True)
    assert spec.coerce(0.2) == 1 and spec.coerce(12) == 10 and spec.coerce(4.6) == 5
    assert isinstance(spec.coerce(4.6), int)
    assert Parameter("y", 0.5, 0.0, 1.0).coerce(0.25) == 0.25


def test_make_estimator_names_an_unknown_estimator_or_parameter() -> None:
    with pytest.raises(ValueError, match="unknown estimator 'nope'; known: apriori, bimodal"):
        make_estimator("nope")
    with pytest.raises(ValueError, match="estimator 'apriori' has no parameter 'scale_msat'"):
        make_estimator("apriori", {"scale_msat": 1})
    with pytest.raises(ValueError, match="hop_probability must be in"):
        make_estimator("apriori", {"hop_probability": 2.0})
