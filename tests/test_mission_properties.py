"""Hypothesis properties of the estimators: probabilities in [0, 1], never higher for a higher amount."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mcstore.mission import AprioriEstimator, BimodalEstimator, TimedPairResult
from mcstore.mission.estimators import BIMODAL_SCALE_MSAT_MAX

NOW = 1_700_000_000 * 10**9
PEERS = [bytes([3, i]) + bytes(31) for i in range(4)]
TARGET = PEERS[0]

amounts = st.integers(0, 2**64 - 1) | st.integers(0, 10**10)
times = st.none() | st.integers(NOW - 10**16, NOW + 10**16) | st.integers(-(2**70), 2**70)
pair_results = st.builds(TimedPairResult, times, amounts, times, amounts)
results = st.dictionaries(st.sampled_from(PEERS), pair_results, max_size=4)
unit = st.floats(0.0, 1.0)
durations = st.floats(0.0, 10**7) | st.sampled_from([0.0, 1e-9, 3600.0])

aprioris = st.builds(
    AprioriEstimator,
    hop_probability=unit,
    weight=unit,
    penalty_half_life=durations,
    capacity_fraction=st.floats(0.75, 1.0),
)
bimodals = st.builds(
    BimodalEstimator,
    scale_msat=st.integers(1, BIMODAL_SCALE_MSAT_MAX),
    node_weight=unit,
    decay_time=st.floats(1e-6, 10**8),
)
estimators = aprioris | bimodals
capacities = st.integers(0, 21 * 10**14) | st.integers(0, 10**7)


@given(estimators, results, amounts, capacities, st.integers(-(2**64), 2**64))
def test_probability_in_unit_interval(
    est: AprioriEstimator | BimodalEstimator, res: dict[bytes, TimedPairResult], amt: int, cap: int, now: int
) -> None:
    for to in (TARGET, PEERS[-1]):
        p = est.pair_probability(now, res, to, amt, cap)
        assert 0.0 <= p <= 1.0, p
        q = est.local_pair_probability(now, res, to)
        assert 0.0 <= q <= 1.0, q


# lnd's apriori gives an amount known to succeed 0.95 (PREV_SUCCESS_PROBABILITY), so with a
# hop_probability above 0.95 a larger, untried amount can score higher: kept as in lnd.
monotone_aprioris = st.builds(
    AprioriEstimator,
    hop_probability=st.floats(0.0, 0.95),
    weight=unit,
    penalty_half_life=durations,
    capacity_fraction=st.floats(0.75, 1.0),
)


@given(monotone_aprioris | bimodals, results, amounts, amounts, capacities)
def test_higher_amount_never_more_likely(
    est: AprioriEstimator | BimodalEstimator, res: dict[bytes, TimedPairResult], a: int, b: int, cap: int
) -> None:
    low, high = sorted((a, b))
    for to in (TARGET, PEERS[-1]):
        # Up to float rounding: lnd's weighted mean of n equal terms can land an ULP below them
        # (3 * 0.95 / 3 = 0.9499999999999998), so the tolerance is relative, 1e-12.
        p_high = est.pair_probability(NOW, res, to, high, cap)
        p_low = est.pair_probability(NOW, res, to, low, cap)
        assert p_high <= p_low * (1 + 1e-12), (p_high, p_low)
