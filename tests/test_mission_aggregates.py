"""The estimators' per-node aggregates (estimators._AprioriNode, _BimodalNode) against lnd's walk.

A query through a state's live view (``results_from``) of a node with at least
``AGGREGATE_MIN_PAIRS`` pairs is answered from sums the state keeps beside the pairs; through a
plain mapping, by walking every pair as lnd does (the estimators' ``_reference`` methods).
Here the threshold is lowered to 1, so that small drawn histories take the aggregate path, and
each answer is held to the walk over a snapshot of the same pairs within a relative 1e-12 (the
tolerance of lnd's vectors; the reasoning is in estimators.py): lnd's own vectors, arbitrary
histories, and every way the state changes (results, node failures, imports, resets).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from test_mission_estimators import APRIORI, APRIORI_VECTORS, CAP, N1, NODE_VECTORS, NOW, REL, _others

from mcstore.mission import AprioriEstimator, BimodalEstimator, MissionControlState, NodeResults, TimedPairResult
from mcstore.mission import estimators as estimators_module
from mcstore.mission.state import _Pairs
from mcstore.model import (
    FEE_INSUFFICIENT,
    PERMANENT_NODE_FAILURE,
    TEMPORARY_CHANNEL_FAILURE,
    TEMPORARY_NODE_FAILURE,
    UNKNOWN_NEXT_PEER,
    Hop,
    PaymentFailure,
    PaymentResult,
    Route,
)

FROM = bytes([2, 0xF0]) + bytes(31)
Estimator = AprioriEstimator | BimodalEstimator


@pytest.fixture(autouse=True)
def _aggregate_every_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimators_module, "AGGREGATE_MIN_PAIRS", 1)


def as_state_view(results: Mapping[bytes, TimedPairResult]) -> NodeResults:
    """``results`` as a state's live view of a node (what ``results_from`` returns)."""
    pairs = _Pairs()
    pairs.update(results)
    return NodeResults(FROM, pairs)


def agree(fast: float, walked: float) -> bool:
    return fast == walked or math.isclose(fast, walked, rel_tol=REL, abs_tol=0.0)


def queries(
    est: Estimator, now: int, view: NodeResults, to: bytes, amt: int, cap: int
) -> Iterator[tuple[float, float]]:
    """(through the view, walking a plain snapshot) for the estimator's queries."""
    snapshot = dict(view)
    yield est.pair_probability(now, view, to, amt, cap), est.pair_probability(now, snapshot, to, amt, cap)
    if isinstance(est, BimodalEstimator):
        direct = est.direct_probability(now, snapshot, to, amt, cap)
        yield est.calculate_probability(direct, now, view, to), est.calculate_probability(direct, now, snapshot, to)


# -- lnd's vectors, through the aggregates ------------------------------------------------------


@pytest.mark.parametrize(("results", "to", "amt", "exact"), [v[1:] for v in APRIORI_VECTORS],
                         ids=[v[0] for v in APRIORI_VECTORS])
def test_apriori_vectors_through_the_aggregates(
    results: dict[bytes, TimedPairResult], to: bytes, amt: int, exact: float
) -> None:
    view = as_state_view(results)
    for _ in range(3):  # walked, the summary made, then read from the cache
        assert math.isclose(APRIORI.pair_probability(NOW, view, to, amt, CAP), exact, rel_tol=REL)


@pytest.mark.parametrize(("direct", "kinds", "ago", "exact"), NODE_VECTORS)
def test_bimodal_node_weighting_vectors_through_the_aggregates(
    direct: float, kinds: str, ago: int, exact: float
) -> None:
    est = BimodalEstimator(node_weight=0.2, decay_time=86400.0)
    results = _others(kinds, ago)
    results[N1] = TimedPairResult(success_time_ns=-2 * 24 * 3_600_000_000_000, success_amt_msat=1)
    view = as_state_view(results)
    for _ in range(3):
        assert math.isclose(est.calculate_probability(direct, 0, view, N1), exact, rel_tol=REL, abs_tol=0.0)


def test_the_aggregates_are_made_at_the_second_query_and_dropped_at_a_change() -> None:
    state = MissionControlState()
    state.import_pairs({(FROM, bytes([3, i]) + bytes(31)): TimedPairResult(NOW - i, 10 + i) for i in range(40)})
    view = state.results_from(FROM)
    estimators = (APRIORI, BimodalEstimator())

    def kinds() -> list[str]:
        return sorted(type(v).__name__ for v in view._pairs.cache.values())

    for est in estimators:
        est.pair_probability(NOW, view, N1, 20, CAP)
    assert kinds() == ["object", "object"]  # asked once: walked
    for est in estimators:
        est.pair_probability(NOW, view, N1, 20, CAP)
    assert kinds() == ["_AprioriNode", "_BimodalNode"]
    state.import_pairs({(FROM, N1): TimedPairResult(NOW, 5)})
    assert kinds() == []


# -- arbitrary histories --------------------------------------------------------------------------

PEERS = [bytes([3, i]) + bytes(31) for i in range(12)]
amounts = st.integers(0, 2**64 - 1) | st.integers(0, 10**6) | st.sampled_from([0, 1, 999, 1000, 1001])
times = (
    st.none() | st.integers(NOW - 10**15, NOW) | st.integers(NOW - 10**18, NOW + 10**12) | st.integers(-(2**70), 2**70)
)
pair_results = st.builds(TimedPairResult, times, amounts, times, amounts)
histories = st.dictionaries(st.sampled_from(PEERS), pair_results, min_size=1, max_size=len(PEERS))
unit = st.floats(0.0, 1.0)
estimators = st.builds(
    AprioriEstimator,
    hop_probability=unit,
    weight=unit,
    penalty_half_life=st.floats(0.0, 10**7) | st.sampled_from([0.0, 1e-9, 60.0, 3600.0]),
    capacity_fraction=st.floats(0.75, 1.0),
) | st.builds(
    BimodalEstimator,
    scale_msat=st.integers(1, 10**9),
    node_weight=unit,
    decay_time=st.floats(1e-6, 10**8) | st.sampled_from([60.0, 3600.0, 604800.0]),
)


@settings(max_examples=4 * settings().max_examples)  # cheap examples: 4x the profile's
@given(estimators, histories, st.lists(st.tuples(st.sampled_from(PEERS), amounts), min_size=1, max_size=4),
       st.integers(0, 10**7), st.integers(NOW - 10**12, NOW + 10**16) | st.integers(-(2**64), 2**64))
def test_the_aggregates_give_the_walks_probability(
    est: Estimator, history: dict[bytes, TimedPairResult], asked: list[tuple[bytes, int]], cap: int, now: int
) -> None:
    view = as_state_view(history)
    for to, amt in asked:  # the first query makes the summary, the others read it
        for fast, walked in queries(est, now, view, to, amt, cap):
            assert agree(fast, walked), (fast, walked)


# -- every change of the state keeps them in step -------------------------------------------------

NODES = [bytes([2, 0xA0 + i]) + bytes(31) for i in range(5)]
CODES = [TEMPORARY_CHANNEL_FAILURE, TEMPORARY_NODE_FAILURE, PERMANENT_NODE_FAILURE, UNKNOWN_NEXT_PEER,
         FEE_INSUFFICIENT]
SEC = 10**9


@st.composite
def payment_results(draw: st.DrawFn, reply: int) -> PaymentResult:
    path = draw(st.lists(st.sampled_from(NODES), min_size=2, max_size=5, unique=True))
    amount = draw(st.integers(1, 10**6))
    hops = [Hop(i + 1, node, amount) for i, node in enumerate(path[1:])]
    failure = None
    if draw(st.booleans()):
        index = draw(st.integers(0, len(hops)))
        failure = PaymentFailure.from_code(index, draw(st.sampled_from(CODES)))
    return PaymentResult(draw(st.integers(0, 2**32)), reply, reply, Route(path[0], amount, hops), failure)


class StateInStep(RuleBasedStateMachine):
    """Random results, node failures, imports and resets; after each, every node's queries
    through the state's views agree with the walk over their snapshots."""

    def __init__(self) -> None:
        super().__init__()
        self.state = MissionControlState()
        self.now = NOW
        self.estimators = [APRIORI, AprioriEstimator(penalty_half_life=60.0, weight=0.2),
                           BimodalEstimator(), BimodalEstimator(node_weight=1.0, decay_time=60.0)]

    @rule(data=st.data(), step=st.integers(0, 120 * SEC))
    def apply(self, data: st.DataObject, step: int) -> None:
        self.now += step
        self.state.apply_result(data.draw(payment_results(self.now)))

    @rule(pairs=st.lists(st.tuples(st.sampled_from(NODES), st.sampled_from(NODES), st.integers(1, 10**6),
                                   st.integers(0, 10**6), st.integers(0, 600 * SEC)), min_size=1, max_size=4),
          force=st.booleans())
    def import_pairs(self, pairs: list[tuple[bytes, bytes, int, int, int]], force: bool) -> None:
        entries = [
            ((frm, to), TimedPairResult(self.now - age, fail_amt, self.now - age if success_amt else None, success_amt))
            for frm, to, fail_amt, success_amt, age in pairs
            if frm != to
        ]
        if entries:
            self.state.import_pairs(entries, force=force)

    @rule()
    def reset(self) -> None:
        self.state.reset()

    @invariant()
    def queries_agree(self) -> None:
        for frm in NODES:
            view = self.state.results_from(frm)
            for est in self.estimators:
                for to in NODES[:3]:
                    for amt in (500_000, 10**6 + 1):
                        for when in (self.now, self.now + 3600 * SEC):
                            for fast, walked in queries(est, when, view, to, amt, 2000):
                                assert agree(fast, walked), (fast, walked, est)


StateInStep.TestCase.settings = settings(max_examples=max(settings().max_examples // 2, 1), stateful_step_count=20)
test_every_change_of_the_state_keeps_the_aggregates_in_step = StateInStep.TestCase
